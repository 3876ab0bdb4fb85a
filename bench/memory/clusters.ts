/**
 * Large-config memory and time to ready: `pilotfish proxy` fed N clusters × E endpoints
 * over ADS (CDS with EDS clusters, then their ClusterLoadAssignments), N = 1, 1,000,
 * 10,000 by default, E = 10. The xDS server is pilotfish's own (controlplane/'s XdsServer)
 * in this process, on the load core; the proxy runs pinned to the proxy core.
 *
 *   ready      spawn -> admin /ready 200 and every cluster's membership_total = E
 *              (read from /stats: the last cluster has all its endpoints)
 *   RSS        --settle s after ready (V8's memory reducer has run by then), and the
 *              V8 heap used after a full GC (bench/memory/lib/probe.mjs), and RSS again
 *              after that GC (what of `RSS` was garbage or free heap pages)
 *   per cluster  (value at N - value at 1) / (N - 1), the figure Envoy's memory tests pin
 *
 * Builds compared in the same run, rounds alternating: --root DIR (repeatable; default
 * this checkout), e.g. a checkout of the previous commit built with `npm run build`.
 *
 * --names istio names clusters as istiod does (`outbound|9080||reviews-v<i>.bookinfo.svc.cluster.local`)
 * instead of `c<i>`; --snapshots DIR writes a heap snapshot of each run (before the probe's GC
 * figures) to DIR/<build>-<N>.heapsnapshot.
 *
 *   node --import tsx bench/memory/clusters.ts [--sizes 1,1000,10000] [--endpoints 10]
 *        [--rounds 2] [--root DIR]... [--api GRPC|DELTA_GRPC] [--settle S] [--names short|istio]
 *        [--snapshots DIR]
 */
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync, openSync, closeSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XdsServer } from '../../controlplane/src/index.js';
import { TYPE_URLS } from '../../xds-client/src/index.js';
import { freePort, get } from './lib/pilotfish.mjs';
import { rssMB } from './lib/smaps.mjs';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const PROBE = fileURLToPath(new URL('./lib/probe.mjs', import.meta.url));
const { values: o } = parseArgs({ options: {
  sizes: { type: 'string', default: '1,1000,10000' }, endpoints: { type: 'string', default: '10' },
  rounds: { type: 'string', default: '2' }, root: { type: 'string', multiple: true, default: [] },
  api: { type: 'string', default: 'GRPC' }, settle: { type: 'string', default: '20' },
  'proxy-core': { type: 'string', default: '0' }, 'load-core': { type: 'string', default: '1' },
  names: { type: 'string', default: 'short' }, snapshots: { type: 'string' },
  help: { type: 'boolean' },
} });
if (o.help) {
  console.log('usage: node --import tsx bench/memory/clusters.ts [--sizes 1,1000,10000] [--endpoints 10] [--rounds 2] [--root DIR]... [--api GRPC|DELTA_GRPC] [--settle S] [--names short|istio] [--snapshots DIR]');
  process.exit(0);
}
const SIZES = o.sizes.split(',').map(Number);
const E = Number(o.endpoints);
const roots = (o.root.length ? o.root : [REPO]).map((r) => resolve(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'pf-mem-clusters-'));
const live = new Set<ChildProcess>();
const cleanup = () => { for (const p of live) p.kill('SIGKILL'); };
process.once('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { cleanup(); rmSync(dir, { recursive: true, force: true }); process.exit(130); });
try { // the xDS server shares the load core with nothing else
  spawn('taskset', ['-pc', o['load-core'], String(process.pid)], { stdio: 'ignore' });
} catch { /* best effort */ }

if (o.names !== 'short' && o.names !== 'istio') throw new Error(`--names ${o.names}: short or istio`);
const cname = o.names === 'istio' ? (i: number) => `outbound|9080||reviews-v${i}.bookinfo.svc.cluster.local` : (i: number) => `c${i}`;
const reEsc = (x: string) => x.replace(/[|.\\]/g, (c) => '\\' + c);
const cluster = (i: number) => ({ name: cname(i), type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } } });
const cla = (i: number) => ({
  cluster_name: cname(i),
  endpoints: [{ locality: { zone: 'z1' }, lb_endpoints: Array.from({ length: E }, (_, k) => ({ endpoint: { address: { socket_address: { address: `10.${(i >> 8) & 255}.${i & 255}.${k + 1}`, port_value: 8080 } } } })) }],
});

function bootstrap(xdsPort: number, adminPort: number): object {
  return {
    node: { id: 'bench-clusters', cluster: 'bench' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    dynamic_resources: {
      ads_config: { api_type: o.api, transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [{
        name: 'xds', type: 'STATIC', connect_timeout: '1s',
        typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http2_protocol_options: {} } } },
        load_assignment: { cluster_name: 'xds', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: xdsPort } } } }] }] },
      }],
    },
  };
}

interface Sample { readyMs: number; rss: number; rssAfterGc: number; heapUsed: number; heapTotal: number; external: number }

