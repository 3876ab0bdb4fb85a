/**
 * Base for consistent-hash subsets (RING_HASH, MAGLEV). Their tables cost
 * O(table size) to rebuild, so a membership change only marks the table dirty and asks
 * the owner to schedule a rebuild; many diffs in a burst coalesce into one rebuild.
 * Until then the old table keeps serving: lookups skip entries that have left the
 * subset (index -1) by probing onward, and fall back to hashing into the live index
 * array if a bounded probe finds nothing.
 */
import { HASH, Subset, type Entry, type LbHost, type PickScratch, type Random } from './subset.js';

export interface RebuildScheduler {
  /** Called when `s` becomes dirty; the owner calls `s.rebuild()` later (batched). */
  schedule(s: HashedSubset<LbHost>): void;
}

/**
 * Scratch slot holding the request hash as given, before mixing: MAGLEV looks it up
 * unmixed (hash % M), as Envoy and the kernel's xdp_lb (flow_hash % M) do, so a flow
 * hash gives the same backend in both paths.
 */
export const RAW_HASH = 1;

/** Probes before giving up on a stale table and falling back to the index array. */
export const MAX_PROBES = 64;

export abstract class HashedSubset<H extends LbHost> extends Subset<H> {
  dirty = true;
  /** Only subsets that have served a pick are rebuilt eagerly; others wait for their first pick. */
  used = false;
  private scheduled = false;

  constructor(
    rand: Random,
    private readonly scheduler: RebuildScheduler,
  ) {
    super(rand);
  }

  protected markDirty(): void {
    this.dirty = true;
    if (this.used && !this.scheduled) {
      this.scheduled = true;
      this.scheduler.schedule(this as unknown as HashedSubset<LbHost>);
    }
  }

  protected onAdd(): void {
    this.markDirty();
  }
  protected onRemove(): void {
    this.markDirty();
  }
  protected onReweigh(): void {
    this.markDirty();
  }

  rebuild(): void {
    this.scheduled = false;
    if (!this.dirty) return;
    this.dirty = false;
    this.build();
  }

  protected abstract build(): void;
  /** Table lookup; undefined when the table is empty or every probe hit a dead entry. */
  protected abstract lookup(s: PickScratch, exclude: H | undefined): Entry<H> | undefined;
  protected abstract get tableEmpty(): boolean;

  pick(s: PickScratch, exclude: H | undefined): H | undefined {
    const n = this.entries.length;
    if (n === 0) return undefined;
    if (!this.used) {
      this.used = true;
      if (this.dirty) this.rebuild();
    } else if (this.dirty && this.tableEmpty) {
      // Nothing to serve from: build now rather than fail requests until the timer.
      this.rebuild();
    }
    const e = this.lookup(s, exclude);
    if (e !== undefined) return e.host;
    let i = s[HASH]! % n;
    if (this.entries[i]!.host === exclude && n > 1) i = (i + 1) % n;
    return this.entries[i]!.host;
  }
}
