/**
 * A subset knows whether it is unweighted (one distinct weight: round robin walks an index
 * array instead of the EDF heap) with two numbers, and a weight -> count map only while
 * two weights or more are present. Property: after any sequence of adds, removes and
 * reweighs, `uniform` and `totalWeight` equal what the entries say, and a round-robin
 * subset that says uniform picks every host in turn.
 */
import t from 'tap';
import fc from 'fast-check';
import { RoundRobinSubset } from '../../src/cluster/lb/round-robin.js';
import { Rng } from '../../src/cluster/lb/rng.js';
import { HASH, type Entry, type LbHost } from '../../src/cluster/lb/subset.js';
import type { Endpoint } from '../../../config/src/index.js';

function host(i: number, weight: number): LbHost {
  const endpoint: Endpoint = { key: `10.0.0.${i}:80`, address: `10.0.0.${i}`, port: 80, hostname: '', weight, priority: 0, locality: '', localityWeight: 1, health: 'healthy' };
  return { endpoint, activeRequests: 0, hashCache: undefined };
}

type Op = { kind: 'add'; weight: number } | { kind: 'remove'; at: number } | { kind: 'reweigh'; at: number; weight: number };
const weight = fc.constantFrom(0, 1, 2, 3, 5);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), weight }),
  fc.record({ kind: fc.constant('remove' as const), at: fc.nat(40) }),
  fc.record({ kind: fc.constant('reweigh' as const), at: fc.nat(40), weight }),
);

t.test('uniform and totalWeight follow the entries through adds, removes and reweighs', async (t) => {
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    const s = new RoundRobinSubset<LbHost>(new Rng(() => 0.5));
    const live: Entry<LbHost>[] = [];
    let n = 0;
    for (const o of ops) {
      if (o.kind === 'add') live.push(s.add(host(n++, o.weight)));
      else if (live.length > 0 && o.kind === 'remove') s.remove(live.splice(o.at % live.length, 1)[0]!);
      else if (live.length > 0 && o.kind === 'reweigh') s.reweigh(live[o.at % live.length]!, o.weight);
      const weights = s.entries.map((e) => e.weight);
      if (s.uniform !== new Set(weights).size <= 1) return false;
      if (s.totalWeight !== weights.reduce((a, b) => a + b, 0)) return false;
    }
    return true;
  }), { numRuns: 500 });
  t.pass('500 sequences checked');
});

t.test('back to one weight after a mix: round robin picks every host in turn again', async (t) => {
  const s = new RoundRobinSubset<LbHost>(new Rng(() => 0.25));
  const es = [1, 1, 1, 1].map((w, i) => s.add(host(i, w)));
  s.reweigh(es[0]!, 3);
  t.notOk(s.uniform, 'two weights: weighted');
  s.reweigh(es[0]!, 1);
  t.ok(s.uniform, 'one weight again: unweighted');
  const scratch = new Float64Array(1);
  scratch[HASH] = 0;
  const picks = Array.from({ length: 8 }, () => s.pick(scratch, undefined)!.endpoint.key);
  t.same(new Set(picks.slice(0, 4)).size, 4, 'four picks: four different hosts');
  t.same(picks.slice(4), picks.slice(0, 4), 'then the same order again');
});
