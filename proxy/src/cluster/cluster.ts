import type { Dispatcher } from 'undici';
import type { CircuitBreakerThresholds, Cluster, Endpoint, EndpointDiff, TypedExtension } from '../../../config/src/index.js';
import { EndpointSet, endpointSetOptions, type Host, type PickContext } from './endpoint-set.js';
import type { TunnelUpstreams } from '../tunnel/upstreams.js';
import { createHostPool, keepaliveWarnings, type UpstreamTls } from '../upstream/pool.js';
import { TransportSelector, type CompiledTransportMatch, type TlsSource, type TransportChoice } from '../upstream/transport-match.js';
import { OriginalDstHosts, originalDstConfigOf, type OwnListeners } from './original-dst.js';
import { defineStatBlock, type Counter, type Gauge, type StatsStore, type TimeHistogram } from '../stats/stats.js';
import { HealthChecker, type HealthCheckStats } from './health-check.js';
import { OutlierDetector, type LocalOriginFailure, type OutlierStats } from './outlier.js';
import { PendingQueue, type SlotResult, type SlotWaiter } from './pending-queue.js';

export interface ClusterStats {
  readonly upstream_rq_total: Counter;
  readonly upstream_rq_1xx: Counter;
  readonly upstream_rq_2xx: Counter;
  readonly upstream_rq_3xx: Counter;
  readonly upstream_rq_4xx: Counter;
  readonly upstream_rq_5xx: Counter;
  readonly upstream_rq_completed: Counter;
  readonly upstream_rq_timeout: Counter;
  readonly upstream_rq_per_try_timeout: Counter;
  readonly upstream_rq_retry: Counter;
  readonly upstream_rq_retry_success: Counter;
  readonly upstream_rq_retry_overflow: Counter;
  readonly upstream_rq_retry_limit_exceeded: Counter;
  readonly upstream_rq_pending_overflow: Counter;
  readonly upstream_cx_overflow: Counter;
  readonly upstream_rq_pending_total: Counter;
  readonly upstream_rq_cancelled: Counter;
  readonly upstream_rq_rx_reset: Counter;
  readonly upstream_rq_tx_reset: Counter;
  readonly upstream_cx_total: Counter;
  /** Envoy's per-codec connection counts (upstream_cx_total = these two + TCP/tunnel connections). */
  readonly upstream_cx_http1_total: Counter;
  readonly upstream_cx_http2_total: Counter;
  readonly upstream_cx_connect_fail: Counter;
  readonly upstream_cx_destroy: Counter;
  readonly upstream_cx_active: Gauge;
  readonly upstream_rq_active: Gauge;
  readonly upstream_rq_pending_active: Gauge;
  readonly upstream_cx_none_healthy: Counter;
  readonly membership_total: Gauge;
  readonly membership_healthy: Gauge;
  readonly membership_degraded: Gauge;
  readonly lb_healthy_panic: Counter;
  readonly update_success: Counter;
  readonly update_empty: Counter;
  readonly upstream_rq_time: TimeHistogram;
  readonly upstream_cx_connect_ms: TimeHistogram;
}

/**
 * A cluster's stats as one block whose counters are made on first use (most clusters of a
 * large mesh never see a request): /stats and Prometheus show every one from the start.
 */
const makeClusterStats = defineStatBlock<ClusterStats>({
  upstream_rq_total: 'counter', upstream_rq_1xx: 'counter', upstream_rq_2xx: 'counter',
  upstream_rq_3xx: 'counter', upstream_rq_4xx: 'counter', upstream_rq_5xx: 'counter',
  upstream_rq_completed: 'counter', upstream_rq_timeout: 'counter',
  upstream_rq_per_try_timeout: 'counter', upstream_rq_retry: 'counter',
  upstream_rq_retry_success: 'counter', upstream_rq_retry_overflow: 'counter',
  upstream_rq_retry_limit_exceeded: 'counter',
  upstream_rq_pending_overflow: 'counter', upstream_cx_overflow: 'counter',
  upstream_rq_pending_total: 'counter', upstream_rq_cancelled: 'counter', upstream_rq_rx_reset: 'counter',
  upstream_rq_tx_reset: 'counter', upstream_cx_total: 'counter',
  upstream_cx_http1_total: 'counter', upstream_cx_http2_total: 'counter',
  upstream_cx_connect_fail: 'counter', upstream_cx_destroy: 'counter',
  upstream_cx_active: 'gauge', upstream_rq_active: 'gauge',
  upstream_rq_pending_active: 'gauge', upstream_cx_none_healthy: 'counter',
  membership_total: 'gauge', membership_healthy: 'gauge', membership_degraded: 'gauge',
  lb_healthy_panic: 'counter', update_success: 'counter', update_empty: 'counter',
  upstream_rq_time: 'histogram', upstream_cx_connect_ms: 'histogram',
});

