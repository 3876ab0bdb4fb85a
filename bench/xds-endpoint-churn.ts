/**
 * xDS endpoint churn: time from the control plane's push of a one-endpoint change to the
 * ConfigSink call that applies it, over real gRPC on 127.0.0.1, for
 *   leds       Delta ADS + LEDS: only the one LbEndpoint resource travels
 *   delta-eds  Delta ADS, EDS: the cluster's whole ClusterLoadAssignment travels (other clusters do not)
 *   sotw-eds   SotW ADS, EDS: the whole ClusterLoadAssignment travels (state of the world)
 * with clusters of 10 / 1,000 / 10,000 endpoints (--large adds 100,000).
 *
 *   node --import tsx bench/xds-endpoint-churn.ts [--quick] [--large] [--rounds N]
 *
 * Rounds alternate scenarios (A B C A B C ...) and alternately add one new endpoint and
 * remove it again. Reported: median and p90 of end-to-end ms, and of the part spent in
 * the control plane's update call (compare, encode, write). Markdown to stdout, JSON to
 * bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cluster, ConfigSink, Endpoint, EndpointDiff } from '../config/src/index.js';
import { ControlPlane, lbEndpointJson, ledsResourceName, loadAssignmentJson, parseMesh, type MeshEndpoint, type MeshService } from '../controlplane/src/index.js';
import { TYPE_URLS, XdsClient, type ApiType } from '../xds-client/src/index.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const sizes = [10, 1_000, 10_000, ...(args.includes('--large') ? [100_000] : [])];
const roundsArg = args.indexOf('--rounds');
const baseRounds = roundsArg >= 0 ? Number(args[roundsArg + 1]) : quick ? 6 : 40;

const startLoad = os.loadavg();

type Scenario = 'leds' | 'delta-eds' | 'sotw-eds';
const SCENARIOS: Scenario[] = ['leds', 'delta-eds', 'sotw-eds'];

function ep(i: number): MeshEndpoint {
  return { address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080, zone: 'a', weight: 1, ready: true, serving: true, terminating: false };
}

class TimingSink implements ConfigSink {
  clusters = new Map<string, number>();
  private waiter: ((t: number) => void) | undefined;
  private ready: (() => void) | undefined;
  upsertCluster(c: Cluster, endpoints: readonly Endpoint[]): void {
    this.clusters.set(c.name, endpoints.length);
    this.ready?.();
  }
  applyEndpointDiff(_d: EndpointDiff): void {
    const t = performance.now();
    const w = this.waiter;
    this.waiter = undefined;
    w?.(t);
  }
  removeCluster(): void {}
  upsertRouteConfiguration(): void {}
  removeRouteConfiguration(): void {}
  upsertListener(): void {}
  removeListener(): void {}
  upsertSecret(): void {}
  removeSecret(): void {}
  commit(): void {}
  nextDiff(timeoutMs = 30_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no endpoint diff arrived')), timeoutMs);
      this.waiter = (t) => {
        clearTimeout(timer);
        resolve(t);
      };
    });
  }
  warm(n: number, timeoutMs = 60_000): Promise<void> {
    if (this.clusters.get('web') === n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('cluster did not warm')), timeoutMs);
      this.ready = () => {
        if (this.clusters.get('web') === n) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  }
}

interface Setup {
  scenario: Scenario;
  cp: ControlPlane;
  client: XdsClient;
  sink: TimingSink;
  service: MeshService;
}

async function setup(scenario: Scenario, n: number): Promise<Setup> {
  const leds = scenario === 'leds';
  const endpoints = Array.from({ length: n }, (_, i) => ep(i));
  const mesh = parseMesh({ services: [{ name: 'web', leds, endpoints: [] }, { name: 'other', endpoints: [{ address: '10.255.0.1', port: 80 }] }] });
  const service = { ...mesh.services[0]!, endpoints };
  const cp = new ControlPlane();
  cp.setMesh({ ...mesh, services: [service, mesh.services[1]!] });
  const port = await cp.listen(0);
  const sink = new TimingSink();
  const apiType: ApiType = scenario === 'sotw-eds' ? 'GRPC' : 'DELTA_GRPC';
  const client = new XdsClient({ node: { id: `bench-${scenario}`, cluster: 'bench', metadata: {} }, servers: [{ address: '127.0.0.1', port }], apiType, sink });
  client.start();
  await sink.warm(n);
  return { scenario, cp, client, sink, service };
}

/** One change: add endpoint #n (round even) or remove it again (round odd). Returns [e2e, server] ms. */
async function round(s: Setup, n: number, add: boolean): Promise<[number, number]> {
  const extra = ep(n);
  const next = s.sink.nextDiff();
  const t0 = performance.now();
  if (s.scenario === 'leds') {
    const name = ledsResourceName('web', extra);
    if (add) s.cp.server.updateResources(TYPE_URLS.lbEndpoint, new Map([[name, lbEndpointJson(extra)]]));
    else s.cp.server.updateResources(TYPE_URLS.lbEndpoint, new Map(), [name]);
  } else {
    const svc = { ...s.service, endpoints: add ? [...s.service.endpoints, extra] : s.service.endpoints };
    s.cp.server.updateResources(TYPE_URLS.endpoint, new Map([['web', loadAssignmentJson(svc)]]));
  }
  const t1 = performance.now();
  const t2 = await next;
  return [t2 - t0, t1 - t0];
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const results: { size: number; scenario: Scenario; rounds: number; e2eMinMs: number; e2eMedianMs: number; e2eP90Ms: number; serverMedianMs: number }[] = [];

for (const n of sizes) {
  const rounds = Math.max(4, n >= 100_000 ? Math.min(baseRounds, 6) : n >= 10_000 ? Math.min(baseRounds, 20) : baseRounds);
  process.stderr.write(`size ${n}: setting up\n`);
  const setups: Setup[] = [];
  for (const sc of SCENARIOS) setups.push(await setup(sc, n));
  const e2e = new Map<Scenario, number[]>(SCENARIOS.map((s) => [s, []]));
  const srv = new Map<Scenario, number[]>(SCENARIOS.map((s) => [s, []]));
  // warm-up round pair, not recorded
  for (const s of setups) {
    await round(s, n, true);
    await round(s, n, false);
  }
  for (let r = 0; r < rounds; r++) {
    for (const s of setups) {
      const [a, b] = await round(s, n, r % 2 === 0);
      e2e.get(s.scenario)!.push(a);
      srv.get(s.scenario)!.push(b);
    }
  }
  for (const s of setups) {
    results.push({
      size: n,
      scenario: s.scenario,
      rounds,
      e2eMinMs: Math.min(...e2e.get(s.scenario)!),
      e2eMedianMs: pct(e2e.get(s.scenario)!, 50),
      e2eP90Ms: pct(e2e.get(s.scenario)!, 90),
      serverMedianMs: pct(srv.get(s.scenario)!, 50),
    });
    s.client.stop();
    await s.cp.close();
  }
}

const conditions = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
  loadavg: startLoad,
  note: 'control plane and client in one process, 127.0.0.1 gRPC; e2e = push call start -> ConfigSink.applyEndpointDiff',
};
const fmt = (x: number) => x.toFixed(2);
let md = `## xDS endpoint churn (one-endpoint change, push -> sink)\n\n${conditions.cpus}, Node ${conditions.node}, ${conditions.date}\n\n`;
md += `load average at start: ${conditions.loadavg.map((x) => x.toFixed(1)).join(' ')}\n\n`;
md += '| endpoints | scenario | e2e min ms | e2e median ms | e2e p90 ms | in control plane (median) ms | rounds |\n|---:|---|---:|---:|---:|---:|---:|\n';
for (const r of results) md += `| ${r.size} | ${r.scenario} | ${fmt(r.e2eMinMs)} | ${fmt(r.e2eMedianMs)} | ${fmt(r.e2eP90Ms)} | ${fmt(r.serverMedianMs)} | ${r.rounds} |\n`;
process.stdout.write(md);
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, `xds-endpoint-churn-${conditions.date.replace(/[:.]/g, '-')}.json`), JSON.stringify({ conditions, results }, null, 2));
