/**
 * Fenwick (binary indexed) tree over slot weights: point update and weighted sampling
 * (find the slot where a prefix sum crosses x) in O(log n). Capacity doubles when full
 * (O(n) rebuild, amortised O(1) per slot). Integer weights keep float sums exact.
 */
import { TWO30, TWO60, type Rng } from './rng.js';

interface Total {
  readonly totalWeight: number;
}

export class Fenwick {
  private tree: Float64Array;
  private cap: number;

  constructor(capacity = 16) {
    this.cap = 1;
    while (this.cap < capacity) this.cap <<= 1;
    this.tree = new Float64Array(this.cap + 1);
  }

  /** Makes room for slots [0, n); `weightAt` supplies current weights if a rebuild is needed. */
  ensure(n: number, weightAt: (i: number) => number, used: number): void {
    if (n <= this.cap) return;
    let cap = this.cap;
    while (cap < n) cap <<= 1;
    const t = new Float64Array(cap + 1);
    for (let i = 0; i < used; i++) t[i + 1] = weightAt(i);
    // O(n) in-place construction.
    for (let i = 1; i <= cap; i++) {
      const j = i + (i & -i);
      if (j <= cap) t[j]! += t[i]!;
    }
    this.tree = t;
    this.cap = cap;
  }

  add(slot: number, delta: number): void {
    const t = this.tree;
    for (let i = slot + 1; i <= this.cap; i += i & -i) t[i]! += delta;
  }

  /**
   * A slot drawn with probability weight/total. Takes the generator rather than a
   * double (a double argument to a non-inlined call is boxed: an allocation per pick).
   */
  sample(rng: Rng, total: Total): number {
    // Smallest slot whose inclusive prefix sum exceeds x.
    let x = ((rng.int30() * TWO30 + rng.int30()) / TWO60) * total.totalWeight;
    const t = this.tree;
    let pos = 0;
    for (let step = this.cap; step > 0; step >>= 1) {
      const nxt = pos + step;
      if (nxt <= this.cap && t[nxt]! <= x) {
        pos = nxt;
        x -= t[nxt]!;
      }
    }
    return pos;
  }
}