const poolVersions = new WeakMap<Dispatcher, number>();

interface BreakerState {
  limits: CircuitBreakerThresholds;
  requests: number;
  retries: number;
  /**
   * HTTP/1.1 connection slots (max_connections) and the requests waiting for one
   * (max_pending_requests); made by the first HTTP/1.1 attempt (slotsOf).
   */
  slots: PendingQueue | undefined;
}

const healthCheckStats = defineStatBlock<HealthCheckStats>({
  attempt: 'counter', success: 'counter', failure: 'counter', network_failure: 'counter', healthy: 'gauge',
}, 'health_check.');

const outlierStats = defineStatBlock<OutlierStats>({
  ejections_active: 'gauge', ejections_total: 'counter',
  ejections_enforced_total: 'counter', ejections_overflow: 'counter',
  ejections_detected_consecutive_5xx: 'counter', ejections_enforced_consecutive_5xx: 'counter',
  ejections_detected_consecutive_gateway_failure: 'counter',
  ejections_enforced_consecutive_gateway_failure: 'counter',
  ejections_detected_success_rate: 'counter', ejections_enforced_success_rate: 'counter',
  ejections_detected_consecutive_local_origin_failure: 'counter',
  ejections_enforced_consecutive_local_origin_failure: 'counter',
}, 'outlier_detection.');

/** What a cluster needs from the composition root beyond its config (all optional). */
export interface ClusterRuntimeOptions {
  /**
   * Builds upstream TLS material for a transport_socket_matches entry (server.ts: the
   * same decodeTransportSocket + UpstreamTlsProvider it uses for `transport_socket`).
   * Without it, a match that carries a transport socket is a configuration error.
   */
  readonly upstreamTls?: (ext: TypedExtension, path: string, matchName: string) => TlsSource & { close?(): void };
  /** ORIGINAL_DST loop protection: the proxy's listener addresses (see original-dst.ts). */
  readonly ownListeners?: OwnListeners;
  /** One-line configuration warnings (e.g. tcp_keepalive fields Node cannot set). */
  readonly warn?: (message: string) => void;
  /** Internal endpoints and CONNECT tunnels (proxy/src/tunnel/); without it every host is a socket. */
  readonly tunnels?: TunnelUpstreams;
  /** The proxy's random source (load balancing, health-check jitter, outlier enforcement); Math.random when absent. */
  readonly random?: () => number;
}

/**
 * A cluster at run time: its endpoint set and load balancer, one undici pool per host,
 * circuit breakers and stats. The object lives across config updates of the same
 * cluster (CDS updates that keep the transport settings): only its config is replaced.
 */
export class ClusterRuntime {
  readonly stats: ClusterStats;
  readonly endpoints: EndpointSet;
  /** Circuit breakers by priority; HIGH (which few routes use) is made on first use. */
  private readonly breakerDefault: BreakerState;
  private breakerHigh: BreakerState | undefined;
  private closed = false;
  lastUpdated = Date.now();
  private healthCheckers: readonly HealthChecker[] = NONE;
  /** Undefined without outlier_detection: the router's report is then one property test. */
  outlier: OutlierDetector | undefined;
  /** Hosts failed by active health checking (made with the first health checker). */
  private failedActiveHc: WeakSet<Host> | undefined;
  private readonly store: StatsStore;
  /** Which transport socket each host uses (transport_socket_matches). */
  private readonly transport: TransportSelector;
  private ownedTls: readonly { close?(): void }[] = NONE;
  /** ORIGINAL_DST clusters: hosts created on demand from original destinations. */
  readonly originalDst: OriginalDstHosts | undefined;
  /** Internal endpoints and CONNECT origination (proxy/src/tunnel/), when the proxy provides them. */
  readonly tunnels: TunnelUpstreams | undefined;
  /** The proxy's random source (see ClusterRuntimeOptions.random). */
  private readonly random: () => number;

