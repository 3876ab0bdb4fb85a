import t from 'tap';
import { deadlineQueue, type DeadlineEntry, type DeadlineQueue } from '../../src/http/deadlines.js';

/** A request-like entry that records when its deadline ran. */
class Entry implements DeadlineEntry {
  deadline = 0;
  deadlinePrev: DeadlineEntry | undefined = undefined;
  deadlineNext: DeadlineEntry | undefined = undefined;
  deadlineQueue: DeadlineQueue | undefined = undefined;
  firedAt: number | undefined;
  constructor(readonly added: number, private readonly onFire?: () => void) {}
  onDeadline(): void {
    this.firedAt = performance.now();
    this.onFire?.();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('entries fire at their own deadline, in order, never early; removed ones never fire', async (t) => {
  // Deadlines long against the sleeps between the steps, so a loaded host's late wake-ups
  // do not let one pass before the test removes it.
  const q = deadlineQueue(400);
  const a = new Entry(performance.now());
  q.add(a);
  await sleep(20);
  const b = new Entry(performance.now());
  q.add(b);
  const c = new Entry(performance.now());
  q.add(c);
  q.remove(c);
  await sleep(20);
  const d = new Entry(performance.now());
  q.add(d);
  // The head leaves: b is now first, and the timer armed for a must not fire b early.
  const removedInTime = performance.now() - a.added < 350;
  q.remove(a);
  await sleep(700);
  if (removedInTime) t.equal(a.firedAt, undefined, 'removed head did not fire');
  t.equal(c.firedAt, undefined, 'removed entry did not fire');
  for (const [name, e] of [['b', b], ['d', d]] as const) {
    t.ok(e.firedAt !== undefined, `${name} fired`);
    const after = e.firedAt! - e.added;
    // Never more than the timer granularity early; late only by what a loaded event loop adds.
    t.ok(after >= 399, `${name} fired ${after.toFixed(1)} ms after it was added (deadline 400 ms)`);
  }
  t.ok(b.firedAt! <= d.firedAt!, 'in the order they were added');
  t.ok(q.empty, 'nothing left in the queue');
});

t.test('a deadline callback may add to the same queue; durations have separate queues', async (t) => {
  const short = deadlineQueue(15);
  const long = deadlineQueue(1000);
  t.not(short, long);
  t.equal(deadlineQueue(15), short, 'one queue per duration while in use');
  let again: Entry | undefined;
  const first = new Entry(performance.now(), () => {
    again = new Entry(performance.now());
    deadlineQueue(15).add(again);
  });
  short.add(first);
  const slow = new Entry(performance.now());
  long.add(slow);
  await sleep(150);
  t.ok(first.firedAt !== undefined, 'the short deadline fired');
  if (performance.now() - slow.added < 900) t.equal(slow.firedAt, undefined, 'the long one has not yet');
  t.ok(again?.firedAt !== undefined, 'an entry added from a callback fired too');
  await sleep(1000);
  t.ok(slow.firedAt !== undefined && slow.firedAt - slow.added >= 999, 'the long one at its deadline');
});

t.test('an entry added again moves to its new deadline; an empty queue is dropped once its timer ran', async (t) => {
  const q = deadlineQueue(300);
  const e = new Entry(performance.now());
  q.add(e);
  await sleep(100);
  q.add(e); // re-added: 300 ms from now, not from the first add
  const readded = performance.now();
  await sleep(250);
  if (performance.now() - readded < 280) t.equal(e.firedAt, undefined, 'not at the first deadline');
  await sleep(200);
  t.ok(e.firedAt !== undefined && e.firedAt - readded >= 299, 'at the new deadline');
  await sleep(50);
  t.not(deadlineQueue(300), q, 'the queue found empty by its timer went away; a new one serves the duration');
});
