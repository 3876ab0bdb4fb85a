import t from 'tap';
import fc from 'fast-check';
import { UseIndex } from '../src/use-index.js';

// Users and names from small alphabets, so that names get one, two, then no users again
// (a lone user is held as a string, a second one makes a Set, and back).
const user = fc.constantFrom('u1', 'u2', 'u3', 'u4');
const dep = fc.constantFrom('a', 'b', 'c');
const deps = fc.uniqueArray(dep, { maxLength: 3 });

t.test('answers as a plain two-way model does, and moves generation when the used names change', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(user, deps), { maxLength: 60 }), (ops) => {
      const idx = new UseIndex();
      const model = new Map<string, readonly string[]>();
      for (const [u, d] of ops) {
        const before = new Set([...model.values()].flat());
        const gen = idx.generation;
        idx.set(u, d);
        if (d.length === 0) model.delete(u);
        else model.set(u, d);
        const after = new Set([...model.values()].flat());
        const changed = before.size !== after.size || [...after].some((x) => !before.has(x));
        if (changed !== (idx.generation !== gen)) return false;
        if ([...idx.deps()].sort().join() !== [...after].sort().join()) return false;
        for (const x of ['a', 'b', 'c']) {
          const expected = [...model].filter(([, ds]) => ds.includes(x)).map(([k]) => k).sort();
          if (idx.users(x).sort().join() !== expected.join()) return false;
          if (idx.has(x) !== expected.length > 0) return false;
        }
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('matches the model');
});

t.test('users() is a snapshot: the index may change while a caller iterates it', async (t) => {
  const idx = new UseIndex();
  idx.set('u1', ['a']);
  idx.set('u2', ['a']);
  const seen: string[] = [];
  for (const u of idx.users('a')) {
    seen.push(u);
    idx.set(u, []);
  }
  t.same(seen.sort(), ['u1', 'u2']);
  t.same(idx.users('a'), []);
  t.equal(idx.has('a'), false);
});