  constructor(
    public config: Cluster,
    initial: readonly Endpoint[],
    store: StatsStore,
    /** Upstream TLS material (certs/ UpstreamTlsProvider); pools are rebuilt only when its version changes. */
    tls: TlsSource | undefined = undefined,
    options: ClusterRuntimeOptions = {},
  ) {
    this.tunnels = options.tunnels;
    this.random = options.random ?? Math.random;
    this.store = store;
    this.stats = makeClusterStats(store.clusterScope(config.name));
    this.transport = TransportSelector.of(tls, this.compileMatches(config, options));
    this.endpoints = new EndpointSet(config.name, endpointSetOptions(config, undefined, options.random), config.type === 'ORIGINAL_DST' ? [] : initial);
    this.breakerDefault = makeBreaker(config, 'DEFAULT');
    if (config.type === 'ORIGINAL_DST') {
      const scope = store.clusterScope(config.name);
      this.originalDst = new OriginalDstHosts(config.name, originalDstConfigOf(config), {
        original_dst_host_invalid: scope.counter('original_dst_host_invalid'),
        original_dst_loop_refused: scope.counter('original_dst_loop_refused'),
      }, {
        onAdded: () => this.refreshMembership(),
        onRemoved: (h) => {
          this.retireHost(h);
          this.refreshMembership();
        },
      }, options.ownListeners);
    }
    const warn = options.warn ?? ((m: string) => process.emitWarning(m));
    for (const w of keepaliveWarnings(config)) warn(`cluster ${config.name}: ${w}`);
    this.refreshMembership();
    this.startHealth(config);
  }

  private compileMatches(config: Cluster, options: ClusterRuntimeOptions): CompiledTransportMatch[] {
    try {
      return this.compileEach(config, options);
    } catch (e) {
      // A later match failed: release the TLS material (SDS subscriptions) the earlier ones took.
      for (const t of this.ownedTls) t.close?.();
      this.ownedTls = NONE;
      throw e;
    }
  }

  private compileEach(config: Cluster, options: ClusterRuntimeOptions): CompiledTransportMatch[] {
    return config.transportSocketMatches.map((m, i) => {
      let tls: (TlsSource & { close?(): void }) | undefined;
      if (m.transportSocket !== undefined) {
        const path = `cluster ${config.name}.transport_socket_matches[${i}].transport_socket`;
        if (options.upstreamTls === undefined) throw new Error(`${path}: no upstream TLS builder was given to the cluster`);
        tls = options.upstreamTls(m.transportSocket, path, m.name);
        this.ownedTls = [...this.ownedTls, tls];
      }
      return { match: m.match, choice: { name: m.name, tls } };
    });
  }

  /** The transport socket a host's connections use (for /clusters and tests). */
  transportFor(h: Host): TransportChoice {
    return this.transport.select(h.endpoint);
  }

  /** Starts active health checking and outlier detection (stopped by close). */
  private startHealth(config: Cluster): void {
    const scope = config.healthChecks.length > 0 || config.outlierDetection ? this.store.clusterScope(config.name) : undefined;
    for (const configured of config.healthChecks) {
      const failed = (this.failedActiveHc ??= new WeakSet());
      // Probes speak plain HTTP/1.1: against a TLS upstream an HTTP check would fail every
      // host, so there it degrades to a TCP connect check (documented limitation).
      const anyTls = config.transportSocket !== undefined || config.transportSocketMatches.some((m) => m.transportSocket !== undefined);
      const hc = anyTls && configured.kind.type === 'http' ? { ...configured, kind: { type: 'tcp' as const } } : configured;
      const checker = new HealthChecker({
        name: config.name,
        hosts: () => this.endpoints.hosts(),
        setActiveHealth: (h, ok) => {
          if (ok) failed.delete(h);
          else failed.add(h);
          this.applyAvailability(h);
        },
        hadTraffic: () => this.stats.upstream_rq_total.value > 0,
        random: this.random,
      }, hc, healthCheckStats(scope!));
      this.healthCheckers = [...this.healthCheckers, checker];
      checker.start();
    }
    if (config.outlierDetection) {
      this.outlier = new OutlierDetector({
        hosts: () => this.endpoints.hosts(),
        hostCount: () => this.endpoints.stats().total,
        setEjected: (h) => this.applyAvailability(h),
        random: this.random,
      }, config.outlierDetection, outlierStats(scope!));
      this.outlier.start();
    }
  }

  private stopHealth(): void {
    for (const c of this.healthCheckers) c.stop();
    this.healthCheckers = NONE;
    this.outlier?.stop();
    this.outlier = undefined;
  }

