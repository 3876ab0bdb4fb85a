/**
 * Maglev consistent hashing (Eisenbud et al., NSDI '16), weighted the way Envoy
 * does it: every backend walks its own permutation of the table and claims the
 * next free slot, heavier backends claiming more often. Pure functions: the table
 * is built here, and the map writer only writes slots that differ from the last one.
 */
import { createHash } from 'node:crypto';

export interface MaglevBackend {
  /** Stable identity (the endpoint key); the permutation derives from it alone. */
  readonly key: string;
  readonly weight: number;
  /** What the table holds for this backend (the BPF backend id). */
  readonly id: number;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

// A rebuild after a one-endpoint diff should not re-hash every other endpoint.
const permCache = new Map<string, { offset: number; skip: number }>();
const PERM_CACHE_MAX = 200_000;

function offsets(key: string, size: number): { offset: number; skip: number } {
  const id = `${size}|${key}`;
  let p = permCache.get(id);
  if (!p) {
    const h = createHash('sha256').update(key).digest();
    p = { offset: h.readUInt32LE(0) % size, skip: (h.readUInt32LE(4) % (size - 1)) + 1 };
    if (permCache.size >= PERM_CACHE_MAX) permCache.clear();
    permCache.set(id, p);
  }
  return p;
}

/**
 * Builds a table of `size` slots (a prime) holding backend ids, 0 where there is no
 * backend. The result depends on the set of (key, weight), not on its order.
 */
export function buildMaglevTable(backends: readonly MaglevBackend[], size: number): Uint32Array {
  if (!isPrime(size)) throw new Error(`maglev table size ${size} is not prime`);
  const table = new Uint32Array(size);
  const live = backends.filter((b) => b.weight > 0).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (live.length === 0) return table;
  const maxWeight = Math.max(...live.map((b) => b.weight));
  const perm = live.map((b) => offsets(b.key, size));
  const next = new Array<number>(live.length).fill(0);
  const taken = new Array<number>(live.length).fill(0);
  const filled = new Uint8Array(size);
  let count = 0;
  for (let round = 1; count < size; round++) {
    for (let i = 0; i < live.length && count < size; i++) {
      // weight/maxWeight turns per round, as whole turns
      const due = Math.floor((round * live[i]!.weight) / maxWeight);
      while (taken[i]! < due && count < size) {
        const { offset, skip } = perm[i]!;
        let slot = (offset + next[i]! * skip) % size;
        while (filled[slot]) {
          next[i]!++;
          slot = (offset + next[i]! * skip) % size;
        }
        filled[slot] = 1;
        table[slot] = live[i]!.id;
        next[i]!++;
        taken[i]!++;
        count++;
      }
    }
  }
  return table;
}

/** Slots whose content differs: what an incremental update has to write. */
export function diffTables(before: Uint32Array, after: Uint32Array): number[] {
  const changed: number[] = [];
  for (let i = 0; i < after.length; i++) if (before[i] !== after[i]) changed.push(i);
  return changed;
}
