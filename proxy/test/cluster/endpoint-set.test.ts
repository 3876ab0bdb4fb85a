import t from 'tap';
import { EndpointSet, endpointSetOptions, type Host } from '../../src/cluster/endpoint-set.js';
import { count, diff, ep, opts, POLICIES } from './helpers.js';

t.test('apply: add, change, remove; identity preserved across change', async (t) => {
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), [ep(1), ep(2)]);
  t.equal(s.size, 2);
  const h1 = s.get(ep(1).key)!;
  h1.upstream = 'pool-1';
  h1.activeRequests = 3;
  const r = s.apply(diff({ added: [ep(3)], removed: [ep(2).key], changed: [ep(1, { weight: 5, hostname: 'x' })] }));
  t.equal(r.added.length, 1);
  t.equal(r.added[0]!.endpoint.key, ep(3).key);
  t.equal(r.removed.length, 1);
  t.equal(r.removed[0]!.removed, true, 'removed host is flagged for in-flight holders');
  t.equal(s.get(ep(2).key), undefined);
  t.equal(s.size, 2);
  const again = s.get(ep(1).key)!;
  t.equal(again, h1, 'same Host object after change');
  t.equal(again.upstream, 'pool-1');
  t.equal(again.activeRequests, 3);
  t.equal(again.endpoint.weight, 5);
  t.equal(again.endpoint.hostname, 'x');
  t.same([...s.hosts()].map((h) => h.key).sort(), [ep(1).key, ep(3).key].sort());
});

t.test('apply tolerates replays: added-existing = change, changed-missing = add, removed-missing ignored', async (t) => {
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), [ep(1)]);
  const h = s.get(ep(1).key)!;
  const r = s.apply(diff({ added: [ep(1, { weight: 2 })], changed: [ep(2)], removed: ['nope:1'] }));
  t.equal(s.get(ep(1).key), h);
  t.equal(h.endpoint.weight, 2);
  t.same(r.added.map((x) => x.key), [ep(2).key]);
  t.same(r.removed, []);
});

t.test('identity preserved across priority / health changes for every policy', async (t) => {
  for (const p of POLICIES) {
    const s = new EndpointSet('c', opts(p, { localityWeightedLb: true }), [ep(1), ep(2)]);
    const h = s.get(ep(1).key)!;
    s.apply(diff({ changed: [ep(1, { priority: 1, locality: 'other/z/s', health: 'degraded' })] }));
    t.equal(s.get(ep(1).key), h, p);
    s.apply(diff({ changed: [ep(1)] }));
    t.equal(s.get(ep(1).key), h, p);
    t.same(s.stats(), { healthy: 2, degraded: 0, total: 2, panic: false }, p);
  }
});

t.test('draining, unhealthy and ejected hosts are never picked while enough are healthy', async (t) => {
  for (const p of POLICIES) {
    const eps = [ep(1, { health: 'draining' }), ep(2, { health: 'unhealthy' }), ep(3), ep(4), ep(5), ep(6)];
    const s = new EndpointSet('c', opts(p), eps);
    s.setHostAvailability(s.get(ep(3).key)!, false);
    const c = count(() => s.pick({}), 2000);
    t.same([...c.keys()].sort(), [ep(4).key, ep(5).key, ep(6).key].sort(), p);
    t.same(s.stats(), { healthy: 3, degraded: 0, total: 6, panic: false }, p);
    // restore the ejected host
    s.setHostAvailability(s.get(ep(3).key)!, true);
    if (p === 'RING_HASH' || p === 'MAGLEV') s.flushRebuilds();
    const c2 = count(() => s.pick({}), 2000);
    t.ok(c2.has(ep(3).key), `${p}: restored host is picked again`);
    t.notOk(c2.has(ep(1).key) || c2.has(ep(2).key), p);
  }
});

t.test('a draining host is not picked even in panic', async (t) => {
  for (const p of POLICIES) {
    const s = new EndpointSet('c', opts(p), [ep(1, { health: 'draining' }), ep(2, { health: 'unhealthy' }), ep(3, { health: 'unhealthy' })]);
    const c = count(() => s.pick({}), 500);
    t.notOk(c.has(ep(1).key), p);
    t.ok(c.has(ep(2).key) && c.has(ep(3).key), `${p}: panic balances over unhealthy hosts`);
    t.equal(s.stats().panic, true);
  }
});

