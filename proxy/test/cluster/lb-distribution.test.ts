import t from 'tap';
import { EndpointSet } from '../../src/cluster/endpoint-set.js';
import { count, diff, ep, opts } from './helpers.js';

t.test('ROUND_ROBIN unweighted: each host exactly once per cycle', async (t) => {
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), Array.from({ length: 7 }, (_, i) => ep(i)));
  for (let cycle = 0; cycle < 5; cycle++) {
    const seen = new Set<string>();
    for (let i = 0; i < 7; i++) seen.add(s.pick({})!.key);
    t.equal(seen.size, 7, `cycle ${cycle}`);
  }
});

t.test('ROUND_ROBIN weighted: exact proportions over a period', async (t) => {
  const weights = [1, 2, 3, 5, 9];
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), weights.map((w, i) => ep(i, { weight: w })));
  const period = weights.reduce((a, b) => a + b, 0);
  const c = count(() => s.pick({}), period * 100);
  weights.forEach((w, i) => t.equal(c.get(ep(i).key), w * 100, `weight ${w}`));
  // any window of one period is within 1 of the exact share (smoothness)
  const seq: string[] = [];
  for (let i = 0; i < period * 3; i++) seq.push(s.pick({})!.key);
  for (let start = 0; start + period <= seq.length; start += 5) {
    const win = seq.slice(start, start + period);
    weights.forEach((w, i) => {
      const n = win.filter((k) => k === ep(i).key).length;
      if (Math.abs(n - w) > 1) t.fail(`window ${start}: weight ${w} got ${n}`);
    });
  }
});

t.test('ROUND_ROBIN: weights follow changes (reweigh, remove) without rebuild', async (t) => {
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), [ep(1), ep(2), ep(3)]);
  s.apply(diff({ changed: [ep(1, { weight: 4 })] }));
  let c = count(() => s.pick({}), 600);
  t.equal(c.get(ep(1).key), 400);
  t.equal(c.get(ep(2).key), 100);
  s.apply(diff({ removed: [ep(2).key] }));
  c = count(() => s.pick({}), 500);
  t.equal(c.get(ep(1).key), 400);
  t.equal(c.get(ep(3).key), 100);
  s.apply(diff({ changed: [ep(1)] })); // back to uniform
  c = count(() => s.pick({}), 500);
  t.equal(c.get(ep(1).key), 250);
});

t.test('ROUND_ROBIN weighted retries skip a heavy excluded host', async (t) => {
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), [ep(1, { weight: 100 }), ep(2)]);
  const heavy = s.get(ep(1).key)!;
  for (let i = 0; i < 50; i++) t.not(s.pick({ exclude: heavy }), heavy);
});

t.test('LEAST_REQUEST prefers less loaded hosts', async (t) => {
  const eps = Array.from({ length: 10 }, (_, i) => ep(i));
  const s = new EndpointSet('c', opts('LEAST_REQUEST'), eps);
  // host i has 10*i active requests: with P2C the least loaded is picked most,
  // the most loaded never (it loses every comparison except against itself).
  eps.forEach((e, i) => (s.get(e.key)!.activeRequests = 10 * i));
  const c = count(() => s.pick({}), 20000);
  const share = (i: number) => (c.get(eps[i]!.key) ?? 0) / 20000;
  // P2C with replacement: P(pick rank r of n) = (2(n-r)-1)/n^2 -> rank 0: 19%, rank 9: 1%
  t.ok(Math.abs(share(0) - 0.19) < 0.015, `least loaded share ${share(0)}`);
  t.ok(share(9) < 0.02, `most loaded share ${share(9)}`);
  for (let i = 1; i < 10; i++) t.ok(share(i - 1) > share(i), `monotone at ${i}`);
});

t.test('LEAST_REQUEST simulated: balances in-flight load across hosts', async (t) => {
  const eps = Array.from({ length: 8 }, (_, i) => ep(i));
  const s = new EndpointSet('c', opts('LEAST_REQUEST'), eps);
  const hosts = eps.map((e) => s.get(e.key)!);
  // host 0 is slow: its requests never finish during the run
  for (let i = 0; i < 4000; i++) {
    const h = s.pick({})!;
    h.activeRequests++;
    if (h !== hosts[0]) h.activeRequests--; // instant completion
  }
  t.ok(hosts[0]!.activeRequests < 100, `slow host got ${hosts[0]!.activeRequests} of 4000`);
});

