/**
 * LEAST_REQUEST as Envoy does it. Equal weights: power-of-N-choices (choiceCount random
 * members, fewest active requests wins), O(choiceCount). Unequal weights: EDF where a
 * host's effective weight is weight / (activeRequests + 1), re-evaluated each time the
 * host is re-queued (so it lags by one pick, as in Envoy).
 */
import { EdfHeap } from './edf.js';
import { Subset, type Entry, type PickScratch, type LbHost, type Random } from './subset.js';

const dynamicWeight = (e: Entry): number => e.weight / (e.host.activeRequests + 1);

export class LeastRequestSubset<H extends LbHost> extends Subset<H> {
  private readonly edf = new EdfHeap<H>();

  constructor(
    rand: Random,
    private readonly choiceCount: number,
  ) {
    super(rand);
  }

  protected onAdd(e: Entry<H>): void {
    this.edf.push(e, dynamicWeight(e));
  }
  protected onRemove(e: Entry<H>): void {
    this.edf.remove(e);
  }
  protected onReweigh(e: Entry<H>): void {
    this.edf.remove(e);
    this.edf.push(e, dynamicWeight(e));
  }

  pick(_s: PickScratch, exclude: H | undefined): H | undefined {
    const n = this.entries.length;
    if (n === 0) return undefined;
    if (n === 1) return this.entries[0]!.host;
    if (this.uniform) {
      let best: H | undefined;
      for (let k = 0; k < this.choiceCount; k++) {
        let i = this.rand.below(n);
        if (this.entries[i]!.host === exclude) i = (i + 1) % n;
        const h = this.entries[i]!.host;
        if (best === undefined || h.activeRequests < best.activeRequests) best = h;
      }
      return best;
    }
    const e =
      this.edf.peek()!.host === exclude && n > 1 ? this.edf.nextSkippingTop(dynamicWeight)! : this.edf.next(dynamicWeight)!;
    return e.host;
  }
}
