/**
 * Endpoint churn benchmark: cost of applying endpoint diffs to a cluster's EndpointSet,
 * per lb policy and cluster size, beside the cost of a full (SotW) update.
 *
 *   node --import tsx bench/endpoint-churn.ts [--quick]
 *
 * Columns (times are medians over many runs; B/op is heap growth per operation,
 * measured between forced GCs):
 *   1ep      one-endpoint diff (alternately add one new / remove it)
 *   1chg     one endpoint changed (health flips healthy <-> unhealthy)
 *   5k       5,000-endpoint diff (>= 5k hosts: 2,500 removed + 2,500 added, rotating;
 *            smaller clusters: 5,000 added, then the same 5,000 removed)
 *   full     diffEndpoints(full list with one change) + apply
 *   rebuild  RING_HASH/MAGLEV: the batched table rebuild after a change (what apply defers)
 *   pick     one pick() on the steady set; its B column is bytes allocated by
 *            proxy/src/cluster code per pick, from V8's sampling heap profiler
 *            (heapUsed deltas are dominated by JIT artefacts at this scale)
 */
import { Session } from 'node:inspector/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { diffEndpoints } from '../config/src/index.js';
import type { Endpoint, EndpointDiff, LbPolicy } from '../config/src/index.js';
import { EndpointSet, type EndpointSetOptions } from '../proxy/src/cluster/endpoint-set.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const quick = process.argv.includes('--quick');
const POLICIES: LbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV'];
const SIZES = [10, 1_000, 10_000, 100_000];

function endpoint(i: number, weight = 1, health: Endpoint['health'] = 'healthy'): Endpoint {
  const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  return {
    key: `${address}:8080`,
    address,
    port: 8080,
    hostname: '',
    // a few heavier hosts so weighted paths (EDF, Fenwick) are exercised
    weight: i % 10 === 0 ? 3 : weight,
    priority: 0,
    locality: `region/zone-${i % 3}/`,
    localityWeight: 1,
    health,
  };
}

function options(lbPolicy: LbPolicy): EndpointSetOptions {
  return {
    lbPolicy,
    healthyPanicThreshold: 50,
    overprovisioningFactor: 140,
    localityWeightedLb: false,
    ringHash: { minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024 },
    maglev: { tableSize: 65537 },
    leastRequest: { choiceCount: 2 },
  };
}

const d = (o: Partial<EndpointDiff>): EndpointDiff => ({ cluster: 'bench', added: [], removed: [], changed: [], ...o });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Median time (ms) of `op(i)` over `runs` runs, and heap growth per op (bytes). */
function measure(runs: number, op: (i: number) => void): { ms: number; bytes: number } {
  for (let i = 0; i < Math.min(runs, 20); i++) op(i); // warm-up (JIT)
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    op(i);
    times.push(performance.now() - t0);
  }
  // Allocation pass, separate from timing so the timing array does not count.
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < runs; i++) op(i);
  const after = process.memoryUsage().heapUsed;
  return { ms: median(times), bytes: Math.max(0, (after - before) / runs) };
}

interface Row {
  policy: LbPolicy;
  n: number;
  one: { ms: number; bytes: number };
  chg: { ms: number; bytes: number };
  five: { ms: number; bytes: number };
  full: { ms: number; bytes: number };
  rebuild?: number;
  pick: { ms: number; bytes: number };
}

const session = new Session();
session.connect();

interface SampleNode {
  callFrame: { url: string };
  selfSize: number;
  children: SampleNode[];
}

/** Bytes allocated (sampled, including garbage) under frames of proxy/src/cluster. */
async function sampledClusterBytes(run: () => void): Promise<number> {
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 32,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  run();
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: SampleNode } };
  let bytes = 0;
  const walk = (node: SampleNode, ours: boolean): void => {
    const inOurs = ours || node.callFrame.url.includes('/proxy/src/cluster/');
    if (inOurs) bytes += node.selfSize;
    for (const c of node.children) walk(c, inOurs);
  };
  walk(profile.head, false);
  return bytes;
}

/**
 * Bytes our code allocates per pick. Run after all timings: the sampling profiler
 * slows everything that runs after it.
 */
async function pickAllocation(policy: LbPolicy, n: number): Promise<number> {
  const hashed = policy === 'RING_HASH' || policy === 'MAGLEV';
  const set = new EndpointSet('bench', options(policy), Array.from({ length: n }, (_, i) => endpoint(i)));
  const ctx = { hash: NaN, exclude: undefined }; // one shape for all policies (see PickContext)
  let sink = 0;
  const picks = (runs: number): void => {
    for (let i = 0; i < runs; i++) {
      if (hashed) ctx.hash = i;
      sink += set.pick(ctx) === undefined ? 0 : 1;
    }
  };
  picks(100_000); // warm-up: optimised code
  const N = 200_000;
  const bytes = await sampledClusterBytes(() => picks(N));
  if (sink < 0) console.log(sink);
  set.close();
  return bytes / N;
}

