/**
 * An immutable string-keyed map whose update copies only the shards it touches, so a
 * pure state transition that changes one of 100,000 resources costs O(1) rather than a
 * full copy. 256 shards by FNV-1a of the key.
 */
const SHARDS = 256;

function shardOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & (SHARDS - 1);
}

const EMPTY_SHARD: ReadonlyMap<string, never> = new Map<string, never>();

export class PersistentMap<V> implements ReadonlyMap<string, V> {
  private constructor(
    private readonly shards: readonly ReadonlyMap<string, V>[],
    readonly size: number,
  ) {}

  static empty<V>(): PersistentMap<V> {
    return new PersistentMap<V>(new Array<ReadonlyMap<string, V>>(SHARDS).fill(EMPTY_SHARD), 0);
  }

  static from<V>(entries: Iterable<readonly [string, V]>): PersistentMap<V> {
    return PersistentMap.empty<V>().with(entries, []);
  }

  get(key: string): V | undefined {
    return this.shards[shardOf(key)]!.get(key);
  }

  has(key: string): boolean {
    return this.shards[shardOf(key)]!.has(key);
  }

  /** A new map with `set` applied, then `remove`; untouched shards are shared. */
  with(set: Iterable<readonly [string, V]>, remove: Iterable<string>): PersistentMap<V> {
    const shards = this.shards.slice();
    const copied = new Set<number>();
    let size = this.size;
    const writable = (i: number): Map<string, V> => {
      if (!copied.has(i)) {
        copied.add(i);
        shards[i] = new Map(shards[i]!);
      }
      return shards[i] as Map<string, V>;
    };
    for (const [k, v] of set) {
      const m = writable(shardOf(k));
      if (!m.has(k)) size++;
      m.set(k, v);
    }
    for (const k of remove) {
      const i = shardOf(k);
      if (!shards[i]!.has(k)) continue;
      writable(i).delete(k);
      size--;
    }
    return copied.size === 0 ? this : new PersistentMap(shards, size);
  }

  *entries(): MapIterator<[string, V]> {
    for (const s of this.shards) yield* s.entries();
  }

  *keys(): MapIterator<string> {
    for (const s of this.shards) yield* s.keys();
  }

  *values(): MapIterator<V> {
    for (const s of this.shards) yield* s.values();
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(cb: (value: V, key: string, map: ReadonlyMap<string, V>) => void): void {
    for (const [k, v] of this.entries()) cb(v, k, this);
  }
}
