/**
 * A cluster's live endpoints and the load balancer over them, with Envoy's semantics:
 * priorities with overprovisioning spill-over, degraded hosts as a second tier, panic
 * mode, optional locality-weighted balancing, and one of five lb policies.
 *
 * Everything is incremental: a diff touches only the hosts it names (index by key,
 * swap-remove index arrays, heaps/Fenwick trees updated in O(log n)); per-priority loads
 * and locality weights are O(#priorities)/O(#localities) recomputations done lazily on
 * the next pick. Consistent-hash tables are rebuilt lazily and batched (lb/hashed.ts).
 *
 * Host states: draining hosts are "excluded" (never picked, not counted in a priority's
 * size, as Envoy does for excluded hosts); unhealthy and ejected hosts are counted but
 * only picked in panic; degraded hosts are picked only for the load healthy hosts cannot
 * absorb.
 */
import type { Cluster, ClusterLoadAssignment, Endpoint, EndpointDiff, LbPolicy } from '../../../config/src/index.js';
import { mix53Into } from './hash.js';
import { Rng, TWO30, TWO60 } from './lb/rng.js';
import { createSubset, HASH, type Entry, type HashCache, type Subset } from './lb/index.js';
import { RebuildBatcher } from './lb/rebuild-batcher.js';
import { HostIndex } from './host-index.js';
import type { ConnectionInfo } from '../net/connection-info.js';

const DETACHED = -1;
const EXCLUDED = 0; // draining
const UNHEALTHY = 1; // unhealthy or ejected: panic-only
const HEALTHY = 2;
const DEGRADED = 3;

/**
 * What a host holds only once it carries traffic, or under less common policies and
 * states (locality-weighted LB, panic): most hosts of a large mesh never do, and as
 * fields of every Host these were 80 bytes each.
 */
class HostExtra {
  upstream: unknown = undefined;
  hashCache: HashCache | undefined = undefined;
  used = false;
  transport: unknown = undefined;
  transportEndpoint: Endpoint | undefined = undefined;
  tlsPeerPrincipal: string | undefined = undefined;
  tlsLocalPrincipal: string | undefined = undefined;
  locality: LocalityGroup | null = null;
  all: Entry<Host> | null = null;
  loc: Entry<Host> | null = null;
}

export class Host {
  activeRequests = 0;
  removed = false;
  ejected = false;
  /**
   * The host's pool on pilotfish's own paths (the raw HTTP/1.1 pool, proxy/src/http1/upstream.ts;
   * the core-API HTTP/2 pool, upstream/h2-pool.ts), or their note that it needs undici. The
   * cluster closes it with the host.
   */
  directPool: { close(): void } | undefined = undefined;
  /** The fields below the accessors, made when one is first set to a value. */
  private _x: HostExtra | undefined = undefined;

  /** @internal */ _state = DETACHED;
  /** @internal */ _prio: PriorityGroup | null = null;
  /** @internal membership in the priority's healthy or degraded subset */ _cls: Entry<Host> | null = null;

  constructor(public endpoint: Endpoint) {}

  get key(): string {
    return this.endpoint.key;
  }

  private extra(): HostExtra {
    return (this._x ??= new HostExtra());
  }

  /** The host's undici dispatcher (cluster.ts dispatcherFor), for hosts the raw paths do not serve. */
  get upstream(): unknown {
    return this._x?.upstream;
  }
  set upstream(v: unknown) {
    if (v !== undefined || this._x !== undefined) this.extra().upstream = v;
  }

  /** RING_HASH/MAGLEV hashes of the key, kept across table rebuilds. */
  get hashCache(): HashCache | undefined {
    return this._x?.hashCache;
  }
  set hashCache(v: HashCache | undefined) {
    if (v !== undefined || this._x !== undefined) this.extra().hashCache = v;
  }

  /** ORIGINAL_DST: picked since the last cleanup sweep (Envoy's used_ bit). */
  get used(): boolean {
    return this._x?.used ?? false;
  }
  set used(v: boolean) {
    if (v || this._x !== undefined) this.extra().used = v;
  }

