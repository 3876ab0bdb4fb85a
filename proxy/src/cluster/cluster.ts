import type { Dispatcher } from 'undici';
import type { CircuitBreakerThresholds, Cluster, Endpoint, EndpointDiff } from '../../../config/src/index.js';
import { EndpointSet, endpointSetOptions, type Host, type PickContext } from './endpoint-set.js';
import { createHostPool, type UpstreamTls } from '../upstream/pool.js';
import type { Counter, Gauge, StatsStore, TimeHistogram } from '../stats/stats.js';

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
  readonly upstream_rq_rx_reset: Counter;
  readonly upstream_rq_tx_reset: Counter;
  readonly upstream_cx_total: Counter;
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

function makeStats(store: StatsStore, name: string): ClusterStats {
  const s = store.clusterScope(name);
  const c = (n: string) => s.counter(n);
  const g = (n: string) => s.gauge(n);
  return {
    upstream_rq_total: c('upstream_rq_total'), upstream_rq_1xx: c('upstream_rq_1xx'), upstream_rq_2xx: c('upstream_rq_2xx'),
    upstream_rq_3xx: c('upstream_rq_3xx'), upstream_rq_4xx: c('upstream_rq_4xx'), upstream_rq_5xx: c('upstream_rq_5xx'),
    upstream_rq_completed: c('upstream_rq_completed'), upstream_rq_timeout: c('upstream_rq_timeout'),
    upstream_rq_per_try_timeout: c('upstream_rq_per_try_timeout'), upstream_rq_retry: c('upstream_rq_retry'),
    upstream_rq_retry_success: c('upstream_rq_retry_success'), upstream_rq_retry_overflow: c('upstream_rq_retry_overflow'),
    upstream_rq_retry_limit_exceeded: c('upstream_rq_retry_limit_exceeded'),
    upstream_rq_pending_overflow: c('upstream_rq_pending_overflow'), upstream_rq_rx_reset: c('upstream_rq_rx_reset'),
    upstream_rq_tx_reset: c('upstream_rq_tx_reset'), upstream_cx_total: c('upstream_cx_total'),
    upstream_cx_connect_fail: c('upstream_cx_connect_fail'), upstream_cx_destroy: c('upstream_cx_destroy'),
    upstream_cx_active: g('upstream_cx_active'), upstream_rq_active: g('upstream_rq_active'),
    upstream_rq_pending_active: g('upstream_rq_pending_active'), upstream_cx_none_healthy: c('upstream_cx_none_healthy'),
    membership_total: g('membership_total'), membership_healthy: g('membership_healthy'), membership_degraded: g('membership_degraded'),
    lb_healthy_panic: c('lb_healthy_panic'), update_success: c('update_success'), update_empty: c('update_empty'),
    upstream_rq_time: s.histogram('upstream_rq_time'), upstream_cx_connect_ms: s.histogram('upstream_cx_connect_ms'),
  };
}

const poolVersions = new WeakMap<Dispatcher, number>();

interface BreakerState {
  readonly limits: CircuitBreakerThresholds;
  requests: number;
  retries: number;
}

/**
 * A cluster at run time: its endpoint set and load balancer, one undici pool per host,
 * circuit breakers and stats. The object lives across config updates of the same
 * cluster (CDS updates that keep the transport settings): only its config is replaced.
 */
export class ClusterRuntime {
  readonly stats: ClusterStats;
  readonly endpoints: EndpointSet;
  private readonly breakers: { DEFAULT: BreakerState; HIGH: BreakerState };
  private closed = false;
  lastUpdated = Date.now();

  constructor(
    public config: Cluster,
    initial: readonly Endpoint[],
    store: StatsStore,
    /** Upstream TLS material (certs/ UpstreamTlsProvider); pools are rebuilt only when its version changes. */
    private readonly tls: { current(): { version: number; connect: object } | undefined } | undefined = undefined,
  ) {
    this.stats = makeStats(store, config.name);
    this.endpoints = new EndpointSet(config.name, endpointSetOptions(config), initial);
    this.breakers = makeBreakers(config);
    this.refreshMembership();
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
      && a.leastRequest.choiceCount === next.leastRequest.choiceCount && a.maxRequestsPerConnection === next.maxRequestsPerConnection;
  }

