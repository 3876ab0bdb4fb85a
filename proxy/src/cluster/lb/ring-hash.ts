/**
 * RING_HASH, ketama style as in Envoy's RingHashLoadBalancer: each host gets points
 * hashed from "address:port_i", proportional to its weight, enough that the ring has
 * at least minimumRingSize points (at most 2x that, see build()) and the lightest host
 * at least one, capped by maximumRingSize. Lookup: binary search for the first
 * point >= hash, wrapping.
 *
 * Cost: a rebuild is O(R log R) for ring size R (>= hosts) plus R string hashes —
 * about 50-100 ms for 100k hosts — done lazily and batched (see hashed.ts); a pick is
 * O(log R) and allocation-free.
 */
import { hash53 } from '../hash.js';
import { HashedSubset, MAX_PROBES, type RebuildScheduler } from './hashed.js';
import { orderByHash } from './sort.js';
import { HASH, HashCache, type Entry, type LbHost, type PickScratch, type Random } from './subset.js';

/** The first `points` ring hashes of a host, from its cache (extended as needed). */
function ringHashes(host: LbHost, points: number): Float64Array {
  let c = host.hashCache;
  if (c === undefined) c = host.hashCache = new HashCache();
  if (c.ringCount < points) {
    if (c.ring.length < points) {
      const grown = new Float64Array(Math.max(points, c.ring.length * 2));
      grown.set(c.ring.subarray(0, c.ringCount));
      c.ring = grown;
    }
    const key = host.endpoint.key;
    for (let k = c.ringCount; k < points; k++) c.ring[k] = hash53(`${key}_${k}`);
    c.ringCount = points;
  }
  return c.ring;
}

export class RingHashSubset<H extends LbHost> extends HashedSubset<H> {
  private points: Float64Array = new Float64Array(0);
  private owners: Entry<H>[] = [];

  constructor(
    rand: Random,
    scheduler: RebuildScheduler,
    private readonly minRing: number,
    private readonly maxRing: number,
  ) {
    super(rand, scheduler);
  }

  protected get tableEmpty(): boolean {
    return this.owners.length === 0;
  }

  /** Ring size of the current table (for tests and stats). */
  get ringSize(): number {
    return this.owners.length;
  }

  protected build(): void {
    const entries = this.entries;
    const n = entries.length;
    if (n === 0) {
      this.points = new Float64Array(0);
      this.owners = [];
      return;
    }
    // Points per unit of weight: enough for the ring to reach minimumRingSize and for
    // the lightest host to get a point (Envoy's scale), rounded up to a power of two so
    // that it stays put while hosts come and go — otherwise every host's point count
    // would shift with each membership change and keys would move between survivors.
    const total = this.totalWeight;
    let minW = Infinity;
    for (let i = 0; i < n; i++) if (entries[i]!.weight < minW) minW = entries[i]!.weight;
    let perWeight = 2 ** Math.ceil(Math.log2(Math.max(this.minRing / total, 1 / minW)));
    while (perWeight * total > this.maxRing && perWeight > 2 ** -30) perWeight /= 2;
    let cap = 0;
    for (let i = 0; i < n; i++) cap += Math.max(1, Math.round(perWeight * entries[i]!.weight));
    const hashes = new Float64Array(cap);
    const who = new Int32Array(cap);
    let count = 0;
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      const points = Math.max(1, Math.round(perWeight * e.weight));
      const ring = ringHashes(e.host, points);
      for (let k = 0; k < points; k++) {
        hashes[count] = ring[k]!;
        who[count] = i;
        count++;
      }
    }
    // Exact 53-bit collisions between hosts are vanishingly rare; break them by key so
    // the ring does not depend on arrival order.
    const order = orderByHash(hashes, count, (a, b) => {
      const ka = entries[who[a]!]!.host.endpoint.key;
      const kb = entries[who[b]!]!.host.endpoint.key;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    const points = new Float64Array(count);
    const owners = new Array<Entry<H>>(count);
    for (let i = 0; i < count; i++) {
      const j = order[i]!;
      points[i] = hashes[j]!;
      owners[i] = entries[who[j]!]!;
    }
    this.points = points;
    this.owners = owners;
  }

  protected lookup(s: PickScratch, exclude: H | undefined): Entry<H> | undefined {
    const hash = s[HASH]!;
    const pts = this.points;
    const len = pts.length;
    if (len === 0) return undefined;
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    const live = this.entries.length;
    const probes = len < MAX_PROBES ? len : MAX_PROBES;
    for (let k = 0; k < probes; k++) {
      const e = this.owners[(lo + k) % len]!;
      if (e.index >= 0 && (e.host !== exclude || live === 1)) return e;
    }
    return undefined;
  }
}