  /** The transport socket chosen for this host (upstream/transport-match.ts), and for which endpoint version. */
  get transport(): unknown {
    return this._x?.transport;
  }
  set transport(v: unknown) {
    if (v !== undefined || this._x !== undefined) this.extra().transport = v;
  }

  get transportEndpoint(): Endpoint | undefined {
    return this._x?.transportEndpoint;
  }
  set transportEndpoint(v: Endpoint | undefined) {
    if (v !== undefined || this._x !== undefined) this.extra().transportEndpoint = v;
  }

  /** URI SANs of the last TLS connection to this host: its certificate's and ours (Istio's client-side principals). */
  get tlsPeerPrincipal(): string | undefined {
    return this._x?.tlsPeerPrincipal;
  }
  set tlsPeerPrincipal(v: string | undefined) {
    if (v !== undefined || this._x !== undefined) this.extra().tlsPeerPrincipal = v;
  }

  get tlsLocalPrincipal(): string | undefined {
    return this._x?.tlsLocalPrincipal;
  }
  set tlsLocalPrincipal(v: string | undefined) {
    if (v !== undefined || this._x !== undefined) this.extra().tlsLocalPrincipal = v;
  }

  /** @internal its locality (locality-weighted LB only) */
  get _locality(): LocalityGroup | null {
    return this._x?.locality ?? null;
  }
  set _locality(v: LocalityGroup | null) {
    if (v !== null || this._x !== undefined) this.extra().locality = v;
  }

  /** @internal membership in the priority's all-hosts (panic) subset */
  get _all(): Entry<Host> | null {
    return this._x?.all ?? null;
  }
  set _all(v: Entry<Host> | null) {
    if (v !== null || this._x !== undefined) this.extra().all = v;
  }

  /** @internal membership in the locality's healthy or degraded subset */
  get _loc(): Entry<Host> | null {
    return this._x?.loc ?? null;
  }
  set _loc(v: Entry<Host> | null) {
    if (v !== null || this._x !== undefined) this.extra().loc = v;
  }
}

export interface EndpointSetOptions {
  readonly lbPolicy: LbPolicy;
  /** percent; 0 disables panic mode */
  readonly healthyPanicThreshold: number;
  /** percent; Envoy's default 140 */
  readonly overprovisioningFactor: number;
  /** Ignored for RING_HASH/MAGLEV (as in Envoy, consistent hashing spans the priority). */
  readonly localityWeightedLb: boolean;
  readonly ringHash: { readonly minimumRingSize: number; readonly maximumRingSize: number };
  readonly maglev: { readonly tableSize: number };
  readonly leastRequest: { readonly choiceCount: number };
  /** Seeds the balancer's generator (default Math.random); tests pass a seeded function. */
  readonly random?: (() => number) | undefined;
  /**
   * RING_HASH/MAGLEV: minimum spacing of table rebuilds, ms (default 100). The first
   * change after a quiet period rebuilds on a microtask; changes within the interval
   * coalesce into one rebuild at its end.
   */
  readonly hashRebuildIntervalMs?: number;
}

/**
 * Keep one shape for all contexts (e.g. `{ hash: NaN, exclude: undefined }`, or one
 * reused object per caller): if V8 sees PickContexts with and without a `hash`
 * field, reading a non-Smi hash boxes it — the only allocation pick() can incur.
 */
export interface PickContext {
  /** Request hash for RING_HASH/MAGLEV (any non-negative number); random when absent or NaN. */
  hash?: number;
  /** The previous attempt's host, for retries: avoided when another host is available. */
  exclude?: Host;
  /**
   * ORIGINAL_DST clusters: the downstream connection (its restored original destination
   * is the upstream host). Other clusters ignore it. Set it (or undefined) on every
   * context a caller reuses, to keep the one shape.
   */
  connection?: ConnectionInfo | undefined;
  /** ORIGINAL_DST with use_http_header: the request headers (x-envoy-original-dst-host). */
  headers?: Readonly<Record<string, string | string[] | undefined>> | undefined;
}

