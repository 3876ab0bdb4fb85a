/**
 * A subset of a cluster's hosts that one load balancer picks from (e.g. "healthy hosts
 * of priority 0"). Membership is an index array with swap-remove, so add/remove are
 * O(1) plus whatever the policy's structure needs (O(log n) heaps/trees, or a dirty
 * flag for hash tables).
 */
import type { Endpoint } from '../../../../config/src/index.js';

/** What a load balancer needs of a host; `Host` in endpoint-set.ts satisfies it. */
export interface LbHost {
  readonly endpoint: Endpoint;
  readonly activeRequests: number;
  /** Consistent-hash values derived from the endpoint key (stable for the host's life). */
  hashCache: HashCache | undefined;
}

/** Per-host hashes reused across table rebuilds, so a rebuild mostly sorts and fills. */
export class HashCache {
  /** ring point hashes of "key_0", "key_1", ...; `ringCount` of them are valid */
  ring = new Float64Array(0);
  ringCount = 0;
  maglevOffset = -1;
  maglevSkip = -1;
}

/**
 * One host's membership in one subset. A host leaving a subset gets index -1; stale
 * references (a hash table not yet rebuilt) recognise dead entries by that.
 */
export class Entry<H extends LbHost = LbHost> {
  index = -1;
  heapPos = -1;
  deadline = 0;
  seq = 0;
  constructor(
    readonly host: H,
    public weight: number,
  ) {}
}

import type { Rng } from './rng.js';
export type Random = Rng;

/**
 * Per-pick double inputs; slot 0 = the 53-bit mixed request hash. A double passed to,
 * returned from, or stored into an object field by code V8 does not fully optimise is
 * boxed (a 16-byte HeapNumber per pick); a typed-array slot is written in place.
 */
export type PickScratch = Float64Array;
export const HASH = 0;

/** Weights below 1 (0, NaN) would starve or poison the structures; treat them as 1. */
export function lbWeight(w: number): number {
  return w >= 1 ? w : 1;
}

export abstract class Subset<H extends LbHost = LbHost> {
  readonly entries: Entry<H>[] = [];
  /**
   * Entries by weight, to know whether the subset is unweighted (one distinct weight). The
   * common case, every entry with the same weight, is two numbers; the weight -> count Map
   * (~150 bytes for one key, three subsets per priority of every cluster) exists only
   * while there are two distinct weights or more.
   */
  private soleWeight = 0;
  private soleCount = 0;
  private weightCounts: Map<number, number> | undefined;
  totalWeight = 0;

  constructor(protected readonly rand: Random) {}

  get size(): number {
    return this.entries.length;
  }

  get uniform(): boolean {
    return this.weightCounts === undefined;
  }

  add(host: H): Entry<H> {
    const e = new Entry(host, lbWeight(host.endpoint.weight));
    e.index = this.entries.length;
    this.entries.push(e);
    this.countWeight(e.weight, 1);
    this.onAdd(e);
    return e;
  }

  remove(e: Entry<H>): void {
    const at = e.index;
    if (at < 0) return;
    const last = this.entries.pop()!;
    const lastIndex = this.entries.length;
    let moved: Entry<H> | undefined;
    if (last !== e) {
      this.entries[at] = last;
      last.index = at;
      moved = last;
    }
    e.index = -1;
    this.countWeight(e.weight, -1);
    this.onRemove(e, at, lastIndex, moved);
  }

  reweigh(e: Entry<H>, weight: number): void {
    const w = lbWeight(weight);
    if (e.index < 0 || w === e.weight) return;
    const old = e.weight;
    this.countWeight(old, -1);
    e.weight = w;
    this.countWeight(w, 1);
    this.onReweigh(e, old);
  }

  private countWeight(w: number, d: number): void {
    this.totalWeight += w * d;
    let counts = this.weightCounts;
    if (counts === undefined) {
      if (this.soleCount === 0 || w === this.soleWeight) {
        this.soleWeight = w;
        this.soleCount += d;
        return;
      }
      counts = this.weightCounts = new Map([[this.soleWeight, this.soleCount]]);
    }
    const c = (counts.get(w) ?? 0) + d;
    if (c === 0) counts.delete(w);
    else counts.set(w, c);
    if (counts.size <= 1) {
      // Back to one weight (or none): the two numbers again.
      const [only] = counts;
      this.soleWeight = only?.[0] ?? 0;
      this.soleCount = only?.[1] ?? 0;
      this.weightCounts = undefined;
    }
  }

  protected abstract onAdd(e: Entry<H>): void;
  /** `e` was at `at`; `moved` (if any) was the last entry, moved from `lastIndex` to `at`. */
  protected abstract onRemove(e: Entry<H>, at: number, lastIndex: number, moved: Entry<H> | undefined): void;
  protected abstract onReweigh(e: Entry<H>, oldWeight: number): void;

  /**
   * Picks a host, avoiding `exclude` when another member exists. Must not allocate.
   */
  abstract pick(s: PickScratch, exclude: H | undefined): H | undefined;
}
