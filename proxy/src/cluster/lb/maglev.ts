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
import type { Entry, LbHost, Random } from './subset.js';

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
    const owners = this.entries.slice();
    const pos = new Float64Array(n);
    const skip = new Float64Array(n);
    const targets = new Float64Array(n);
    let maxW = 0;
    for (let i = 0; i < n; i++) {
      const e = owners[i]!;
      const key = e.host.endpoint.key;
      pos[i] = hash53(key, 0) % M;
      skip[i] = (hash53(key, 1) % (M - 1)) + 1;
      if (e.weight > maxW) maxW = e.weight;
    }
    const table = new Int32Array(M).fill(-1);
    let filled = 0;
    for (let iter = 1; filled < M; iter++) {
      for (let i = 0; i < n && filled < M; i++) {
        if (iter * owners[i]!.weight < targets[i]!) continue;
        targets[i]! += maxW;
        let c = pos[i]!;
        while (table[c] !== -1) c = (c + skip[i]!) % M;
        table[c] = i;
        pos[i] = (c + skip[i]!) % M;
        filled++;
      }
    }
    this.table = table;
    this.owners = owners;
  }

  protected lookup(hash: number, exclude: H | undefined): Entry<H> | undefined {
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