export interface EndpointSetStats {
  healthy: number;
  degraded: number;
  total: number;
  panic: boolean;
}

/**
 * Options from a cluster (and the overprovisioning factor of its load assignment), and
 * the balancer's random source. One object literal of one shape: spread into another
 * object, each cluster's copy got its own hidden class (~400 bytes per cluster).
 */
export function endpointSetOptions(cluster: Cluster, cla?: ClusterLoadAssignment, random?: () => number): EndpointSetOptions {
  const overprovisioningFactor = (cla ?? cluster.loadAssignment)?.overprovisioningFactor ?? 140;
  // Clusters mostly differ in none of these: one frozen object per combination is shared
  // (88 bytes per cluster otherwise), a few dozen combinations at most are remembered.
  const { ringHash: rh, maglev, leastRequest } = cluster;
  const key = random === undefined || random === Math.random
    ? `${cluster.lbPolicy}|${cluster.healthyPanicThreshold}|${overprovisioningFactor}|${cluster.localityWeightedLb}|${rh.minimumRingSize}|${rh.maximumRingSize}|${maglev.tableSize}|${leastRequest.choiceCount}`
    : undefined;
  const known = key === undefined ? undefined : sharedOptions.get(key);
  if (known !== undefined) return known;
  const made: EndpointSetOptions = {
    lbPolicy: cluster.lbPolicy,
    healthyPanicThreshold: cluster.healthyPanicThreshold,
    overprovisioningFactor,
    localityWeightedLb: cluster.localityWeightedLb,
    ringHash: cluster.ringHash,
    maglev: cluster.maglev,
    leastRequest: cluster.leastRequest,
    random,
  };
  if (key !== undefined && sharedOptions.size < 64) sharedOptions.set(key, Object.freeze(made));
  return made;
}
const sharedOptions = new Map<string, EndpointSetOptions>();

/** What an empty cumulative-weight table starts as (written only after being replaced). */
const NO_WEIGHTS = new Float64Array(0);
const NO_LOCALITIES: LocalityGroup[] = [];
Object.freeze(NO_LOCALITIES);

/**
 * pick()'s double inputs (lb/subset.ts PickScratch), one for every set: a pick runs to its
 * end before any other can start, and a typed array per cluster was ~200 bytes.
 */
const SCRATCH = new Float64Array(2); // [mixed hash, raw hash] (lb/hashed.ts)

let sharedRng: Rng | undefined;

/** @internal */
export class LocalityGroup {
  weight = 1;
  hostCount = 0;
  total = 0;
  healthyCount = 0;
  degradedCount = 0;
  listIndex = -1;
  /** Made with the first degraded host (see PriorityGroup.degraded). */
  degraded: Subset<Host> | undefined = undefined;
  constructor(
    readonly name: string,
    readonly healthy: Subset<Host>,
  ) {}
}

/** @internal */
export class PriorityGroup {
  /** hosts attached here, draining included */
  hostCount = 0;
  /** non-draining hosts (Envoy: hosts - excluded hosts) */
  total = 0;
  healthyCount = 0;
  degradedCount = 0;
  healthyLoad = 0;
  degradedLoad = 0;
  panic = false;
  /** Only with locality-weighted LB (created on the first host then): ~150 bytes per priority of every cluster otherwise. */
  localities: Map<string, LocalityGroup> | undefined;
  /** Frozen and shared while empty (locality-weighted LB only). */
  locList: LocalityGroup[] = NO_LOCALITIES;
  locDirty = true;
  cumHealthy = NO_WEIGHTS;
  cumDegraded = NO_WEIGHTS;
  /**
   * Every non-excluded host (panic picks from it), built when the level first enters panic
   * and kept up to date from then on: a subset's entries and structures are ~1 KB per
   * cluster of 10 hosts, for a mode most clusters never enter.
   */
  all: Subset<Host> | undefined;
  /**
   * Degraded hosts, made with the first one: few clusters ever have one, and an empty
   * subset with its structures is ~200 bytes. Present whenever degradedCount > 0.
   */
  degraded: Subset<Host> | undefined = undefined;
  constructor(readonly healthy: Subset<Host>) {}
}

