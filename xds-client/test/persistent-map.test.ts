import t from 'tap';
import fc from 'fast-check';
import { PersistentMap } from '../src/persistent-map.js';

t.test('behaves like a Map and never changes an earlier version', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.string({ maxLength: 4 }), fc.integer()), { maxLength: 60 }),
      (ops) => {
        let p = PersistentMap.empty<number>();
        const model = new Map<string, number>();
        const history: [PersistentMap<number>, Map<string, number>][] = [];
        for (const [isSet, k, v] of ops) {
          p = isSet ? p.with([[k, v]], []) : p.with([], [k]);
          if (isSet) model.set(k, v);
          else model.delete(k);
          history.push([p, new Map(model)]);
        }
        for (const [pm, m] of history) {
          if (pm.size !== m.size) return false;
          for (const [k, v] of m) if (pm.get(k) !== v || !pm.has(k)) return false;
          if ([...pm.keys()].length !== m.size) return false;
        }
        return true;
      },
    ),
  );
  t.pass();
});