t.test('LEAST_REQUEST weighted: weight / (active + 1)', async (t) => {
  const s = new EndpointSet('c', opts('LEAST_REQUEST'), [ep(1, { weight: 3 }), ep(2, { weight: 1 })]);
  let c = count(() => s.pick({}), 4000);
  t.ok(Math.abs(c.get(ep(1).key)! / 4000 - 0.75) < 0.01, 'idle: by weight');
  // host 1 has 5 active: effective 3/6 = 0.5 vs 1/1 -> 1/3 of picks
  s.get(ep(1).key)!.activeRequests = 5;
  c = count(() => s.pick({}), 3000);
  t.ok(Math.abs(c.get(ep(1).key)! / 3000 - 1 / 3) < 0.02, `loaded: ${c.get(ep(1).key)! / 3000}`);
});

t.test('LEAST_REQUEST choiceCount = number of hosts always picks the least loaded... mostly', async (t) => {
  const eps = Array.from({ length: 3 }, (_, i) => ep(i));
  const s = new EndpointSet('c', opts('LEAST_REQUEST', { leastRequest: { choiceCount: 50 } }), eps);
  s.get(eps[0]!.key)!.activeRequests = 1;
  s.get(eps[1]!.key)!.activeRequests = 1;
  const c = count(() => s.pick({}), 1000);
  t.ok(c.get(eps[2]!.key)! > 990);
});

t.test('RANDOM weighted within tolerance, and after incremental changes', async (t) => {
  const weights = [1, 2, 3, 4, 10];
  const s = new EndpointSet('c', opts('RANDOM'), weights.map((w, i) => ep(i, { weight: w })));
  const check = (ws: number[], keys: string[], label: string) => {
    const n = 60000;
    const c = count(() => s.pick({}), n);
    const total = ws.reduce((a, b) => a + b, 0);
    ws.forEach((w, i) => {
      const got = (c.get(keys[i]!) ?? 0) / n;
      const want = w / total;
      // 5 sigma of a binomial
      const tol = 5 * Math.sqrt((want * (1 - want)) / n);
      t.ok(Math.abs(got - want) < tol, `${label}: weight ${w} got ${got.toFixed(4)} want ${want.toFixed(4)}`);
    });
  };
  check(weights, weights.map((_, i) => ep(i).key), 'initial');
  // remove the first (forces a swap-remove move in the tree), reweigh another, add one
  s.apply(diff({ removed: [ep(0).key], changed: [ep(3, { weight: 1 })], added: [ep(9, { weight: 6 })] }));
  check([2, 3, 1, 10, 6], [ep(1).key, ep(2).key, ep(3).key, ep(4).key, ep(9).key], 'after diff');
});

t.test('RANDOM weighted survives growth past the tree capacity and heavy churn', async (t) => {
  const s = new EndpointSet('c', opts('RANDOM'), []);
  const live = new Map<string, number>();
  let k = 0;
  for (let round = 0; round < 50; round++) {
    const added = Array.from({ length: 20 }, () => ep(k++, { weight: 1 + (k % 4) }));
    const removed = [...live.keys()].filter((_, i) => i % 3 === 0);
    s.apply(diff({ added, removed }));
    for (const r of removed) live.delete(r);
    for (const a of added) live.set(a.key, a.weight);
  }
  const total = [...live.values()].reduce((a, b) => a + b, 0);
  const n = 200000;
  const c = count(() => s.pick({}), n);
  t.equal(c.has('<none>'), false);
  let maxDev = 0;
  for (const [key, w] of live) maxDev = Math.max(maxDev, Math.abs((c.get(key) ?? 0) / n - w / total) / (w / total));
  t.ok(maxDev < 0.35, `max relative deviation ${maxDev.toFixed(3)} over ${live.size} hosts`);
  for (const key of c.keys()) t.ok(live.has(key), `picked ${key} is live`);
});

t.test('RANDOM unweighted is uniform', async (t) => {
  const s = new EndpointSet('c', opts('RANDOM'), Array.from({ length: 5 }, (_, i) => ep(i)));
  const c = count(() => s.pick({}), 50000);
  for (const v of c.values()) t.ok(Math.abs(v / 50000 - 0.2) < 0.01);
});