export class EndpointSet {
  /** By endpoint key, in insertion order: an exact-size array while small (host-index.ts). */
  private readonly index = new HostIndex<Host>();
  /** By priority level; replaced (not grown) when a level is added: pushed, it held 16 spare slots. */
  private prios: (PriorityGroup | undefined)[] = [];
  private loadsDirty = true;
  private readonly rand: Rng;
  private readonly localityWeighted: boolean;
  private readonly hashed: boolean;
  /** RING_HASH/MAGLEV only: the other policies never rebuild tables. */
  private readonly rebuilds: RebuildBatcher | undefined;
  private anyPanic = false;

  constructor(
    readonly cluster: string,
    readonly options: EndpointSetOptions,
    initial?: readonly Endpoint[],
  ) {
    // Math.random-seeded sets share one generator (~60 bytes per cluster); seeded ones (tests) keep their own sequence.
    this.rand = options.random === undefined || options.random === Math.random ? (sharedRng ??= new Rng()) : new Rng(options.random);
    this.hashed = options.lbPolicy === 'RING_HASH' || options.lbPolicy === 'MAGLEV';
    this.localityWeighted = options.localityWeightedLb && !this.hashed;
    if (this.hashed) this.rebuilds = new RebuildBatcher(options.hashRebuildIntervalMs ?? 100);
    if (initial !== undefined) for (const e of initial) this.add(e);
  }

  get size(): number {
    return this.index.size;
  }

  get(key: string): Host | undefined {
    return this.index.get(key);
  }

  /** In insertion order (a changed host keeps its place). */
  hosts(): IterableIterator<Host> {
    return this.index.values();
  }

  /**
   * Applies an incremental change in O(|diff|) index/array operations, each O(1) or
   * O(log n) (the host index searches at most LINEAR_MAX hosts linearly, host-index.ts;
   * RING_HASH/MAGLEV: plus one batched table rebuild later). Removals first, then
   * additions, then changes; an added key that exists is treated as a change and a
   * changed key that does not as an addition, so a replayed diff is harmless. Hosts
   * named in `changed` keep their identity (and `upstream`).
   */
  apply(diff: EndpointDiff): { added: Host[]; removed: Host[] } {
    const added: Host[] = [];
    const removed: Host[] = [];
    for (const key of diff.removed) {
      const h = this.index.delete(key);
      if (h === undefined) continue;
      this.detach(h);
      h.removed = true;
      removed.push(h);
    }
    for (const e of diff.added) {
      const h = this.index.get(e.key);
      if (h !== undefined) this.update(h, e);
      else added.push(this.add(e));
    }
    for (const e of diff.changed) {
      const h = this.index.get(e.key);
      if (h !== undefined) this.update(h, e);
      else added.push(this.add(e));
    }
    return { added, removed };
  }

  /** Ejects (available=false) or restores a host: O(log n). */
  setHostAvailability(host: Host, available: boolean): void {
    if (host.removed || this.index.get(host.endpoint.key) !== host) return;
    host.ejected = !available;
    this.transition(host, this.classify(host));
  }