  updateConfig(next: Cluster): void {
    this.config = next;
    const b = makeBreakers(next);
    // Keep in-flight accounting; take the new limits.
    this.breakers.DEFAULT = { ...b.DEFAULT, requests: this.breakers.DEFAULT.requests, retries: this.breakers.DEFAULT.retries };
    this.breakers.HIGH = { ...b.HIGH, requests: this.breakers.HIGH.requests, retries: this.breakers.HIGH.retries };
    this.lastUpdated = Date.now();
  }

  /** Applies an endpoint diff; cost proportional to the diff. Pools of removed hosts drain. */
  applyDiff(diff: EndpointDiff): void {
    const { removed } = this.endpoints.apply(diff);
    for (const h of removed) this.retireHost(h);
    this.stats.update_success.inc();
    this.refreshMembership();
    this.lastUpdated = Date.now();
  }

  pick(ctx: PickContext): Host | undefined {
    const h = this.endpoints.pick(ctx);
    if (!h) this.stats.upstream_cx_none_healthy.inc();
    return h;
  }

  /** The host's dispatcher, created on first use. */
  dispatcherFor(host: Host): Dispatcher {
    let d = host.upstream as Dispatcher | undefined;
    let tlsOptions: UpstreamTls;
    if (this.tls) {
      const snap = this.tls.current();
      tlsOptions = snap ? (snap.connect as Record<string, unknown>) : { rejectUnauthorized: true, ca: [] };
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
    if (d === undefined) d = this.newPool(host, undefined);
    return d;
  }

  private newPool(host: Host, tlsOptions: UpstreamTls): Dispatcher {
    {
      const stats = this.stats;
      const d = createHostPool(this.config, host, tlsOptions,
        () => { stats.upstream_cx_total.inc(); stats.upstream_cx_active.inc(); },
        () => { stats.upstream_cx_active.dec(); stats.upstream_cx_destroy.inc(); });
      host.upstream = d;
      return d;
    }
  }

  /** Circuit breaker admission for a new request (Envoy's max_requests). */
  tryAcquireRequest(priority: 'DEFAULT' | 'HIGH'): boolean {
    const b = this.breakers[priority];
    if (b.requests >= b.limits.maxRequests) return false;
    b.requests++;
    return true;
  }

  releaseRequest(priority: 'DEFAULT' | 'HIGH'): void {
    this.breakers[priority].requests--;
  }

  /** Envoy's max_retries, or the retry budget when one is configured. */
  tryAcquireRetry(priority: 'DEFAULT' | 'HIGH'): boolean {
    const b = this.breakers[priority];
    const budget = b.limits.retryBudget;
    const limit = budget ? Math.max(budget.minRetryConcurrency, Math.floor((b.requests * budget.budgetPercent) / 100)) : b.limits.maxRetries;
    if (b.retries >= limit) return false;
    b.retries++;
    return true;
  }

  releaseRetry(priority: 'DEFAULT' | 'HIGH'): void {
    this.breakers[priority].retries--;
  }

  refreshMembership(): void {
    const s = this.endpoints.stats();
    this.stats.membership_total.set(s.total);
    this.stats.membership_healthy.set(s.healthy);
    this.stats.membership_degraded.set(s.degraded);
  }

  /** Closes a removed host's pool once its in-flight requests finish (Envoy drains, never resets them). */
  private retireHost(h: Host): void {
    const d = h.upstream as Dispatcher | undefined;
    if (!d) return;
    h.upstream = undefined;
    d.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing: Promise<void>[] = [];
    for (const h of this.endpoints.hosts()) {
      const d = h.upstream as Dispatcher | undefined;
      if (d) closing.push(d.close().catch(() => undefined));
      h.upstream = undefined;
    }
    this.endpoints.close();
    await Promise.all(closing);
  }

  /** Forcefully resets every upstream connection (shutdown after the drain time). */
  async destroy(): Promise<void> {
    for (const h of this.endpoints.hosts()) {
      const d = h.upstream as Dispatcher | undefined;
      if (d) await d.destroy().catch(() => undefined);
      h.upstream = undefined;
    }
  }
}

function makeBreakers(c: Cluster): { DEFAULT: BreakerState; HIGH: BreakerState } {
  const get = (p: 'DEFAULT' | 'HIGH') => c.circuitBreakers.find((x) => x.priority === p) ?? { priority: p, maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };
  return { DEFAULT: { limits: get('DEFAULT'), requests: 0, retries: 0 }, HIGH: { limits: get('HIGH'), requests: 0, retries: 0 } };
}
