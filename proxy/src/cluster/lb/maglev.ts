/**
 * MAGLEV as in Envoy's MaglevLoadBalancer. The table is built by the fast path's
 * Maglev (fastpath/src/maglev.ts, the one implementation), so this load balancer and
 * the kernel's xdp_lb give a flow to the same backend: same permutation hashes, same
 * weighted fill, same canonical order, and a lookup of `hash % M` on the raw request
 * hash, as the BPF program does with `flow_hash(key) % M`. Table size must be prime
 * (default 65537).
 *
 * Cost: a rebuild is O(M) plus sorting the hosts (hashes cached per host) — a few ms
 * for 65537 — done lazily and batched (see hashed.ts); a pick is O(1) and
 * allocation-free. Removing one of N hosts remaps ~1/N of the slots.
 */
import { isPrime, maglevKeyHashes, maglevSlots } from '../../../../fastpath/src/index.js';
import { HashedSubset, MAX_PROBES, RAW_HASH, type RebuildScheduler } from './hashed.js';
import { HashCache, type Entry, type LbHost, type PickScratch, type Random } from './subset.js';

export { isPrime };

function maglevHashes(host: LbHost): HashCache {
  let c = host.hashCache;
  if (c === undefined) c = host.hashCache = new HashCache();
  if (c.maglevOffset < 0) {
    const h = maglevKeyHashes(host.endpoint.key);
    c.maglevOffset = h.offset;
    c.maglevSkip = h.skip;
  }
  return c;
}

export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;

export class MaglevSubset<H extends LbHost> extends HashedSubset<H> {
  private table: Int32Array = new Int32Array(0);
  private owners: Entry<H>[] = [];
  private readonly size_: number;

  constructor(rand: Random, scheduler: RebuildScheduler, tableSize: number) {
    super(rand, scheduler);
    this.size_ = isPrime(tableSize) ? tableSize : DEFAULT_MAGLEV_TABLE_SIZE;
  }

  get tableSize(): number {
    return this.size_;
  }

  protected get tableEmpty(): boolean {
    return this.owners.length === 0;
  }

  protected build(): void {
    const n = this.entries.length;
    if (n === 0) {
      this.table = new Int32Array(0);
      this.owners = [];
      return;
    }
    const entries = this.entries;
    this.table = maglevSlots(
      n,
      this.size_,
      (i) => entries[i]!.host.endpoint.key,
      (i) => entries[i]!.weight,
      (i) => {
        const c = maglevHashes(entries[i]!.host);
        return { offset: c.maglevOffset, skip: c.maglevSkip };
      },
    );
    // The table holds indices into this snapshot; entries may move or leave before the
    // next rebuild, so lookups go through the snapshot (dead entries have index -1).
    this.owners = entries.slice();
  }

  protected lookup(s: PickScratch, exclude: H | undefined): Entry<H> | undefined {
    // The raw hash, not the mixed one: xdp_lb takes flow_hash % M unmixed.
    const hash = s[RAW_HASH]!;
    const M = this.table.length;
    if (M === 0) return undefined;
    const live = this.entries.length;
    let slot = hash % M;
    for (let k = 0; k < MAX_PROBES; k++) {
      const o = this.table[slot]!;
      const e = o >= 0 ? this.owners[o]! : undefined;
      if (e !== undefined && e.index >= 0 && (e.host !== exclude || live === 1)) return e;
      slot = slot + 1 === M ? 0 : slot + 1;
    }
    return undefined;
  }
}