  /** Picks a host for a new request; undefined means no healthy upstream. Allocation-free. */
  pick(ctx: PickContext): Host | undefined {
    if (this.loadsDirty) this.recomputeLoads();
    const prios = this.prios;
    let x: number;
    // The hash is read inside mix53Into only: loading a double field into a value
    // that outlives the load boxes it (16 bytes) when V8 sees several shapes of ctx.
    if (mix53Into(ctx, SCRATCH)) {
      x = (SCRATCH[HASH]! % 10000) / 100;
    } else {
      const r = this.rand;
      // 23 + 30 random bits; fractions computed inline (see lb/rng.ts)
      if (this.hashed) SCRATCH[HASH] = SCRATCH[1] = (r.int30() >>> 7) * TWO30 + r.int30();
      x = ((r.int30() * TWO30 + r.int30()) / TWO60) * 100;
    }
    let chosen: PriorityGroup | undefined;
    let degraded = false;
    let last: PriorityGroup | undefined;
    for (let i = 0; i < prios.length; i++) {
      const p = prios[i];
      if (p === undefined) continue;
      if (p.healthyLoad > 0) {
        last = p;
        if (x < p.healthyLoad) {
          chosen = p;
          break;
        }
        x -= p.healthyLoad;
      }
    }
    if (chosen === undefined) {
      for (let i = 0; i < prios.length; i++) {
        const p = prios[i];
        if (p === undefined || p.degradedLoad <= 0) continue;
        if (x < p.degradedLoad) {
          chosen = p;
          degraded = true;
          break;
        }
        x -= p.degradedLoad;
      }
    }
    if (chosen === undefined) {
      // Float rounding left x just past the last bucket.
      if (last === undefined) return undefined;
      chosen = last;
    }
    let sub: Subset<Host>;
    if (chosen.panic) sub = chosen.all!; // built when panic was set (computeLoads)
    else {
      sub = degraded ? chosen.degraded! : chosen.healthy; // degradedLoad > 0: it has degraded hosts
      if (this.localityWeighted) {
        const lg = this.chooseLocality(chosen, degraded);
        if (lg !== undefined) sub = degraded ? lg.degraded! : lg.healthy; // a chosen locality has some
      }
    }
    return sub.pick(SCRATCH, ctx.exclude);
  }

  stats(): EndpointSetStats {
    if (this.loadsDirty) this.recomputeLoads();
    let healthy = 0;
    let degraded = 0;
    for (const p of this.prios) {
      if (p === undefined) continue;
      healthy += p.healthyCount;
      degraded += p.degradedCount;
    }
    return { healthy, degraded, total: this.index.size, panic: this.anyPanic };
  }

  /** Rebuilds pending consistent-hash tables now (tests; or before a latency-critical burst). */
  flushRebuilds(): void {
    this.rebuilds?.flush();
  }

  /** Cancels a pending rebuild timer; the set stays usable (tables rebuild on demand). */
  close(): void {
    this.rebuilds?.cancelTimer();
  }

  // ------------------------------------------------------------ membership

  private add(e: Endpoint): Host {
    const h = new Host(e);
    this.index.set(h);
    this.attach(h);
    return h;
  }

  private update(h: Host, e: Endpoint): void {
    const old = h.endpoint;
    if (old === e) return;
    if (old.priority !== e.priority || (this.localityWeighted && old.locality !== e.locality)) {
      this.detach(h);
      h.endpoint = e;
      this.attach(h);
      return;
    }
    h.endpoint = e;
    const lg = h._locality;
    if (lg !== null && lg.weight !== e.localityWeight) {
      lg.weight = e.localityWeight;
      h._prio!.locDirty = true;
    }
    this.transition(h, this.classify(h));
    if (old.weight !== e.weight) {
      const pg = h._prio!;
      if (h._all !== null) pg.all!.reweigh(h._all, e.weight);
      if (h._cls !== null) (h._state === HEALTHY ? pg.healthy : pg.degraded!).reweigh(h._cls, e.weight);
      if (h._loc !== null && lg !== null) (h._state === HEALTHY ? lg.healthy : lg.degraded!).reweigh(h._loc, e.weight);
    }
  }

  private classify(h: Host): number {
    const health = h.endpoint.health;
    if (health === 'draining') return EXCLUDED;
    if (h.ejected || health === 'unhealthy') return UNHEALTHY;
    return health === 'degraded' ? DEGRADED : HEALTHY;
  }

