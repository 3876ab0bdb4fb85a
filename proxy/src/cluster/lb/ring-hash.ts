/**
 * RING_HASH, ketama style as in Envoy's RingHashLoadBalancer: each host gets
 * ~scale * normalizedWeight points hashed from "address:port_i"; scale is chosen so the
 * lightest host gets at least one point per minimumRingSize/weight share, capped at
 * maximumRingSize. Lookup: binary search for the first point >= hash, wrapping.
 *
 * Cost: a rebuild is O(R log R) for ring size R (>= hosts) plus R string hashes —
 * about 50-100 ms for 100k hosts — done lazily and batched (see hashed.ts); a pick is
 * O(log R) and allocation-free.
 */
import { hash53 } from '../hash.js';
import { HashedSubset, MAX_PROBES, type RebuildScheduler } from './hashed.js';
import type { Entry, LbHost, Random } from './subset.js';

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
    const total = this.totalWeight;
    let minW = Infinity;
    for (let i = 0; i < n; i++) if (entries[i]!.weight < minW) minW = entries[i]!.weight;
    const minNorm = minW / total;
    const scale = Math.min(Math.ceil(minNorm * this.minRing) / minNorm, this.maxRing);
    const cap = Math.ceil(scale) + n;
    const hashes = new Float64Array(cap);
    const who = new Int32Array(cap);
    let count = 0;
    let current = 0;
    let target = 0;
    for (let i = 0; i < n && count < cap; i++) {
      const e = entries[i]!;
      target += (scale * e.weight) / total;
      const key = e.host.endpoint.key;
      for (let k = 0; current < target && count < cap; k++) {
        hashes[count] = hash53(`${key}_${k}`);
        who[count] = i;
        count++;
        current++;
      }
    }
    const order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
    order.sort((a, b) => hashes[a]! - hashes[b]! || who[a]! - who[b]!);
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

  protected lookup(hash: number, exclude: H | undefined): Entry<H> | undefined {
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
