/**
 * ROUND_ROBIN. Equal weights: a cursor over the index array (O(1)). Otherwise Envoy's
 * EDF weighted round robin (O(log n) per pick). The heap is kept up to date in both
 * modes, so a change of weights never needs an O(n) rebuild.
 */
import { EdfHeap } from './edf.js';
import { Subset, type Entry, type PickScratch, type LbHost, type Random } from './subset.js';

const staticWeight = (e: Entry): number => e.weight;

export class RoundRobinSubset<H extends LbHost> extends Subset<H> {
  private readonly edf = new EdfHeap<H>();
  private cursor: number;

  constructor(rand: Random) {
    super(rand);
    // A random start spreads load when many proxies see the same host list.
    this.cursor = Math.floor(rand.next() * 1024);
  }

  protected onAdd(e: Entry<H>): void {
    this.edf.push(e, e.weight);
  }
  protected onRemove(e: Entry<H>): void {
    this.edf.remove(e);
  }
  protected onReweigh(e: Entry<H>): void {
    this.edf.remove(e);
    this.edf.push(e, e.weight);
  }

  pick(_s: PickScratch, exclude: H | undefined): H | undefined {
    const n = this.entries.length;
    if (n === 0) return undefined;
    if (this.uniform) {
      if (this.cursor >= 0x3fffffff) this.cursor = 0;
      let e = this.entries[this.cursor++ % n]!;
      if (e.host === exclude && n > 1) e = this.entries[this.cursor++ % n]!;
      return e.host;
    }
    const e =
      this.edf.peek()!.host === exclude && n > 1 ? this.edf.nextSkippingTop(staticWeight)! : this.edf.next(staticWeight)!;
    return e.host;
  }
}