  private attach(h: Host): void {
    const e = h.endpoint;
    const pg = this.priority(e.priority);
    h._prio = pg;
    if (this.localityWeighted) {
      const localities = (pg.localities ??= new Map());
      let lg = localities.get(e.locality);
      if (lg === undefined) {
        lg = new LocalityGroup(e.locality, this.subset());
        lg.listIndex = pg.locList.length;
        if (pg.locList === NO_LOCALITIES) pg.locList = [];
        pg.locList.push(lg);
        localities.set(e.locality, lg);
      }
      if (lg.weight !== e.localityWeight) lg.weight = e.localityWeight;
      h._locality = lg;
    }
    this.transition(h, this.classify(h));
  }

  private detach(h: Host): void {
    this.transition(h, DETACHED);
    const pg = h._prio;
    const lg = h._locality;
    if (pg !== null && lg !== null && lg.hostCount === 0) {
      const last = pg.locList.pop()!;
      if (last !== lg) {
        pg.locList[lg.listIndex] = last;
        last.listIndex = lg.listIndex;
      }
      pg.localities?.delete(lg.name);
      pg.locDirty = true;
    }
    h._prio = null;
    h._locality = null;
  }

  /** Moves a host between states, touching only the subsets whose membership changes. */
  private transition(h: Host, to: number): void {
    const from = h._state;
    if (from === to) return;
    const pg = h._prio!;
    const lg = h._locality;
    if (from === HEALTHY || from === DEGRADED) {
      if (from === HEALTHY) {
        pg.healthy.remove(h._cls!);
        pg.healthyCount--;
        if (lg !== null) {
          lg.healthy.remove(h._loc!);
          lg.healthyCount--;
        }
      } else {
        pg.degraded!.remove(h._cls!);
        pg.degradedCount--;
        if (lg !== null) {
          lg.degraded!.remove(h._loc!);
          lg.degradedCount--;
        }
      }
      h._cls = null;
      h._loc = null;
    }
    if (from >= UNHEALTHY && to < UNHEALTHY) {
      if (h._all !== null) pg.all!.remove(h._all);
      h._all = null;
      pg.total--;
      if (lg !== null) lg.total--;
    }
    if (from === DETACHED) {
      pg.hostCount++;
      if (lg !== null) lg.hostCount++;
    } else if (to === DETACHED) {
      pg.hostCount--;
      if (lg !== null) lg.hostCount--;
    }
    if (to >= UNHEALTHY && from < UNHEALTHY) {
      if (pg.all !== undefined) h._all = pg.all.add(h);
      pg.total++;
      if (lg !== null) lg.total++;
    }
    if (to === HEALTHY) {
      h._cls = pg.healthy.add(h);
      pg.healthyCount++;
      if (lg !== null) {
        h._loc = lg.healthy.add(h);
        lg.healthyCount++;
      }
    } else if (to === DEGRADED) {
      h._cls = (pg.degraded ??= this.subset()).add(h);
      pg.degradedCount++;
      if (lg !== null) {
        h._loc = (lg.degraded ??= this.subset()).add(h);
        lg.degradedCount++;
      }
    }
    h._state = to;
    this.loadsDirty = true;
    pg.locDirty = true;
  }

  /** The level's all-hosts subset, on its first panic: every attached host not excluded. */
  private buildAll(pg: PriorityGroup): void {
    const all = (pg.all = this.subset());
    for (const h of this.index.values()) if (h._prio === pg && h._state >= UNHEALTHY && h._all === null) h._all = all.add(h);
  }

  private subset(): Subset<Host> {
    return createSubset<Host>(this.options, this.rand, this.rebuilds!);
  }

  private priority(p: number): PriorityGroup {
    const i = p >= 0 ? Math.floor(p) : 0;
    let pg = this.prios[i];
    if (pg === undefined) {
      pg = new PriorityGroup(this.subset());
      const prios = new Array<PriorityGroup | undefined>(Math.max(i + 1, this.prios.length)).fill(undefined);
      for (let k = 0; k < this.prios.length; k++) prios[k] = this.prios[k];
      prios[i] = pg;
      this.prios = prios;
    }
    return pg;
  }