t.test('all hosts draining, or none: no host', async (t) => {
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), [ep(1, { health: 'draining' })]);
  t.equal(s.pick({}), undefined);
  const empty = new EndpointSet('c', opts('MAGLEV'));
  t.equal(empty.pick({ hash: 7 }), undefined);
  t.same(empty.stats(), { healthy: 0, degraded: 0, total: 0, panic: false });
});

t.test('panic threshold', async (t) => {
  // 10 hosts, 4 healthy: 40% < 50% -> panic: all 10 (incl. unhealthy) receive traffic.
  const eps = Array.from({ length: 10 }, (_, i) => ep(i, { health: i < 4 ? 'healthy' : 'unhealthy' }));
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), eps);
  let c = count(() => s.pick({}), 1000);
  t.equal(c.size, 10);
  t.equal(s.stats().panic, true);
  // 5 healthy: 50% is not below 50% -> no panic: only the healthy 5.
  s.apply(diff({ changed: [ep(4)] }));
  c = count(() => s.pick({}), 1000);
  t.equal(c.size, 5);
  t.equal(s.stats().panic, false);
  // threshold 0 disables panic: no healthy host -> undefined
  const s0 = new EndpointSet('c', opts('ROUND_ROBIN', { healthyPanicThreshold: 0 }), [ep(1, { health: 'unhealthy' })]);
  t.equal(s0.pick({}), undefined);
  t.equal(s0.stats().panic, false);
  // ejection counts toward panic like unhealthy
  const s2 = new EndpointSet('c', opts('LEAST_REQUEST'), [ep(1), ep(2), ep(3)]);
  s2.setHostAvailability(s2.get(ep(1).key)!, false);
  s2.setHostAvailability(s2.get(ep(2).key)!, false);
  t.equal(s2.stats().panic, true);
  t.equal(count(() => s2.pick({}), 300).size, 3);
});

t.test('priorities: spill-over with the overprovisioning factor', async (t) => {
  // P0: 10 hosts with k healthy; P1: 10 healthy. P0 gets min(100, 1.4 * k/10 * 100)%.
  for (const [k, want] of [[10, 100], [8, 100], [5, 70], [2, 28]] as const) {
    const eps = [
      ...Array.from({ length: 10 }, (_, i) => ep(i, { health: i < k ? 'healthy' : 'unhealthy' })),
      ...Array.from({ length: 10 }, (_, i) => ep(100 + i, { priority: 1 })),
    ];
    const s = new EndpointSet('c', opts('RANDOM', { healthyPanicThreshold: 0 }), eps);
    let p0 = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) if (s.pick({})!.endpoint.priority === 0) p0++;
    t.ok(Math.abs((100 * p0) / n - want) < 1.5, `k=${k}: P0 share ${((100 * p0) / n).toFixed(1)}% ~ ${want}%`);
  }
});

t.test('priorities: P1 only used when P0 is short; P0 recovers', async (t) => {
  const s = new EndpointSet('c', opts('ROUND_ROBIN'), [ep(1), ep(2, { priority: 1 })]);
  t.equal(count(() => s.pick({}), 100).get(ep(1).key), 100);
  s.setHostAvailability(s.get(ep(1).key)!, false);
  t.equal(count(() => s.pick({}), 100).get(ep(2).key), 100, 'all traffic fails over to P1');
  t.equal(s.stats().panic, false, 'P1 absorbs the load: no panic');
  s.setHostAvailability(s.get(ep(1).key)!, true);
  t.equal(count(() => s.pick({}), 100).get(ep(1).key), 100);
});

t.test('all priorities in panic: load by host count, over all hosts', async (t) => {
  const s = new EndpointSet('c', opts('RANDOM'), [
    ep(1, { health: 'unhealthy' }),
    ep(2, { health: 'unhealthy' }),
    ep(3, { health: 'unhealthy' }),
    ep(4, { priority: 1, health: 'unhealthy' }),
  ]);
  const c = count(() => s.pick({}), 8000);
  t.equal(c.size, 4);
  t.ok(Math.abs(c.get(ep(4).key)! / 8000 - 0.25) < 0.03);
});

