/**
 * Earliest-deadline-first scheduler as in Envoy's EdfScheduler: each entry is due at
 * `deadline`; picking the earliest advances the clock to it and re-queues the entry
 * 1/weight later, so over time each entry is picked in proportion to its weight.
 * Ties break by insertion order (`seq`), which makes weighted round robin exact.
 * A binary heap with positions stored in the entries: push/remove/pick O(log n),
 * no allocation on pick.
 */
import type { Entry, LbHost } from './subset.js';

export class EdfHeap<H extends LbHost> {
  private readonly heap: Entry<H>[] = [];
  private now = 0;
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(e: Entry<H>, weight: number): void {
    e.deadline = this.now + 1 / weight;
    e.seq = this.seq++;
    e.heapPos = this.heap.length;
    this.heap.push(e);
    this.up(e.heapPos);
  }

  remove(e: Entry<H>): void {
    const i = e.heapPos;
    if (i < 0) return;
    const last = this.heap.pop()!;
    e.heapPos = -1;
    if (last !== e) {
      this.heap[i] = last;
      last.heapPos = i;
      this.down(i);
      this.up(last.heapPos);
    }
  }

  peek(): Entry<H> | undefined {
    return this.heap[0];
  }

  /** Picks the earliest entry and re-queues it with its (possibly new) weight. */
  next(weight: (e: Entry<H>) => number): Entry<H> | undefined {
    const top = this.heap[0];
    if (top === undefined) return undefined;
    this.now = top.deadline;
    top.deadline = this.now + 1 / weight(top);
    top.seq = this.seq++;
    this.down(0);
    return top;
  }

  /**
   * For retries: picks the earliest entry other than the current top (the runner-up is
   * one of the root's children), leaving the top due. O(log n).
   */
  nextSkippingTop(weight: (e: Entry<H>) => number): Entry<H> | undefined {
    const h = this.heap;
    if (h.length < 2) return h[0];
    const c = h.length > 2 && this.less(h[2]!, h[1]!) ? 2 : 1;
    const e = h[c]!;
    this.now = e.deadline;
    e.deadline = this.now + 1 / weight(e);
    e.seq = this.seq++;
    this.down(c);
    return e;
  }

  private less(a: Entry<H>, b: Entry<H>): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }

  private up(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = h[p]!;
      if (!this.less(e, pe)) break;
      h[i] = pe;
      pe.heapPos = i;
      i = p;
    }
    h[i] = e;
    e.heapPos = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.less(h[r]!, h[l]!)) c = r;
      const ce = h[c]!;
      if (!this.less(ce, e)) break;
      h[i] = ce;
      ce.heapPos = i;
      i = c;
    }
    h[i] = e;
    e.heapPos = i;
  }
}
