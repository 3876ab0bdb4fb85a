/**
 * End-to-end: a user filter hot-swapped 100 times through a running proxy process under
 * load, with zero failed requests. The proxy runs from source (tsx) so the test always
 * exercises the current filters/ code; the swap goes through the filter's watched manifest
 * (module file first, then the manifest by atomic rename), which needs nothing from the
 * proxy beyond building its chain.
 */
import t from 'tap';

// Long by nature; the machine is shared (2 cores), so leave room beyond tap's default.
t.setTimeout(600_000);
import http from 'node:http';
import { createHash } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pilotfish } from '../test-support/cli.js';
import { until } from '../test-support/wait.js';

const SWAPS = 100;
const CLIENTS = 8;

function moduleSource(version: number, responsePhase = false): string {
  return `
const VERSION = ${JSON.stringify(String(version))};
exports.onRequest = (req) => {
  if (req.headers['x-block'] === 'yes') return { status: 403, body: 'blocked' };
  req.headers['x-filter-version'] = VERSION;
};
${responsePhase ? "exports.onResponse = (res) => { res.headers['x-filter-version'] = VERSION; };" : ''}
exports.probe = [
  { request: { headers: {} }, expect: { headers: { 'x-filter-version': VERSION } } },
  { request: { headers: { 'x-block': 'yes' } }, expect: { status: 403 } },
];
`;
}

t.test(`${SWAPS} hot swaps of a user filter under load: zero failed requests`, async (t) => {
  const dir = t.testdir();
  const manifest = join(dir, 'filter.json');
  const publish = (v: number, responsePhase = false): void => {
    const src = moduleSource(v, responsePhase);
    writeFileSync(join(dir, `filter-${v}.js`), src);
    writeFileSync(`${manifest}.tmp`, JSON.stringify({
      version: String(v), sha256: createHash('sha256').update(src).digest('hex'), path: `filter-${v}.js`,
    }));
    renameSync(`${manifest}.tmp`, manifest);
  };
  publish(0);

  const origin = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(String(req.headers['x-filter-version'] ?? 'none'));
  });
  origin.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  t.teardown(() => { origin.closeAllConnections(); origin.close(); });
  const originPort = (origin.address() as AddressInfo).port;

  const cfg = join(dir, 'proxy.yaml');
  writeFileSync(cfg, `static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: { virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: origin } }] }] }
          http_filters:
          - name: tenant-tagger
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: pilotfish.filters.http.module
              value:
                manifest: ${JSON.stringify(manifest)}
                api_version_range: "^1.0.0"
                failure_policy: FAIL_CLOSED
                time_budget_ms: 10000
                keep_versions: 2
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: origin
    connect_timeout: 1s
    load_assignment: { cluster_name: origin, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${originPort} } } } }] }] }
`);
  const proxy = pilotfish(t, ['proxy', '--config', cfg, '--drain-time-s', '1']);
  const m = await proxy.waitFor(/"listener started","listener":"main","address":"127\.0\.0\.1:(\d+)"/);
  const port = Number(m[1]);

  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  t.teardown(() => agent.destroy());
  const get = (headers: Record<string, string> = {}): Promise<{ status: number; body: string; version: string | undefined }> =>
    new Promise((resolve, reject) => {
      const rq = http.get({ host: '127.0.0.1', port, path: '/', agent, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, version: res.headers['x-filter-version'] as string | undefined }));
      });
      rq.on('error', reject);
      rq.setTimeout(10_000, () => rq.destroy(new Error('request timed out')));
    });

  // The chain loads the first version asynchronously after the listener starts.
  await until('version 0 to serve', async () => (await get()).body === '0', { intervalMs: 50 });

  let ok = 0;
  const failures: string[] = [];
  const seen = new Set<string>();
  let running = true;
  const client = async (): Promise<void> => {
    while (running) {
      try {
        const r = await get();
        if (r.status !== 200 || !/^\d+$/.test(r.body)) failures.push(`status ${r.status} body ${r.body}`);
        else {
          ok++;
          seen.add(r.body);
        }
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const load = Array.from({ length: CLIENTS }, client);

  const t0 = Date.now();
  for (let v = 1; v <= SWAPS; v++) {
    publish(v);
    let last = '';
    await until(`version ${v} to serve`, async () => {
      const r = await get();
      last = `${r.status} ${r.body}`;
      return r.body === String(v);
    }, { intervalMs: 20, state: () => last });
  }
  const swapMs = (Date.now() - t0) / SWAPS;
  // Traffic from the load clients on the last version, then stop.
  await until('a load client served by the last version', () => seen.has(String(SWAPS)), { state: () => [...seen].slice(-3) });
  running = false;
  await Promise.all(load);

  t.comment(`${ok} requests under load, ${SWAPS} swaps, ${swapMs.toFixed(0)} ms per swap (publish -> first request served by it), ${seen.size} versions seen by the load`);
  t.same(failures.slice(0, 5), [], `no failed requests (${failures.length} failures)`);
  t.ok(ok > SWAPS, 'load kept running through the swaps');
  t.ok(seen.has(String(SWAPS)), 'the last version served the load');
  t.match((await get({ 'x-block': 'yes' })), { status: 403, body: 'blocked' }, 'the filter still answers locally');

  // A version with a response phase: the proxy must hold the upstream body until an async
  // encodeHeaders settles, or the header the filter sets would be lost.
  publish(SWAPS + 1, true);
  await until('the response-phase version to serve', async () => (await get()).body === String(SWAPS + 1), { intervalMs: 20 });
  const rp = await get();
  t.equal(rp.version, rp.body, 'request and response phase ran on the same version');

  t.equal(await proxy.stop('SIGTERM'), 0, 'the proxy exits cleanly, workers and all');
});
