/**
 * RANDOM. Equal weights: uniform index, O(1). Unequal weights: a Fenwick tree over the
 * index array's slots, so a pick is O(log n) and a membership or weight change is
 * O(log n) point updates (swap-remove moves one slot) instead of rebuilding a
 * cumulative array.
 */
import { Fenwick } from './fenwick.js';
import { Subset, type Entry, type PickScratch, type LbHost, type Random } from './subset.js';

export class RandomSubset<H extends LbHost> extends Subset<H> {
  private readonly tree = new Fenwick();
  private readonly weightAt = (i: number): number => this.entries[i]!.weight;

  constructor(rand: Random) {
    super(rand);
  }

  protected onAdd(e: Entry<H>): void {
    this.tree.ensure(this.entries.length, this.weightAt, this.entries.length - 1);
    this.tree.add(e.index, e.weight);
  }
  protected onRemove(e: Entry<H>, at: number, lastIndex: number, moved: Entry<H> | undefined): void {
    this.tree.add(at, -e.weight);
    if (moved !== undefined) {
      this.tree.add(lastIndex, -moved.weight);
      this.tree.add(at, moved.weight);
    }
  }
  protected onReweigh(e: Entry<H>, oldWeight: number): void {
    this.tree.add(e.index, e.weight - oldWeight);
  }

  private pickOnce(): number {
    const n = this.entries.length;
    if (this.uniform) return this.rand.below(n);
    const i = this.tree.sample(this.rand, this);
    return i < n ? i : n - 1;
  }

  pick(_s: PickScratch, exclude: H | undefined): H | undefined {
    const n = this.entries.length;
    if (n === 0) return undefined;
    let i = this.pickOnce();
    if (this.entries[i]!.host !== exclude || n === 1) return this.entries[i]!.host;
    if (this.uniform) {
      // uniform over the other n-1 members
      i = (i + 1 + this.rand.below(n - 1)) % n;
      return this.entries[i]!.host;
    }
    // A few redraws keep the weighted distribution; the cap bounds the cost when the
    // excluded host carries almost all the weight.
    for (let k = 0; k < 4; k++) {
      i = this.pickOnce();
      if (this.entries[i]!.host !== exclude) return this.entries[i]!.host;
    }
    return this.entries[(i + 1) % n]!.host;
  }
}
