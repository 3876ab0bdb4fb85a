/**
 * A priority's all-hosts subset (what panic picks from) is built when the level first
 * enters panic and kept up to date from then on. Membership must be exact whenever panic
 * picks: hosts added, removed, drained or turned unhealthy before the first panic, between
 * two panics and during one.
 */
import t from 'tap';
import { EndpointSet } from '../../src/cluster/endpoint-set.js';
import { count, diff, ep, opts, POLICIES } from './helpers.js';

const keys = (ids: number[]) => new Set(ids.map((i) => ep(i).key));
/** Hosts panic picks: hashed policies first rebuild their tables (batched after a change; a stale table serves meanwhile). */
function picked(s: EndpointSet): Set<string> {
  s.pick({ hash: 1 }); // recomputes loads (and builds the all-hosts subset on a first panic)
  s.flushRebuilds();
  return new Set(count(() => s.pick({ hash: Math.floor(Math.random() * 2 ** 31) }), 4000).keys());
}

for (const p of POLICIES) {
  t.test(`${p}: panic picks every non-draining host, whenever the subset was built`, async (t) => {
    // 10 hosts, all healthy: no panic, the all-hosts subset not needed yet.
    const s = new EndpointSet('c', opts(p), Array.from({ length: 10 }, (_, i) => ep(i)));
    t.equal(count(() => s.pick({ hash: 1 }), 200).size > 0, true, 'healthy picks');
    t.equal(s.stats().panic, false);

    // Changes before the first panic: host 9 removed, 10 added, 8 draining.
    s.apply(diff({ removed: [ep(9).key], added: [ep(10)], changed: [ep(8, { health: 'draining' })] }));
    // Panic: 7 of 10 non-draining hosts unhealthy (3 healthy, 30% < 50%).
    s.apply(diff({ changed: [1, 2, 3, 4, 5, 6, 7].map((i) => ep(i, { health: 'unhealthy' })) }));
    t.equal(s.stats().panic, true, 'in panic');
    const first = picked(s);
    t.same(first, keys([0, 1, 2, 3, 4, 5, 6, 7, 10]), 'all non-draining hosts, none removed or draining');

    // During panic: host 11 added (unhealthy), 0 removed.
    s.apply(diff({ added: [ep(11, { health: 'unhealthy' })], removed: [ep(0).key] }));
    const during = picked(s);
    t.same(during, keys([1, 2, 3, 4, 5, 6, 7, 10, 11]), 'a host added in panic is picked, a removed one is not');

    // Out of panic, changes, then panic again.
    s.apply(diff({ changed: [1, 2, 3, 4, 5, 6, 7, 11].map((i) => ep(i)) }));
    t.equal(s.stats().panic, false, 'out of panic');
    s.apply(diff({ added: [ep(12)], removed: [ep(1).key], changed: [ep(8)] }));
    s.apply(diff({ changed: [2, 3, 4, 5, 6, 7, 8, 11, 12].map((i) => ep(i, { health: 'unhealthy' })) }));
    t.equal(s.stats().panic, true, 'in panic again');
    const again = picked(s);
    t.same(again, keys([2, 3, 4, 5, 6, 7, 8, 10, 11, 12]), 'the subset followed every change in between');
    s.close();
  });
}
