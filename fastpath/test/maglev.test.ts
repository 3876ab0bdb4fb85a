import t from 'tap';
import fc from 'fast-check';
import { buildMaglevTable, diffTables, isPrime } from '../src/maglev.js';
import { ServiceRegistry, entryCount } from '../src/services.js';
import { MAGLEV_MAX } from '../src/abi.js';
import { endpoint } from './fixtures/xdp-fixtures.js';

const backends = (n: number, weight = (_: number) => 1) =>
  Array.from({ length: n }, (_, i) => ({ key: `198.18.${i >> 8}.${i & 255}:80`, weight: weight(i), id: i + 1 }));

t.test('every slot is filled and shares are even', async (t) => {
  const table = buildMaglevTable(backends(7), 65537);
  const counts = new Map<number, number>();
  for (const id of table) counts.set(id, (counts.get(id) ?? 0) + 1);
  t.notOk(counts.has(0), 'no empty slot');
  t.equal(counts.size, 7);
  for (const n of counts.values()) t.ok(Math.abs(n - 65537 / 7) <= 1, `share ${n}`);
});

t.test('weights are respected', async (t) => {
  const table = buildMaglevTable(backends(3, (i) => (i === 0 ? 3 : 1)), 10007);
  const heavy = table.filter((id) => id === 1).length;
  t.ok(Math.abs(heavy / 10007 - 0.6) < 0.01, `weight-3 backend has ${heavy} slots`);
});

t.test('the table depends on the set, not its order', async () => {
  fc.assert(fc.property(fc.shuffledSubarray(backends(12), { minLength: 1 }), (subset) => {
    const a = buildMaglevTable(subset, 251);
    const b = buildMaglevTable([...subset].reverse(), 251);
    if (diffTables(a, b).length !== 0) throw new Error('order-dependent');
  }), { numRuns: 100 });
});

t.test('removing one of N backends moves about 1/N of the slots', async (t) => {
  const all = backends(10);
  const before = buildMaglevTable(all, 65537);
  const after = buildMaglevTable(all.slice(1), 65537);
  // The changed slots, computed here without diffTables.
  const changed: number[] = [];
  for (let s = 0; s < before.length; s++) if (before[s] !== after[s]) changed.push(s);
  t.same(diffTables(before, after), changed, 'diffTables reports exactly the slots that differ');
  const owned = changed.filter((s) => before[s] === 1).length;
  const others = changed.length - owned;
  t.equal(owned, before.filter((id) => id === 1).length, 'every slot of the removed backend moves');
  t.ok(owned > 65537 / 10 - 2, `the removed backend held about 1/10 (${owned})`);
  // Maglev's minimal disruption: slots of surviving backends rarely move (~0.2% here).
  t.ok(others < 65537 * 0.01, `${others} slots of surviving backends moved`);
});

t.test('table size must be prime', async (t) => {
  t.ok(isPrime(65537));
  t.notOk(isPrime(65536));
  t.throws(() => buildMaglevTable([], 100));
});

t.test('a one-endpoint diff writes the slots that change, not the table', async (t) => {
  const spec = { cluster: 'web', address: '198.18.0.10', port: 80, protocol: 'TCP' as const, userspace: false, maglevTableSize: MAGLEV_MAX };
  const reg = new ServiceRegistry([spec]);
  const eps = Array.from({ length: 50 }, (_, i) => endpoint(`198.18.2.${i + 1}`, 8080));
  reg.apply({ cluster: 'web', added: eps, removed: [], changed: [] });
  const initial = reg.plan();
  t.equal(entryCount(initial, 'maglev'), MAGLEV_MAX, 'first plan fills the table');
  t.equal(entryCount(initial, 'backends'), 50);

  reg.apply({ cluster: 'web', added: [endpoint('198.18.2.200', 8080)], removed: [], changed: [] });
  const add = reg.plan();
  const slots = entryCount(add, 'maglev');
  t.ok(slots > 0 && slots < (MAGLEV_MAX / 51) * 1.5, `adding one of 51 writes ${slots} slots`);
  t.equal(entryCount(add, 'backends'), 1, 'one backend entry');

  reg.apply({ cluster: 'web', added: [], removed: [], changed: [{ ...eps[3]!, health: 'draining' }] });
  const drain = reg.plan();
  t.ok(entryCount(drain, 'maglev') < (MAGLEV_MAX / 50) * 1.5, 'draining one moves its slots only');
  t.same(drain.filter((o) => o.map === 'backends').map((o) => o.op), ['D'], 'and deletes its backend entry last');
  t.equal(drain[drain.length - 1]!.op, 'D');

  t.same(reg.apply({ cluster: 'other', added: eps, removed: [], changed: [] }), false, 'other clusters are ignored');
  t.same(reg.plan(), []);
});

t.test('degraded endpoints serve only when nothing is healthy; other families are ignored', async (t) => {
  const spec = { cluster: 'web', address: '198.18.0.10', port: 80, protocol: 'TCP' as const, userspace: false, maglevTableSize: 251 };
  const reg = new ServiceRegistry([spec]);
  reg.apply({ cluster: 'web', added: [endpoint('198.18.2.1', 80, 'degraded'), endpoint('2001:2::5', 80)], removed: [], changed: [] });
  reg.plan();
  t.same([...reg.all[0]!.ids.keys()], ['198.18.2.1:80']);
  reg.apply({ cluster: 'web', added: [endpoint('198.18.2.2', 80)], removed: [], changed: [] });
  reg.plan();
  t.same([...reg.all[0]!.ids.keys()], ['198.18.2.2:80']);
});