  /** A host is in the load balancer's healthy set unless active HC failed it or outlier detection ejected it. */
  private applyAvailability(h: Host): void {
    if (this.closed) return;
    this.endpoints.setHostAvailability(h, !(this.failedActiveHc?.has(h) ?? false) && !(this.outlier?.isEjected(h) ?? false));
    this.refreshMembership();
  }

  /** Why a host is out of the healthy set, for /clusters (Envoy's /failed_active_hc, /failed_outlier_check). */
  healthFlags(h: Host): { failedActiveHc: boolean; failedOutlierCheck: boolean } {
    return { failedActiveHc: this.failedActiveHc?.has(h) ?? false, failedOutlierCheck: this.outlier?.isEjected(h) ?? false };
  }

  /** An attempt's answer for outlier detection: its HTTP status. */
  reportOutcome(host: Host, status: number): void {
    if (this.outlier !== undefined) this.outlier.report(host, status);
  }

  /** An attempt that failed without an answer (reset, connect failure, timeout), for outlier detection. */
  reportLocalOrigin(host: Host, failure: LocalOriginFailure): void {
    if (this.outlier !== undefined) this.outlier.reportLocalOrigin(host, failure);
  }

  /** An attempt got a connection to the host (only split_external_local_origin_errors listens). */
  reportConnected(host: Host): void {
    const o = this.outlier;
    if (o !== undefined && o.splitsLocalOrigin) o.reportLocalOriginSuccess(host);
  }

  get name(): string {
    return this.config.name;
  }

  /** True when a new config can reuse this runtime's pools and endpoint set. */
  compatibleWith(next: Cluster): boolean {
    const a = this.config;
    return a.lbPolicy === next.lbPolicy && a.upstreamProtocol === next.upstreamProtocol && a.connectTimeout === next.connectTimeout
      && a.type === next.type && JSON.stringify(a.transportSocket) === JSON.stringify(next.transportSocket)
      && a.healthyPanicThreshold === next.healthyPanicThreshold && a.localityWeightedLb === next.localityWeightedLb
      && JSON.stringify(a.ringHash) === JSON.stringify(next.ringHash) && a.maglev.tableSize === next.maglev.tableSize
      && a.leastRequest.choiceCount === next.leastRequest.choiceCount && a.maxRequestsPerConnection === next.maxRequestsPerConnection
      && JSON.stringify(a.transportSocketMatches) === JSON.stringify(next.transportSocketMatches)
      && JSON.stringify(a.originalDst) === JSON.stringify(next.originalDst) && a.cleanupInterval === next.cleanupInterval
      && JSON.stringify(a.upstreamConnectionOptions) === JSON.stringify(next.upstreamConnectionOptions);
  }

  updateConfig(next: Cluster): void {
    const prev = this.config;
    this.config = next;
    if (JSON.stringify(prev.healthChecks) !== JSON.stringify(next.healthChecks)) {
      for (const c of this.healthCheckers) c.stop();
      this.healthCheckers = NONE;
      const failed = this.failedActiveHc;
      if (failed !== undefined) for (const h of this.endpoints.hosts()) if (failed.delete(h)) this.applyAvailability(h);
      const od = this.outlier;
      this.outlier = undefined;
      this.startHealth({ ...next, outlierDetection: undefined } as Cluster);
      this.outlier = od;
    }
    if (next.outlierDetection && this.outlier) this.outlier.updateConfig(next.outlierDetection);
    else if (!next.outlierDetection && this.outlier) {
      this.outlier.stop();
      this.outlier = undefined;
      for (const h of this.endpoints.hosts()) if (h.ejected) this.applyAvailability(h);
    } else if (next.outlierDetection && !this.outlier) this.startHealth({ ...next, healthChecks: [] } as Cluster);
    // Keep in-flight accounting and the waiting requests; take the new limits.
    for (const b of [this.breakerDefault, this.breakerHigh]) {
      if (b === undefined) continue;
      b.limits = limitsFor(next, b.limits.priority);
      b.slots?.setLimits(b.limits.maxConnections, b.limits.maxPendingRequests);
    }
    this.lastUpdated = Date.now();
  }