t.test('degraded hosts are used only when healthy ones are not enough', async (t) => {
  // 10 healthy of 10 + degraded ones in the same priority: 5 healthy/5 degraded -> 70% healthy, 30% degraded
  const s = new EndpointSet('c', opts('RANDOM'), [
    ...Array.from({ length: 5 }, (_, i) => ep(i)),
    ...Array.from({ length: 5 }, (_, i) => ep(10 + i, { health: 'degraded' })),
  ]);
  let deg = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) if (s.pick({})!.endpoint.health === 'degraded') deg++;
  t.ok(Math.abs(deg / n - 0.3) < 0.015, `degraded share ${(deg / n).toFixed(3)} ~ 0.30`);
  t.same(s.stats(), { healthy: 5, degraded: 5, total: 10, panic: false });
  // with 8 healthy of 10 the healthy hosts absorb everything
  s.apply(diff({ changed: [ep(10, { health: 'healthy' }), ep(11, { health: 'healthy' }), ep(12, { health: 'healthy' })] }));
  deg = 0;
  for (let i = 0; i < 5000; i++) if (s.pick({})!.endpoint.health === 'degraded') deg++;
  t.equal(deg, 0);
  // healthy P1 is preferred over degraded P0
  const s2 = new EndpointSet('c', opts('ROUND_ROBIN'), [ep(1, { health: 'degraded' }), ep(2, { priority: 1 })]);
  const c = count(() => s2.pick({}), 100);
  t.equal(c.get(ep(2).key), 100);
});

t.test('locality weighted lb', async (t) => {
  const eps = [
    ...Array.from({ length: 4 }, (_, i) => ep(i, { locality: 'a//', localityWeight: 1 })),
    ...Array.from({ length: 4 }, (_, i) => ep(10 + i, { locality: 'b//', localityWeight: 3 })),
  ];
  for (const p of ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM'] as const) {
    const s = new EndpointSet('c', opts(p, { localityWeightedLb: true }), eps);
    let b = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) if (s.pick({})!.endpoint.locality === 'b//') b++;
    t.ok(Math.abs(b / n - 0.75) < 0.015, `${p}: locality b share ${(b / n).toFixed(3)} ~ 0.75`);
    // locality b loses 3 of 4 hosts: availability min(1, 1.4 * 1/4) = 0.35 -> weight 3*0.35=1.05 vs 1
    for (let i = 11; i < 14; i++) s.setHostAvailability(s.get(ep(i).key)!, false);
    b = 0;
    for (let i = 0; i < n; i++) if (s.pick({})!.endpoint.locality === 'b//') b++;
    t.ok(Math.abs(b / n - 1.05 / 2.05) < 0.02, `${p}: degraded locality share ${(b / n).toFixed(3)} ~ 0.512`);
  }
});

t.test('retry exclude avoids the previous host when another exists', async (t) => {
  for (const p of POLICIES) {
    const s = new EndpointSet('c', opts(p), [ep(1), ep(2), ep(3)]);
    for (let i = 0; i < 200; i++) {
      const first = s.pick({ hash: i })!;
      const second = s.pick({ hash: i, exclude: first })!;
      t.not(second, first, `${p} #${i}`);
      if (second === first) break;
    }
    const one = new EndpointSet('c', opts(p), [ep(1)]);
    const only = one.get(ep(1).key)!;
    t.equal(one.pick({ exclude: only }), only, `${p}: sole host still served`);
  }
});

t.test('endpointSetOptions from a cluster', async (t) => {
  const o = endpointSetOptions({
    lbPolicy: 'MAGLEV',
    healthyPanicThreshold: 40,
    localityWeightedLb: true,
    ringHash: { minimumRingSize: 10, maximumRingSize: 100 },
    maglev: { tableSize: 101 },
    leastRequest: { choiceCount: 3 },
    loadAssignment: { clusterName: 'c', endpoints: [], overprovisioningFactor: 200 },
  } as never);
  t.same(o, {
    lbPolicy: 'MAGLEV',
    healthyPanicThreshold: 40,
    overprovisioningFactor: 200,
    localityWeightedLb: true,
    ringHash: { minimumRingSize: 10, maximumRingSize: 100 },
    maglev: { tableSize: 101 },
    leastRequest: { choiceCount: 3 },
  });
});

t.test('removed host keeps working for in-flight holders', async (t) => {
  const s = new EndpointSet('c', opts('LEAST_REQUEST'), [ep(1), ep(2)]);
  const h: Host = s.get(ep(1).key)!;
  h.activeRequests++;
  s.apply(diff({ removed: [ep(1).key] }));
  h.activeRequests--;
  s.setHostAvailability(h, false); // no-op on a removed host
  t.equal(h.removed, true);
  t.equal(s.stats().total, 1);
  t.equal(count(() => s.pick({}), 50).get(ep(2).key), 50);
  // re-adding the key creates a new Host: the old one stays removed
  s.apply(diff({ added: [ep(1)] }));
  t.not(s.get(ep(1).key), h);
  t.equal(h.removed, true);
});
