import t from 'tap';
import fc from 'fast-check';
import { PendingQueue, type SlotWaiter } from '../../src/cluster/pending-queue.js';
import { Counter, Gauge } from '../../src/stats/stats.js';

/** A waiter as the router's Attempt is one: it records when it was granted a slot. */
class Waiter implements SlotWaiter {
  slotPrev: SlotWaiter | undefined = undefined;
  slotNext: SlotWaiter | undefined = undefined;
  slotQueued = false;
  granted = 0;
  constructor(readonly id: number, private readonly order: number[]) {}
  onSlot(): void {
    this.granted++;
    this.order.push(this.id);
  }
}

const stats = () => ({ upstream_rq_pending_active: new Gauge(), upstream_rq_pending_total: new Counter(), upstream_rq_pending_overflow: new Counter(), upstream_cx_overflow: new Counter() });
const microtasks = () => new Promise<void>((r) => setImmediate(r));

type Op = { kind: 'acquire' } | { kind: 'cancel'; pick: number } | { kind: 'release'; pick: number } | { kind: 'drain' };

t.test('model: never more holders than max_connections, the gauge is the queue, FIFO grants, a cancelled waiter is never granted', async (t) => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.constant({ kind: 'acquire' as const }),
    fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
    fc.constant({ kind: 'drain' as const }),
  );
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 5 }), fc.array(op, { maxLength: 60 }), async (maxConnections, maxPending, ops) => {
    const s = stats();
    const q = new PendingQueue(maxConnections, maxPending, s);
    const order: number[] = [];
    const holders = new Set<Waiter>();
    const queued: Waiter[] = [];
    const cancelled = new Set<Waiter>();
    let next = 0;
    const settle = () => {
      // Grants arrive on a microtask: the model moves them from queued to holders in order.
      for (const w of [...queued]) if (w.granted > 0) { queued.splice(queued.indexOf(w), 1); holders.add(w); }
    };
    for (const o of ops) {
      if (o.kind === 'acquire') {
        const w = new Waiter(next++, order);
        const r = q.acquire(w);
        if (r === 'ready') holders.add(w);
        else if (r === 'pending') queued.push(w);
        else if (queued.length < maxPending) return false; // refused with room in the queue
      } else if (o.kind === 'cancel' && queued.length > 0) {
        const w = queued.splice(o.pick % queued.length, 1)[0]!;
        if (w.granted > 0) { holders.add(w); continue; }
        q.cancel(w);
        cancelled.add(w);
      } else if (o.kind === 'release' && holders.size > 0) {
        const w = [...holders][o.pick % holders.size]!;
        holders.delete(w);
        q.release();
      } else if (o.kind === 'drain') {
        await microtasks();
        settle();
      }
      if (q.active > maxConnections) return false;
      if (s.upstream_rq_pending_active.value !== q.pending) return false;
      if (q.pending > maxPending) return false;
    }
    await microtasks();
    settle();
    if (q.active !== holders.size) return false;
    if (q.pending !== queued.length || s.upstream_rq_pending_active.value !== queued.length) return false;
    // A free slot is never left unused while someone waits.
    if (queued.length > 0 && q.active < maxConnections) return false;
    for (const w of cancelled) if (w.granted > 0) return false;
    // Granted in arrival order, each once.
    const granted = order.slice();
    return granted.every((id, i) => i === 0 || id > granted[i - 1]!) && new Set(granted).size === granted.length;
  }), { numRuns: 300 });
  t.pass('invariants held');
});

t.test('limits raised by a CDS update are used at once; cancelling from the middle keeps the order', async (t) => {
  const s = stats();
  const q = new PendingQueue(1, 10, s);
  const order: number[] = [];
  const ws = [0, 1, 2, 3].map((i) => new Waiter(i, order));
  t.equal(q.acquire(ws[0]!), 'ready');
  for (const w of ws.slice(1)) t.equal(q.acquire(w), 'pending');
  t.equal(s.upstream_rq_pending_active.value, 3);
  q.cancel(ws[2]!);
  t.equal(s.upstream_rq_pending_active.value, 2);
  q.setLimits(3, 10);
  await microtasks();
  t.same(order, [1, 3], 'the two still waiting get the new slots, in order');
  t.equal(q.active, 3);
  t.equal(s.upstream_rq_pending_total.value, 3);
});
