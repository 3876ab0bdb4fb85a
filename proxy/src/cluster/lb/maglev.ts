/**
 * MAGLEV as in Envoy's MaglevLoadBalancer (weighted table population): each host has a
 * permutation of table slots from two hashes of its key (offset, skip); hosts take
 * turns claiming their next free slot, a host of weight w taking a turn w/maxWeight as
 * often. Table size must be prime (default 65537).
 *
 * Cost: a rebuild is O(M log M) for table size M (plus O(hosts) hashing) — a few ms for
 * 65537 — done lazily and batched (see hashed.ts); a pick is O(1) and allocation-free.
 * Removing one of N hosts remaps ~1/N of the slots.
 */
import { hash53 } from '../hash.js';
import { HashedSubset, MAX_PROBES, type RebuildScheduler } from './hashed.js';
import { orderByHash } from './sort.js';
import { HASH, HashCache, type Entry, type LbHost, type PickScratch, type Random } from './subset.js';

function maglevHashes(host: LbHost): HashCache {
  let c = host.hashCache;
  if (c === undefined) c = host.hashCache = new HashCache();
  if (c.maglevOffset < 0) {
    c.maglevOffset = hash53(host.endpoint.key, 0);
    c.maglevSkip = hash53(host.endpoint.key, 1);
  }
  return c;
}

export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

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
    const M = this.size_;
    if (n === 0) {
      this.table = new Int32Array(0);
      this.owners = [];
      return;
    }
    // Hosts take turns in a canonical order (by key hash, then key) so that every proxy
    // builds the same table whatever order the endpoints arrived in.
    const entries = this.entries;
    const h0 = new Float64Array(n);
    for (let i = 0; i < n; i++) h0[i] = maglevHashes(entries[i]!.host).maglevOffset;
    const order = orderByHash(h0, n, (a, b) => {
      const ka = entries[a]!.host.endpoint.key;
      const kb = entries[b]!.host.endpoint.key;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    const owners = new Array<Entry<H>>(n);
    const pos = new Int32Array(n);
    const skip = new Int32Array(n);
    const targets = new Float64Array(n);
    let maxW = 0;
    for (let i = 0; i < n; i++) {
      const e = entries[order[i]!]!;
      owners[i] = e;
      const c = e.host.hashCache!;
      pos[i] = c.maglevOffset % M;
      skip[i] = (c.maglevSkip % (M - 1)) + 1;
      if (e.weight > maxW) maxW = e.weight;
    }
    const table = new Int32Array(M).fill(-1);
    let filled = 0;
    for (let iter = 1; filled < M; iter++) {
      for (let i = 0; i < n && filled < M; i++) {
        if (iter * owners[i]!.weight < targets[i]!) continue;
        targets[i]! += maxW;
        const sk = skip[i]!;
        let c = pos[i]!;
        while (table[c] !== -1) {
          c += sk;
          if (c >= M) c -= M;
        }
        table[c] = i;
        c += sk;
        pos[i] = c >= M ? c - M : c;
        filled++;
      }
    }
    this.table = table;
    this.owners = owners;
  }

  protected lookup(s: PickScratch, exclude: H | undefined): Entry<H> | undefined {
    const hash = s[HASH]!;
    const M = this.table.length;
    if (M === 0) return undefined;
    const live = this.entries.length;
    let slot = hash % M;
    for (let k = 0; k < MAX_PROBES; k++) {
      const e = this.owners[this.table[slot]!]!;
      if (e.index >= 0 && (e.host !== exclude || live === 1)) return e;
      slot = slot + 1 === M ? 0 : slot + 1;
    }
    return undefined;
  }
}