async function measure(root: string, n: number, server: XdsServer, xdsPort: number): Promise<Sample> {
  const adminPort = await freePort();
  const config = join(dir, `bootstrap-${adminPort}.json`);
  writeFileSync(config, JSON.stringify(bootstrap(xdsPort, adminPort)));
  const probeOut = join(dir, `probe-${adminPort}.json`);
  const log = join(dir, `pf-${adminPort}.log`);
  const fd = openSync(log, 'a');
  const t0 = performance.now();
  const proc = spawn('taskset', ['-c', o['proxy-core'], process.execPath, '--expose-gc', '--import', PROBE, join(root, 'bin/pilotfish.js'), 'proxy', '-c', config, '-l', 'warning'], {
    stdio: ['ignore', fd, fd], env: { ...process.env, PF_PROBE_OUT: probeOut, PF_PROBE_GC: '1', ...(o.snapshots ? { PF_PROBE_SNAPSHOT: join(resolve(o.snapshots), `${basename(root)}-${n}.heapsnapshot`) } : {}) },
  });
  closeSync(fd);
  live.add(proc);
  const exited = new Promise((r) => proc.once('exit', r));
  try {
    const last = `cluster.${cname(n - 1)}.membership_total: ${E}`;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`pilotfish exited: ${readFileSync(log, 'utf8').slice(-1000)}`);
      if (performance.now() - t0 > 300_000) throw new Error('not ready in 300 s');
      const ready = await get(`http://127.0.0.1:${adminPort}/ready`, 2000);
      if (ready.status === 200) {
        const stats = await get(`http://127.0.0.1:${adminPort}/stats?filter=${encodeURIComponent(`^cluster\\.${reEsc(cname(n - 1))}\\.membership_total$`)}`, 10_000);
        if (stats.body.includes(last)) break;
      }
      await sleep(20);
    }
    const readyMs = performance.now() - t0;
    await sleep(Number(o.settle) * 1000);
    const rss = rssMB(proc.pid!);
    proc.kill('SIGUSR2');
    for (let i = 0; i < 6000 && !existsSync(probeOut); i++) await sleep(20); // up to 120 s: with $PF_PROBE_SNAPSHOT a heap snapshot is written first
    await sleep(100);
    const probe = JSON.parse(readFileSync(probeOut, 'utf8')) as { memoryUsage: { heapUsed: number; heapTotal: number; external: number } };
    const mb = (b: number) => b / 1048576;
    const rssAfterGc = rssMB(proc.pid!); // the probe ran a full GC: what garbage and free heap pages were in `rss`
    return { readyMs, rss, rssAfterGc, heapUsed: mb(probe.memoryUsage.heapUsed), heapTotal: mb(probe.memoryUsage.heapTotal), external: mb(probe.memoryUsage.external) };
  } finally {
    proc.kill('SIGKILL');
    await exited;
    live.delete(proc);
  }
}

const results = new Map<string, Sample[]>();
const key = (root: string, n: number) => `${root}|${n}`;
const server = new XdsServer();
const xdsPort = await server.listen(0, '127.0.0.1');
try {
  for (const n of SIZES) {
    const clusters: Record<string, Record<string, unknown>> = {};
    const clas: Record<string, Record<string, unknown>> = {};
    for (let i = 0; i < n; i++) { clusters[cname(i)] = cluster(i); clas[cname(i)] = cla(i); }
    server.setResources(TYPE_URLS.listener, {});
    server.setResources(TYPE_URLS.cluster, clusters);
    server.setResources(TYPE_URLS.endpoint, clas);
    for (let round = 1; round <= Number(o.rounds); round++) {
      for (const root of roots) {
        process.stderr.write(`N=${n} round ${round}: ${root}\n`);
        const s = await measure(root, n, server, xdsPort);
        results.set(key(root, n), [...(results.get(key(root, n)) ?? []), s]);
      }
    }
  }
} finally {
  await server.close();
  cleanup();
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const med = (root: string, n: number, k: keyof Sample) => median((results.get(key(root, n)) ?? []).map((s) => s[k]));
console.log(`# pilotfish with N clusters × ${E} endpoints over ADS (${o.api}, CDS + EDS, ${o.names} cluster names)\n`);
console.log(`${new Date().toISOString()}, node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${o.rounds} rounds alternating builds (medians); proxy on core ${o['proxy-core']}, xDS server on core ${o['load-core']}; RSS ${o.settle} s after ready; heap used after a full GC\n`);
console.log('| build | N | start to ready ms | RSS MB | RSS after a full GC MB | V8 heap used MB | V8 heap committed MB | external MB | RSS per cluster KB | after GC per cluster KB | heap per cluster KB |\n|---|---|---|---|---|---|---|---|---|---|---|');
for (const root of roots) {
  for (const n of SIZES) {
    const per = (k: keyof Sample) => (n > SIZES[0]! ? (((med(root, n, k) - med(root, SIZES[0]!, k)) * 1024) / (n - SIZES[0]!)).toFixed(1) : '–');
    console.log(`| ${basename(root)} | ${n} | ${med(root, n, 'readyMs').toFixed(0)} | ${med(root, n, 'rss').toFixed(1)} | ${med(root, n, 'rssAfterGc').toFixed(1)} | ${med(root, n, 'heapUsed').toFixed(1)} | ${med(root, n, 'heapTotal').toFixed(1)} | ${med(root, n, 'external').toFixed(1)} | ${per('rss')} | ${per('rssAfterGc')} | ${per('heapUsed')} |`);
  }
}