  // ------------------------------------------------------------ loads (Envoy LoadBalancerBase)

  private recomputeLoads(): void {
    this.loadsDirty = false;
    const op = this.options.overprovisioningFactor / 100;
    const threshold = this.options.healthyPanicThreshold;
    const prios = this.prios;
    let avail = 0;
    let totalHosts = 0;
    for (const p of prios) {
      if (p === undefined) continue;
      p.healthyLoad = p.total > 0 ? Math.min(100, (op * 100 * p.healthyCount) / p.total) : 0;
      p.degradedLoad = p.total > 0 ? Math.min(100, (op * 100 * p.degradedCount) / p.total) : 0;
      p.panic = false;
      avail += p.healthyLoad + p.degradedLoad;
      totalHosts += p.total;
    }
    const nta = Math.min(100, avail);
    let allPanic = threshold > 0;
    if (nta > 0) {
      let remaining = 100;
      for (const p of prios) {
        if (p === undefined) continue;
        const l = Math.min(remaining, (p.healthyLoad * 100) / nta);
        p.healthyLoad = l;
        remaining -= l;
      }
      for (const p of prios) {
        if (p === undefined) continue;
        const l = Math.min(remaining, (p.degradedLoad * 100) / nta);
        p.degradedLoad = l;
        remaining -= l;
      }
      for (let i = 0; i < prios.length; i++) {
        const p = prios[i];
        // A missing priority level has no hosts: 0% healthy, in panic (Envoy).
        const inPanic =
          nta < 100 &&
          threshold > 0 &&
          (p === undefined || p.total === 0 || (100 * (p.healthyCount + p.degradedCount)) / p.total < threshold);
        if (p !== undefined) p.panic = inPanic;
        if (!inPanic) allPanic = false;
      }
    } else {
      for (const p of prios) {
        if (p === undefined) continue;
        p.healthyLoad = 0;
        p.degradedLoad = 0;
      }
    }
    // Every level in panic (including "no healthy or degraded host anywhere"): spread
    // load over levels by host count and balance over all hosts of each (Envoy).
    if (allPanic && totalHosts > 0) {
      for (const p of prios) {
        if (p === undefined) continue;
        p.healthyLoad = (100 * p.total) / totalHosts;
        p.degradedLoad = 0;
        p.panic = true;
      }
    }
    let anyPanic = false;
    for (const p of prios) {
      if (p === undefined || !p.panic) continue;
      if (p.all === undefined) this.buildAll(p);
      if (p.healthyLoad + p.degradedLoad > 0) anyPanic = true;
    }
    this.anyPanic = anyPanic;
  }

  /** Envoy: locality weight x locality availability (overprovisioned share of usable hosts). */
  private chooseLocality(pg: PriorityGroup, degraded: boolean): LocalityGroup | undefined {
    const list = pg.locList;
    const n = list.length;
    if (pg.locDirty) {
      pg.locDirty = false;
      if (pg.cumHealthy.length < n) {
        pg.cumHealthy = new Float64Array(n * 2);
        pg.cumDegraded = new Float64Array(n * 2);
      }
      const op = this.options.overprovisioningFactor / 100;
      let sh = 0;
      let sd = 0;
      for (let i = 0; i < n; i++) {
        const lg = list[i]!;
        if (lg.total > 0) {
          sh += lg.weight * Math.min(1, (op * lg.healthyCount) / lg.total);
          sd += lg.weight * Math.min(1, (op * lg.degradedCount) / lg.total);
        }
        pg.cumHealthy[i] = sh;
        pg.cumDegraded[i] = sd;
      }
    }
    if (n === 0) return undefined;
    const cum = degraded ? pg.cumDegraded : pg.cumHealthy;
    const sum = cum[n - 1]!;
    if (!(sum > 0)) return undefined;
    const r = this.rand;
    const x = ((r.int30() * TWO30 + r.int30()) / TWO60) * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cum[mid]! <= x) lo = mid + 1;
      else hi = mid;
    }
    return list[lo];
  }
}
