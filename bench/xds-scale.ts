/**
 * xDS at scale: client-side time to apply a one-resource change among N resources of a
 * type (N = 1, 1,000, 10,000), i.e. what the proxy's event loop spends per update:
 * decode, protocol state, warming/assembly, sink calls, dependent subscriptions.
 *
 *   sotw-cds   SotW CDS response: all N clusters, one changed (state of the world)
 *   sotw-eds   SotW EDS response: all N ClusterLoadAssignments, one changed
 *   delta-cds  Delta CDS response: the one changed cluster
 *   delta-eds  Delta EDS response: the one changed ClusterLoadAssignment
 *
 * Drives the real XdsClient's response handler in-process with a no-op sink and no
 * network (the transport is never started, so its requests go nowhere): network time
 * is bench/xds-endpoint-churn.ts's subject, this one is the per-update CPU cost.
 *
 *   node --import tsx bench/xds-scale.ts [--rounds N] [--src DIR] [--label NAME] [--json FILE]
 *
 * --src DIR runs the same bench against another checkout's sources (DIR holds
 * xds-client/ and config/, e.g. `git archive <commit> xds-client config | tar -x -C DIR`
 * with DIR/node_modules linked to this checkout's), for a before/after in one run.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
if (args.includes('--help')) {
  console.log('usage: node --import tsx bench/xds-scale.ts [--rounds N] [--src DIR] [--label NAME] [--json FILE]');
  process.exit(0);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(opt('--src') ?? path.join(here, '..'));
const label = opt('--label') ?? (opt('--src') ? root : 'this checkout');
const rounds = Number(opt('--rounds') ?? 21);
const SIZES = [1, 1_000, 10_000];

const xds = await import(pathToFileURL(path.join(root, 'xds-client/src/index.ts')).href);
const T = xds.TYPE_URLS as Record<string, string>;

const noopSink = {
  upsertCluster() {}, removeCluster() {}, applyEndpointDiff() {}, upsertRouteConfiguration() {}, removeRouteConfiguration() {},
  upsertListener() {}, removeListener() {}, upsertSecret() {}, removeSecret() {}, commit() {},
};

const clusterJson = (i: number, timeout = '1s') => ({ name: `c${i}`, type: 'EDS', connect_timeout: timeout, eds_cluster_config: { eds_config: { ads: {} } } });
const claJson = (i: number, port = 8080) => ({
  cluster_name: `c${i}`,
  endpoints: [{ locality: { zone: 'a' }, lb_endpoints: [1, 2, 3].map((k) => ({ endpoint: { address: { socket_address: { address: `10.0.${k}.${i & 255}`, port_value: port } } } })) }],
});
const anyOf = (typeUrl: string, json: object) => ({ type_url: typeUrl, value: xds.encodeJson(typeUrl, json) });

type Scenario = 'sotw-cds' | 'sotw-eds' | 'delta-cds' | 'delta-eds';
const SCENARIOS: Scenario[] = ['sotw-cds', 'sotw-eds', 'delta-cds', 'delta-eds'];

let nonce = 0;
function sotwResponse(typeUrl: string, resources: object[]) {
  const n = String(++nonce);
  return { version_info: n, nonce: n, type_url: typeUrl, resources };
}
function deltaResponse(typeUrl: string, resources: { name: string; any: object }[]) {
  const n = String(++nonce);
  return { system_version_info: n, nonce: n, type_url: typeUrl, resources: resources.map((r) => ({ name: r.name, version: n, resource: r.any, aliases: [] })), removed_resources: [] };
}

/** A client holding N warm EDS clusters, and a function applying one change. */
function setup(s: Scenario, n: number): () => void {
  const delta = s.startsWith('delta');
  const client = new xds.XdsClient({
    node: { id: 'bench', cluster: 'bench', metadata: {} },
    servers: [{ address: '127.0.0.1', port: 1 }],
    apiType: delta ? 'DELTA_GRPC' : 'GRPC',
    sink: noopSink,
    listeners: false,
    initialFetchTimeoutMs: 0,
  });
  const onResponse = (r: object) => (client as unknown as { onResponse(r: object): void }).onResponse(r);
  const clusters = Array.from({ length: n }, (_, i) => anyOf(T.cluster!, clusterJson(i)));
  const clas = Array.from({ length: n }, (_, i) => anyOf(T.endpoint!, claJson(i)));
  if (delta) {
    onResponse(deltaResponse(T.cluster!, clusters.map((a, i) => ({ name: `c${i}`, any: a }))));
    onResponse(deltaResponse(T.endpoint!, clas.map((a, i) => ({ name: `c${i}`, any: a }))));
  } else {
    onResponse(sotwResponse(T.cluster!, clusters));
    onResponse(sotwResponse(T.endpoint!, clas));
  }
  const pick = Math.floor(n / 2);
  // The encode of the changed resource is the server's work: done here, outside the timing.
  const variants = {
    cluster: [anyOf(T.cluster!, clusterJson(pick, '2s')), anyOf(T.cluster!, clusterJson(pick, '1s'))],
    cla: [anyOf(T.endpoint!, claJson(pick, 9090)), anyOf(T.endpoint!, claJson(pick, 8080))],
  };
  let flip = 0;
  return () => {
    flip ^= 1;
    const c = variants.cluster[flip ^ 1]!;
    const e = variants.cla[flip ^ 1]!;
    switch (s) {
      case 'sotw-cds': {
        const all = clusters.slice();
        all[pick] = c;
        return onResponse(sotwResponse(T.cluster!, all));
      }
      case 'sotw-eds': {
        const all = clas.slice();
        all[pick] = e;
        return onResponse(sotwResponse(T.endpoint!, all));
      }
      case 'delta-cds':
        return onResponse(deltaResponse(T.cluster!, [{ name: `c${pick}`, any: c }]));
      case 'delta-eds':
        return onResponse(deltaResponse(T.endpoint!, [{ name: `c${pick}`, any: e }]));
    }
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const results: Record<string, Record<number, number>> = {};
for (const s of SCENARIOS) {
  results[s] = {};
  for (const n of SIZES) {
    const step = setup(s, n);
    for (let i = 0; i < 3; i++) step(); // warm-up
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      step();
      times.push(performance.now() - t0);
    }
    results[s]![n] = median(times);
  }
}

const fmt = (ms: number) => (ms < 1 ? ms.toFixed(3) : ms.toFixed(1));
console.log(`## xDS client: one-resource change among N (${label})\n`);
console.log(`median ms per update over ${rounds} rounds; node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(2)}\n`);
console.log(`| scenario | N=1 | N=1,000 | N=10,000 | 10k / 1 |`);
console.log(`|---|---|---|---|---|`);
for (const s of SCENARIOS) {
  const r = results[s]!;
  console.log(`| ${s} | ${fmt(r[1]!)} | ${fmt(r[1000]!)} | ${fmt(r[10000]!)} | ${(r[10000]! / r[1]!).toFixed(0)}x |`);
}
const out = opt('--json') ?? path.join(here, 'results', `xds-scale-${Date.now()}.json`);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ label, rounds, node: process.version, load: os.loadavg(), results }, null, 2));