async function benchOne(policy: LbPolicy, n: number): Promise<Row> {
  const hashed = policy === 'RING_HASH' || policy === 'MAGLEV';
  const base = Array.from({ length: n }, (_, i) => endpoint(i));
  const set = new EndpointSet('bench', options(policy), base);
  set.pick({ hash: 1 }); // hash tables exist and are "in use", so changes schedule rebuilds

  // one-endpoint diffs: add a fresh endpoint, then remove it
  const extra = Array.from({ length: 64 }, (_, i) => endpoint(n + 1_000_000 + i));
  const addDiffs = extra.map((e) => d({ added: [e] }));
  const rmDiffs = extra.map((e) => d({ removed: [e.key] }));
  const one = measure(quick ? 200 : 2000, (i) => {
    const k = (i >> 1) % extra.length;
    set.apply(i % 2 === 0 ? addDiffs[k]! : rmDiffs[k]!);
  });
  if (set.size !== n) set.apply(d({ removed: extra.map((e) => e.key) }));

  // one endpoint changed: health flip
  const victim = base[n >> 1]!;
  const flip = [d({ changed: [{ ...victim, health: 'unhealthy' }] }), d({ changed: [victim] })];
  const chg = measure(quick ? 200 : 2000, (i) => {
    set.apply(flip[i % 2]!);
  });

  // 5,000-endpoint diffs
  let fiveDiffs: EndpointDiff[];
  if (n >= 5000) {
    // rotate: remove 2,500 of the current hosts, add 2,500 new ones; next diff reverses.
    const out = base.slice(0, 2500);
    const inn = Array.from({ length: 2500 }, (_, i) => endpoint(n + 2_000_000 + i));
    fiveDiffs = [
      d({ removed: out.map((e) => e.key), added: inn }),
      d({ removed: inn.map((e) => e.key), added: out }),
    ];
  } else {
    const inn = Array.from({ length: 5000 }, (_, i) => endpoint(n + 2_000_000 + i));
    fiveDiffs = [d({ added: inn }), d({ removed: inn.map((e) => e.key) })];
  }
  const fiveRuns = quick ? 6 : n >= 100_000 ? 20 : 40;
  const five = measure(fiveRuns, (i) => {
    set.apply(fiveDiffs[i % 2]!);
  });
  if (fiveRuns % 2 === 1) set.apply(fiveDiffs[1]!);

  // full update: the whole list with one endpoint changed, diffed against the current state
  const current = new Map<string, Endpoint>();
  for (const h of set.hosts()) current.set(h.key, h.endpoint);
  const fullA = base.map((e) => (e === victim ? { ...victim, weight: 7 } : e));
  const fullB = base;
  const fullRuns = quick ? 4 : n >= 100_000 ? 10 : n >= 10_000 ? 30 : 100;
  const full = measure(fullRuns, (i) => {
    const next = i % 2 === 0 ? fullA : fullB;
    const diff = diffEndpoints('bench', current, next);
    set.apply(diff);
    for (const e of diff.changed) current.set(e.key, e);
  });

  let rebuild: number | undefined;
  if (hashed) {
    const times: number[] = [];
    for (let i = 0; i < (quick ? 2 : n >= 100_000 ? 5 : 11); i++) {
      set.apply(flip[0]!);
      set.apply(flip[1]!);
      const t0 = performance.now();
      set.flushRebuilds();
      times.push(performance.now() - t0);
    }
    rebuild = median(times);
  }

  // pick: steady state
  const PICKS = 1000;
  let sink = 0;
  const ctx = { hash: NaN, exclude: undefined };
  const picks = (i: number): void => {
    for (let k = 0; k < PICKS; k++) {
      if (hashed) ctx.hash = i * PICKS + k;
      const h = set.pick(ctx);
      sink += h === undefined ? 0 : 1;
    }
  };
  const pickRuns = quick ? 50 : 200;
  const pick = measure(pickRuns, picks);
  if (sink < 0) console.log(sink);
  set.close();
  return { policy, n, one, chg, five, full, rebuild, pick: { ms: pick.ms / PICKS, bytes: pick.bytes / PICKS } };
}

const us = (ms: number) => (ms * 1000).toFixed(ms < 0.01 ? 2 : 1);
const mss = (ms: number) => ms.toFixed(ms < 1 ? 3 : 1);
const bytes = (b: number) => (b >= 10_000 ? `${(b / 1024).toFixed(0)}K` : b.toFixed(0));

const header = [
  'policy', 'hosts', '1ep µs', '1ep B', '1chg µs', '1chg B', '5k ms', '5k B', 'full ms', 'full B', 'rebuild ms', 'pick ns', 'pick B',
];
const results: Row[] = [];
const started = performance.now();
for (const policy of POLICIES) {
  for (const n of SIZES) {
    results.push(await benchOne(policy, n));
    process.stderr.write(`${policy} ${n} done (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
    gc();
  }
}
for (const r of results) r.pick.bytes = await pickAllocation(r.policy, r.n);
const rows = results.map((r) => [
  r.policy, String(r.n), us(r.one.ms), bytes(r.one.bytes), us(r.chg.ms), bytes(r.chg.bytes), mss(r.five.ms), bytes(r.five.bytes),
  mss(r.full.ms), bytes(r.full.bytes), r.rebuild === undefined ? '-' : mss(r.rebuild), (r.pick.ms * 1e6).toFixed(0), r.pick.bytes.toFixed(1),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => (i < 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
console.log(`\nnode ${process.version}, total ${((performance.now() - started) / 1000).toFixed(0)} s`);
