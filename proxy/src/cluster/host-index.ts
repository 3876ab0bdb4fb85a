/**
 * A cluster's hosts by endpoint key, in insertion order, sized for the common small cluster.
 *
 * Why not a Map: every EDS cluster of a mesh holds one, and most have a handful of
 * endpoints. A Map of 10 hosts is ~510 bytes of V8 heap (the JSMap plus its
 * OrderedHashMap backing store, sized for growth); this index of them ~110 bytes (itself
 * and an exact-size array: 16 bytes for the JSArray, 8 + 4 per host for its elements;
 * proxy/test/cluster/host-index.test.ts). 10,000 EDS clusters x 10 endpoints, Istio
 * names: V8 heap 7.0 -> 6.7 KB per cluster (bench/memory/clusters.ts). Up to
 * LINEAR_MAX hosts the index is such an array, searched linearly by `endpoint.key`;
 * past it, a Map. The linear work is bounded by LINEAR_MAX, so a one-endpoint change
 * still costs the same whatever the cluster size (proxy/test/cluster/cost.test.ts runs
 * its large clusters on the Map path). It turns back into an array only at LINEAR_MIN,
 * well below LINEAR_MAX, so a cluster hovering around the threshold does not rebuild its
 * index on every change.
 *
 * The array is replaced, never mutated, on add and delete: it stays exact-size (a push
 * would leave up to 16 spare slots), and an iterator from values() taken before a change
 * walks the hosts as they were. (A Map's iterator is live instead; no caller changes the
 * hosts while iterating them.) The replacement copies at most LINEAR_MAX references.
 */

/** What the index can hold: anything with an endpoint key, as Host has. */
export interface Keyed {
  readonly endpoint: { readonly key: string };
}

/** The largest index kept as an array; one more item makes it a Map. */
export const LINEAR_MAX = 16;
/** A Map-backed index of this many items or fewer becomes an array again. */
export const LINEAR_MIN = 8;

/**
 * Shared by every empty index (clusters before their first endpoints). Never written:
 * arrays are only ever replaced. Not frozen, so that every index's array keeps one
 * elements kind (a frozen array would make the lookups polymorphic).
 */
const EMPTY: never[] = [];

export class HostIndex<T extends Keyed> {
  /** An exact-size array while small (insertion order), a Map by key once past LINEAR_MAX. */
  private items: T[] | Map<string, T> = EMPTY;

  get size(): number {
    const items = this.items;
    return Array.isArray(items) ? items.length : items.size;
  }

  get(key: string): T | undefined {
    const items = this.items;
    if (!Array.isArray(items)) return items.get(key);
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (item.endpoint.key === key) return item;
    }
    return undefined;
  }

  /** As Map.set: an item whose key is present replaces that one in its place; a new key goes last. */
  set(item: T): void {
    const items = this.items;
    const key = item.endpoint.key;
    if (!Array.isArray(items)) {
      items.set(key, item);
      return;
    }
    const n = items.length;
    for (let i = 0; i < n; i++) {
      if (items[i]!.endpoint.key === key) {
        const next = copy(items, n);
        next[i] = item;
        this.items = next;
        return;
      }
    }
    if (n === LINEAR_MAX) {
      const map = new Map<string, T>();
      for (let i = 0; i < n; i++) map.set(items[i]!.endpoint.key, items[i]!);
      map.set(key, item);
      this.items = map;
      return;
    }
    const next = copy(items, n + 1);
    next[n] = item;
    this.items = next;
  }

  /** Removes the item with this key; returns it, or undefined when there was none. */
  delete(key: string): T | undefined {
    const items = this.items;
    if (!Array.isArray(items)) {
      const item = items.get(key);
      if (item === undefined) return undefined;
      items.delete(key);
      if (items.size <= LINEAR_MIN) this.items = toArray(items);
      return item;
    }
    const n = items.length;
    for (let i = 0; i < n; i++) {
      const item = items[i]!;
      if (item.endpoint.key !== key) continue;
      if (n === 1) {
        this.items = EMPTY;
        return item;
      }
      const next = new Array<T>(n - 1);
      for (let k = 0; k < i; k++) next[k] = items[k]!;
      for (let k = i + 1; k < n; k++) next[k - 1] = items[k]!;
      this.items = next;
      return item;
    }
    return undefined;
  }

  /** The items in insertion order (a key replaced by set() keeps its place). */
  values(): IterableIterator<T> {
    return this.items.values();
  }
}

/** An exact-size copy of the first `min(n, items.length)` items, `n` slots long. */
function copy<T>(items: readonly T[], n: number): T[] {
  const next = new Array<T>(n);
  const m = Math.min(n, items.length);
  for (let i = 0; i < m; i++) next[i] = items[i]!;
  return next;
}

function toArray<T>(map: Map<string, T>): T[] {
  const next = new Array<T>(map.size);
  let i = 0;
  for (const item of map.values()) next[i++] = item;
  return next;
}
