import t from 'tap';
import { EndpointSet } from '../../src/cluster/endpoint-set.js';
import { hash53, mix53 } from '../../src/cluster/hash.js';
import { isPrime } from '../../src/cluster/lb/maglev.js';
import { buildMaglevTable, encodeFlowKey, flowHash } from '../../../fastpath/src/index.js';
import { diff, ep, opts } from './helpers.js';

const KEYS = 20000;
const keyHash = (i: number) => hash53(`user-${i}`);

function assignment(s: EndpointSet): string[] {
  const out: string[] = [];
  for (let i = 0; i < KEYS; i++) out.push(s.pick({ hash: keyHash(i) })!.key);
  return out;
}

for (const policy of ['RING_HASH', 'MAGLEV'] as const) {
  t.test(`${policy}: same hash, same host; spread over hosts`, async (t) => {
    const s = new EndpointSet('c', opts(policy), Array.from({ length: 10 }, (_, i) => ep(i)));
    const a = assignment(s);
    t.same(assignment(s), a, 'deterministic');
    const counts = new Map<string, number>();
    for (const k of a) counts.set(k, (counts.get(k) ?? 0) + 1);
    t.equal(counts.size, 10);
    for (const [k, v] of counts) t.ok(Math.abs(v / KEYS - 0.1) < 0.035, `${k}: ${(v / KEYS).toFixed(3)}`);
    // a fresh set with the same endpoints (another proxy) agrees
    const other = new EndpointSet('c', opts(policy, { random: Math.random }), Array.from({ length: 10 }, (_, i) => ep(9 - i)));
    t.same(assignment(other), a, 'independent of insertion order and process');
  });

  t.test(`${policy}: removing 1 of N remaps ~1/N of keys, and only the removed host's`, async (t) => {
    const N = 20;
    const s = new EndpointSet('c', opts(policy), Array.from({ length: N }, (_, i) => ep(i)));
    const before = assignment(s);
    s.apply(diff({ removed: [ep(7).key] }));
    s.flushRebuilds();
    const after = assignment(s);
    let moved = 0;
    let movedFromOthers = 0;
    for (let i = 0; i < KEYS; i++) {
      if (before[i] !== after[i]) {
        moved++;
        if (before[i] !== ep(7).key) movedFromOthers++;
      }
      if (after[i] === ep(7).key) t.fail('removed host still picked');
    }
    t.ok(Math.abs(moved / KEYS - 1 / N) < 0.02, `moved ${(moved / KEYS).toFixed(4)} ~ ${1 / N}`);
    // ring hash: exactly the removed host's keys; maglev: a little collateral by design
    const bound = policy === 'RING_HASH' ? 0 : 0.01;
    t.ok(movedFromOthers / KEYS <= bound, `collateral ${(movedFromOthers / KEYS).toFixed(4)}`);
    // adding it back restores the original mapping
    s.apply(diff({ added: [ep(7)] }));
    s.flushRebuilds();
    t.same(assignment(s), before);
  });

  t.test(`${policy}: stale table serves while a rebuild is pending, skipping removed and ejected hosts`, async (t) => {
    const s = new EndpointSet('c', opts(policy, { hashRebuildIntervalMs: 60_000 }), Array.from({ length: 10 }, (_, i) => ep(i)));
    const before = assignment(s); // builds the table (first use)
    s.apply(diff({ removed: [ep(3).key] })); // microtask rebuild is scheduled, not yet run
    s.setHostAvailability(s.get(ep(4).key)!, false);
    const during = assignment(s);
    for (let i = 0; i < KEYS; i++) {
      if (during[i] === ep(3).key || during[i] === ep(4).key) {
        t.fail(`key ${i} -> ${during[i]}`);
        break;
      }
      if (before[i] !== ep(3).key && before[i] !== ep(4).key && during[i] !== before[i]) {
        t.fail(`key ${i} moved from a healthy host while stale`);
        break;
      }
    }
    // many diffs in a burst coalesce: the microtask rebuild runs once, later ones wait for the interval
    await new Promise((r) => setImmediate(r));
    s.apply(diff({ removed: [ep(5).key] }));
    s.apply(diff({ removed: [ep(6).key] }));
    const stale = assignment(s);
    t.notOk(stale.includes(ep(5).key) || stale.includes(ep(6).key));
    s.flushRebuilds();
    const rebuilt = assignment(s);
    t.notOk(rebuilt.includes(ep(5).key) || rebuilt.includes(ep(6).key));
    s.close();
  });

  t.test(`${policy}: weights`, async (t) => {
    const s = new EndpointSet('c', opts(policy), [ep(1, { weight: 1 }), ep(2, { weight: 3 })]);
    const a = assignment(s);
    const heavy = a.filter((k) => k === ep(2).key).length / KEYS;
    t.ok(Math.abs(heavy - 0.75) < 0.04, `heavy share ${heavy.toFixed(3)}`);
  });

  t.test(`${policy}: no hash given -> random spread; priorities still apply`, async (t) => {
    const s = new EndpointSet('c', opts(policy), [ep(1), ep(2), ep(3, { priority: 1 })]);
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) seen.add(s.pick({})!.key);
    t.same([...seen].sort(), [ep(1).key, ep(2).key].sort());
    // P0 fails: hashing moves to P1
    s.setHostAvailability(s.get(ep(1).key)!, false);
    s.setHostAvailability(s.get(ep(2).key)!, false);
    t.equal(s.pick({ hash: 12345 })!.key, ep(3).key);
  });
}

