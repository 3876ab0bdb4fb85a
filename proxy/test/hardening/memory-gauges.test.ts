import t from 'tap';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';
import { until } from '../../../test-support/wait.js';

/**
 * Issue 17: memory gauges under Envoy's names on /stats and /stats/prometheus, sampled
 * at scrape time, and the overload manager's fixed_heap monitor reading the same numbers.
 * The proxy runs in this process, so what the test allocates is what the proxy reports.
 */

const vhosts = `
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: up }`;

const MiB = 1024 * 1024;

/** /stats as an operator reads it: `name: value` lines. */
async function adminStats(adminPort: number): Promise<Map<string, number>> {
  const r = await get(adminPort, '/stats');
  const out = new Map<string, number>();
  for (const line of r.body.split('\n')) {
    const m = /^(\S+): (-?\d+(?:\.\d+)?)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

t.test('server.memory_* on /stats and /stats/prometheus follow the process; fixed_heap sees the same heap', async (t) => {
  const up = await startUpstream(t, 'up', (_req, res) => res.writeHead(200).end('ok'));
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port])));
  const admin = proxy.adminPort!;
  const port = proxy.port();

  const s0 = await adminStats(admin);
  const allocated0 = s0.get('server.memory_allocated') ?? 0;
  const heap0 = s0.get('server.memory_heap_size') ?? 0;
  const physical0 = s0.get('server.memory_physical_size') ?? 0;
  const buffers0 = s0.get('pilotfish.memory_array_buffers') ?? -1;
  const external0 = s0.get('pilotfish.memory_external') ?? -1;
  t.comment(`idle in-process proxy (+ tap): allocated ${allocated0}, heap ${heap0}, physical ${physical0}, external ${external0}, array buffers ${buffers0}`);
  t.ok(allocated0 > MiB && allocated0 <= heap0, `memory_allocated (V8 heap used, ${allocated0}) within memory_heap_size (${heap0})`);
  t.ok(physical0 >= heap0, `memory_physical_size is the RSS (${physical0})`);
  t.ok(buffers0 >= 0 && external0 >= buffers0, 'pilotfish.memory_external includes pilotfish.memory_array_buffers');
  const now = process.memoryUsage();
  t.ok(Math.abs(allocated0 - now.heapUsed) < 64 * MiB, `what the process reports (${now.heapUsed})`);

  // 64 MiB of buffers (socket/body-like memory, outside the V8 heap) and ~100 MB of JS objects.
  const buffers = Buffer.alloc(64 * MiB, 1);
  const objects = Array.from({ length: 1_000_000 }, (_v, i) => ({ i, s: `obj${i}` }));
  const s1 = await until('the gauges to be resampled', async () => {
    const s = await adminStats(admin);
    return (s.get('pilotfish.memory_array_buffers') ?? 0) >= buffers0 + 64 * MiB ? s : undefined;
  });
  t.ok((s1.get('server.memory_allocated') ?? 0) > allocated0 + 20 * MiB, `memory_allocated grew with the JS objects (${s1.get('server.memory_allocated')})`);
  t.ok((s1.get('server.memory_physical_size') ?? 0) > physical0 + 32 * MiB, `memory_physical_size grew with the touched buffers (${s1.get('server.memory_physical_size')})`);
  t.ok((s1.get('pilotfish.memory_external') ?? 0) >= (s1.get('pilotfish.memory_array_buffers') ?? 0), 'memory_external still includes the buffers');

  const prom = (await get(admin, '/stats/prometheus')).body;
  for (const name of ['envoy_server_memory_allocated', 'envoy_server_memory_heap_size', 'envoy_server_memory_physical_size', 'pilotfish_memory_external', 'pilotfish_memory_array_buffers']) {
    t.match(prom, new RegExp(`^# TYPE ${name} gauge\\n${name} \\d+$`, 'm'), `${name} on /stats/prometheus`);
  }

  // The overload manager's fixed_heap monitor: pressure = memory_allocated / max_heap_size_bytes,
  // exported as Envoy's overload.<monitor>.pressure (percent).
  const overload = proxy.overload;
  const max = (s1.get('server.memory_allocated') ?? 0) * 2;
  overload.configure({
    refreshInterval: 3_600_000, maxHeapSizeBytes: max,
    actions: [{ name: 'envoy.overload_actions.stop_accepting_requests', triggers: [{ monitor: 'envoy.resource_monitors.fixed_heap', threshold: 0.95 }] }],
  });
  const s2 = await adminStats(admin);
  const pressure = s2.get('overload.envoy.resource_monitors.fixed_heap.pressure') ?? -1;
  t.ok(pressure >= 35 && pressure <= 65, `fixed_heap pressure ~50% of a limit twice memory_allocated (${pressure}%)`);
  t.equal(s2.get('overload.envoy.overload_actions.stop_accepting_requests.active'), 0);
  t.equal((await get(port, '/')).status, 200);
  // More JS objects until the heap crosses 95% of the limit: the monitor sees what the gauge shows.
  const more: { i: number; s: string }[][] = [];
  for (let chunk = 0; chunk < 40 && !overload.shedRequests; chunk++) {
    more.push(Array.from({ length: 200_000 }, (_v, i) => ({ i, s: `more${chunk}.${i}` })));
    overload.refresh();
  }
  const s3 = await adminStats(admin);
  t.ok((s3.get('overload.envoy.resource_monitors.fixed_heap.pressure') ?? 0) >= 95, `pressure ${s3.get('overload.envoy.resource_monitors.fixed_heap.pressure')}%`);
  t.equal(s3.get('overload.envoy.overload_actions.stop_accepting_requests.active'), 1);
  const ratio = (s3.get('server.memory_allocated') ?? 0) / max;
  t.ok(Math.abs(ratio * 100 - (s3.get('overload.envoy.resource_monitors.fixed_heap.pressure') ?? 0)) < 10, `pressure agrees with server.memory_allocated / max_heap_size_bytes (${Math.round(ratio * 100)}%)`);
  t.equal((await get(port, '/')).status, 503, 'requests are shed');
  overload.configure(undefined);
  t.equal((await get(port, '/')).status, 200);
  t.ok(buffers.length + objects.length + more.length > 0);
});
