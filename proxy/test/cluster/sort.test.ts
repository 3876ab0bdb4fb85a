import t from 'tap';
import fc from 'fast-check';
import { orderByHash } from '../../src/cluster/lb/sort.js';

const reference = (keys: Float64Array, n: number, tie: (a: number, b: number) => number) =>
  Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a]! - keys[b]! || tie(a, b));

t.test('orderByHash equals a comparator sort (radix path, shared prefixes, exact ties)', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 4096, max: 9000 }), (seed, n) => {
      let s = seed;
      const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const keys = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const r = rnd();
        // a mix of: full-range keys, keys sharing the top 32 bits, exact duplicates
        keys[i] = r < 0.6 ? Math.floor(rnd() * 2 ** 53) : r < 0.9 ? 2 ** 40 + Math.floor(rnd() * 2 ** 21) : 12345;
      }
      const tie = (a: number, b: number) => b - a;
      const got = Array.from(orderByHash(keys, n, tie));
      const want = reference(keys, n, tie);
      return got.every((v, i) => v === want[i]);
    }),
    { numRuns: 20 },
  );
  t.pass();
});

t.test('orderByHash small inputs', async (t) => {
  const keys = Float64Array.from([5, 1, 3, 1]);
  t.same(Array.from(orderByHash(keys, 4, (a, b) => a - b)), [1, 3, 2, 0]);
  t.same(Array.from(orderByHash(new Float64Array(0), 0, () => 0)), []);
});