t.test('ring size bounds', async (t) => {
  const s = new EndpointSet('c', opts('RING_HASH', { ringHash: { minimumRingSize: 64, maximumRingSize: 100 } }), [ep(1), ep(2, { weight: 100 })]);
  s.pick({ hash: 1 });
  // 1 point per weight unit would be 101 > max 100: halved -> 1 + 50 points
  const ring = (s as unknown as { prios: { healthy: { ringSize: number } }[] }).prios[0]!.healthy.ringSize;
  t.equal(ring, 51);
  const big = new EndpointSet('c', opts('RING_HASH'), Array.from({ length: 10 }, (_, i) => ep(i)));
  big.pick({ hash: 1 });
  // min 1024 over weight 10 -> 102.4/host -> 128/host
  t.equal((big as unknown as { prios: { healthy: { ringSize: number } }[] }).prios[0]!.healthy.ringSize, 1280);
});

t.test('maglev table size must be prime (falls back to 65537)', async (t) => {
  t.ok(isPrime(65537) && isPrime(101) && !isPrime(65536) && !isPrime(1));
  const s = new EndpointSet('c', opts('MAGLEV', { maglev: { tableSize: 1000 } }), [ep(1)]);
  s.pick({ hash: 1 });
  const size = (s as unknown as { prios: { healthy: { tableSize: number } }[] }).prios[0]!.healthy.tableSize;
  t.equal(size, 65537);
});

t.test('hash helpers are stable and spread', async (t) => {
  t.equal(hash53('10.0.0.1:80_0'), hash53('10.0.0.1:80_0'));
  t.not(hash53('a'), hash53('b'));
  t.ok(hash53('x') < 2 ** 53 && hash53('x') >= 0);
  // small sequential request hashes spread across the space
  let hi = 0;
  for (let i = 0; i < 1000; i++) if (mix53(i) > 2 ** 52) hi++;
  t.ok(hi > 430 && hi < 570, `${hi}`);
});

t.test('RING_HASH large ring (radix-sorted build): order-independent, stable under removal', async (t) => {
  const o = { ringHash: { minimumRingSize: 16384, maximumRingSize: 1 << 20 } };
  const a = new EndpointSet('c', opts('RING_HASH', o), Array.from({ length: 12 }, (_, i) => ep(i)));
  const b = new EndpointSet('c', opts('RING_HASH', o), Array.from({ length: 12 }, (_, i) => ep(11 - i)));
  const before = assignment(a);
  t.same(assignment(b), before);
  a.apply(diff({ removed: [ep(5).key] }));
  a.flushRebuilds();
  const after = assignment(a);
  let collateral = 0;
  for (let i = 0; i < KEYS; i++) if (before[i] !== ep(5).key && after[i] !== before[i]) collateral++;
  t.equal(collateral, 0);
});

// One Maglev: the proxy's MAGLEV balancer and the kernel's xdp_lb (whose table is
// buildMaglevTable's, looked up at flow_hash(key) % size — proven against the real BPF
// program in fastpath/test/maglev.test.ts) give every flow to the same backend.
t.test('MAGLEV: user-space pick for a flow hash equals the fast path table slot', async (t) => {
  const size = 251;
  const eps = Array.from({ length: 9 }, (_, i) => ep(i, { weight: i === 2 ? 4 : 1 }));
  const s = new EndpointSet('c', opts('MAGLEV', { maglev: { tableSize: size } }), [...eps].reverse());
  const table = buildMaglevTable(eps.map((e, i) => ({ key: e.key, weight: e.weight, id: i + 1 })), size);
  let agree = 0;
  const N = 5000;
  for (let i = 0; i < N; i++) {
    const tuple = { src: `198.18.${(i >> 8) & 255}.${i & 255}`, dst: '198.18.0.10', sport: 1024 + (i % 50000), dport: 80, proto: 6 };
    const h = flowHash(encodeFlowKey(tuple));
    const kernel = eps[table[h % size]! - 1]!.key;
    if (s.pick({ hash: h })!.key === kernel) agree++;
  }
  t.equal(agree, N, 'every flow agrees');
  s.close();
});