  /** Applies an endpoint diff; cost proportional to the diff. Pools of removed hosts drain. */
  applyDiff(diff: EndpointDiff): void {
    // ORIGINAL_DST has no configured endpoints: its hosts come from requests only.
    if (this.originalDst !== undefined) return;
    const { removed } = this.endpoints.apply(diff);
    for (const h of removed) this.retireHost(h);
    this.stats.update_success.inc();
    this.refreshMembership();
    this.lastUpdated = Date.now();
  }

  /**
   * A host for a new request or connection. ORIGINAL_DST clusters read `ctx.connection`
   * (the downstream ConnectionInfo) and, with use_http_header, `ctx.headers`; the TCP
   * proxy passes `{ hash: NaN, exclude: undefined, connection: connectionInfo(socket), headers: undefined }`.
   */
  pick(ctx: PickContext): Host | undefined {
    const od = this.originalDst;
    const h = od !== undefined ? od.pick(ctx) : this.endpoints.pick(ctx);
    if (!h) this.stats.upstream_cx_none_healthy.inc();
    return h;
  }

  /**
   * The host's dispatcher, created on first use. Its transport socket is chosen when
   * the host is first used or its endpoint changed (transport_socket_matches), not per
   * request; a host whose choice changes gets a new pool and the old one drains.
   */
  dispatcherFor(host: Host): Dispatcher {
    let d = host.upstream as Dispatcher | undefined;
    let choice = host.transport as TransportChoice | undefined;
    if (choice === undefined || host.transportEndpoint !== host.endpoint) {
      const next = this.transport.select(host.endpoint);
      host.transportEndpoint = host.endpoint;
      if (choice !== undefined && next !== choice && d !== undefined) {
        d.close().catch(() => undefined);
        d = undefined;
      }
      choice = next;
      host.transport = next;
    }
    const src = choice.tls;
    if (src === undefined) {
      if (d === undefined) d = this.newPool(host, undefined);
      return d;
    }
    const snap = src.current();
    const tlsOptions: UpstreamTls = snap ? (snap.connect as Record<string, unknown>) : { rejectUnauthorized: true, ca: [] };
    const version = snap?.version ?? -1;
    if (d !== undefined && poolVersions.get(d) !== version) {
      // Rotated certificates or trust: new connections use the new material; the old pool drains.
      d.close().catch(() => undefined);
      d = undefined;
    }
    if (d === undefined) {
      d = this.newPool(host, tlsOptions);
      poolVersions.set(d, version);
    }
    return d;
  }

  private newPool(host: Host, tlsOptions: UpstreamTls): Dispatcher {
    {
      const stats = this.stats;
      const http2 = this.config.upstreamProtocol === 'HTTP2';
      const d = createHostPool(this.config, host, tlsOptions,
        () => { stats.upstream_cx_total.inc(); (http2 ? stats.upstream_cx_http2_total : stats.upstream_cx_http1_total).inc(); stats.upstream_cx_active.inc(); },
        () => { stats.upstream_cx_active.dec(); stats.upstream_cx_destroy.inc(); },
        // An envoy_internal_address host: undici connects in process to the internal listener.
        host.endpoint.internal && this.tunnels ? this.tunnels.undiciConnector(this.config.name, host.endpoint, this.config.upstreamProtocol === 'HTTP2') : undefined);
      host.upstream = d;
      return d;
    }
  }

  private breaker(priority: 'DEFAULT' | 'HIGH'): BreakerState {
    return priority === 'DEFAULT' ? this.breakerDefault : (this.breakerHigh ??= makeBreaker(this.config, 'HIGH'));
  }

  /** Circuit breaker admission for a new request (Envoy's max_requests). */
  tryAcquireRequest(priority: 'DEFAULT' | 'HIGH'): boolean {
    const b = this.breaker(priority);
    if (b.requests >= b.limits.maxRequests) return false;
    b.requests++;
    return true;
  }

  releaseRequest(priority: 'DEFAULT' | 'HIGH'): void {
    this.breaker(priority).requests--;
  }

  /**
   * max_connections / max_pending_requests for an attempt about to be sent: 'ready' (it
   * holds a connection slot until `releaseSlot`), 'pending' (`w.onSlot()` comes later,
   * unless `cancelSlot` first) or 'overflow' (503 UO). HTTP/2 multiplexes every request on
   * one connection, so only max_requests applies there (as in Envoy): always 'ready', and
   * no slot is held (`holdsSlot` false).
   */
  acquireSlot(priority: 'DEFAULT' | 'HIGH', w: SlotWaiter): SlotResult {
    if (this.config.upstreamProtocol === 'HTTP2') return 'ready';
    return slotsOf(this.breaker(priority), this.stats).acquire(w);
  }

  /** Whether an attempt granted 'ready' by acquireSlot holds a slot it must release. */
  get slotted(): boolean {
    return this.config.upstreamProtocol !== 'HTTP2';
  }

  releaseSlot(priority: 'DEFAULT' | 'HIGH'): void {
    this.breaker(priority).slots?.release();
  }

  cancelSlot(priority: 'DEFAULT' | 'HIGH', w: SlotWaiter): void {
    this.breaker(priority).slots?.cancel(w);
  }

  /** Attempts waiting for a connection slot (both priorities; upstream_rq_pending_active). */
  get pendingRequests(): number {
    return (this.breakerDefault.slots?.pending ?? 0) + (this.breakerHigh?.slots?.pending ?? 0);
  }

  /** Envoy's max_retries, or the retry budget when one is configured. */
  tryAcquireRetry(priority: 'DEFAULT' | 'HIGH'): boolean {
    const b = this.breaker(priority);
    const budget = b.limits.retryBudget;
    const limit = budget ? Math.max(budget.minRetryConcurrency, Math.floor((b.requests * budget.budgetPercent) / 100)) : b.limits.maxRetries;
    if (b.retries >= limit) return false;
    b.retries++;
    return true;
  }

  releaseRetry(priority: 'DEFAULT' | 'HIGH'): void {
    this.breaker(priority).retries--;
  }

  refreshMembership(): void {
    const s = this.endpoints.stats();
    // ORIGINAL_DST hosts are healthy while they exist (Envoy creates them HEALTHY).
    const od = this.originalDst?.size ?? 0;
    this.stats.membership_total.set(s.total + od);
    this.stats.membership_healthy.set(s.healthy + od);
    this.stats.membership_degraded.set(s.degraded);
  }

  /** Closes a removed host's pool once its in-flight requests finish (Envoy drains, never resets them). */
  private retireHost(h: Host): void {
    h.directPool?.close();
    h.directPool = undefined;
    const d = h.upstream as Dispatcher | undefined;
    if (!d) return;
    h.upstream = undefined;
    d.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopHealth();
    this.closed = true;
    this.originalDst?.close();
    for (const t of this.ownedTls) t.close?.();
    const closing: Promise<void>[] = [];
    for (const h of this.allHosts()) {
      h.directPool?.close();
      h.directPool = undefined;
      const d = h.upstream as Dispatcher | undefined;
      if (d) closing.push(d.close().catch(() => undefined));
      h.upstream = undefined;
    }
    this.endpoints.close();
    await Promise.all(closing);
  }

  /** Configured hosts and, for ORIGINAL_DST, the hosts created from original destinations. */
  allHosts(): Host[] {
    const out = [...this.endpoints.hosts()];
    if (this.originalDst !== undefined) out.push(...this.originalDst.hosts());
    return out;
  }

  /** Forcefully resets every upstream connection (shutdown after the drain time). */
  async destroy(): Promise<void> {
    for (const h of this.allHosts()) {
      const d = h.upstream as Dispatcher | undefined;
      if (d) await d.destroy().catch(() => undefined);
      h.upstream = undefined;
    }
  }
}

/** Envoy's default thresholds, one object per priority shared by every cluster without circuit_breakers. */
const DEFAULT_LIMITS = {
  DEFAULT: Object.freeze({ priority: 'DEFAULT' as const, maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 }),
  HIGH: Object.freeze({ priority: 'HIGH' as const, maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 }),
};

/** An empty list shared by clusters with nothing in it (an empty array is 32 bytes each). */
const NONE: readonly never[] = Object.freeze([]);

function limitsFor(c: Cluster, p: 'DEFAULT' | 'HIGH'): CircuitBreakerThresholds {
  return c.circuitBreakers.find((x) => x.priority === p) ?? DEFAULT_LIMITS[p];
}

function makeBreaker(c: Cluster, p: 'DEFAULT' | 'HIGH'): BreakerState {
  return { limits: limitsFor(c, p), requests: 0, retries: 0, slots: undefined };
}

/** A breaker's connection-slot queue, made on first use (~100 bytes in every cluster, and HTTP/2 and TCP never use it). */
function slotsOf(b: BreakerState, stats: ClusterStats): PendingQueue {
  return (b.slots ??= new PendingQueue(b.limits.maxConnections, b.limits.maxPendingRequests, stats));
}
