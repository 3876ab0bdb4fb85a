/**
 * Istio's standard metrics (istio/proxy istio_stats.cc): which labels each metric has,
 * their values for one request or connection, and the plugin config's overrides (drop,
 * tags_to_remove, dimensions), resolved once per filter configuration so a report is
 * label computation plus one series lookup per metric.
 */
import type { ExprContext } from './expr.js';
import type { StatsPluginConfig } from './plugin-config.js';
import { namespaceOfPrincipal, type WorkloadMetadata } from './workload.js';

/** Istio's standard tags in the order Istio adds them (reporter first, connection_security_policy last). */
export const PEER_TAGS = [
  'reporter',
  'source_workload', 'source_canonical_service', 'source_canonical_revision', 'source_workload_namespace',
  'source_principal', 'source_app', 'source_version', 'source_cluster',
  'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_app',
  'destination_version', 'destination_service', 'destination_canonical_service', 'destination_canonical_revision',
  'destination_service_name', 'destination_service_namespace', 'destination_cluster',
] as const;

export const HTTP_TAGS = [...PEER_TAGS, 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy'] as const;
export const TCP_TAGS = [...PEER_TAGS, 'request_protocol', 'response_flags', 'connection_security_policy'] as const;
const ALL_TAGS = new Set<string>(HTTP_TAGS);

export type Reporter = 'source' | 'destination' | 'waypoint';

/** The metrics sink: proxy/src/stats' LabeledRegistry has this shape (StatsStore.labeled). */
export interface LabeledMetrics {
  counter(name: string, labelNames: readonly string[]): FamilyLike<{ inc(n?: number): void }>;
  histogram(name: string, labelNames: readonly string[]): FamilyLike<{ record(v: number): void }>;
  gauge?(name: string, labelNames: readonly string[]): FamilyLike<{ set(v: number): void }>;
}

/** istio_build{component="proxy",tag="<ISTIO_VERSION>"} 1, as Istio's stats filter publishes it. */
export function recordBuild(sink: LabeledMetrics, istioVersion: unknown): void {
  sink.gauge?.('istio_build', ['component', 'tag']).get(['proxy', typeof istioVersion === 'string' && istioVersion !== '' ? istioVersion : 'unknown']).set(1);
}

interface FamilyLike<S> {
  get(values: readonly string[]): S;
  /** Same series as get(prefix.concat(suffix)); `prefix` is a long-lived array. */
  getSplit(prefix: readonly string[], suffix: readonly string[]): S;
}

/** This proxy's side of every report, from the bootstrap node. */
export interface LocalSide {
  readonly workload: WorkloadMetadata;
  readonly nodeId: string;
  readonly nodeMetadata: Readonly<Record<string, unknown>>;
}

/** What one request or connection contributes to its labels. */
export interface PeerReport {
  readonly reporter: Reporter;
  /** The other side's workload, from metadata exchange; undefined when none arrived. */
  readonly peer: WorkloadMetadata | undefined;
  /** Server side: the client's principal; client side: the upstream server's. "" when unknown. */
  readonly peerPrincipal: string;
  /** This proxy's own principal on the connection ("" when not mTLS). */
  readonly localPrincipal: string;
  /** destination_service (FQDN) and destination_service_name, "" when unknown. */
  readonly serviceHost: string;
  readonly serviceName: string;
}

const or = (v: string | undefined, fallback: string): string => (v === undefined || v === '' ? fallback : v);

/** The 20 peer tags (PEER_TAGS order), as Istio computes them for each reporter. */
export function peerTags(local: LocalSide, r: PeerReport): string[] {
  const p = r.peer;
  const peerNs = or(r.peerPrincipal !== '' ? namespaceOfPrincipal(r.peerPrincipal) : undefined, p?.namespace ?? '');
  const me = local.workload;
  if (r.reporter === 'source') {
    return [
      'source',
      me.workloadName, me.canonicalName, me.canonicalRevision, me.namespace,
      or(r.localPrincipal, 'unknown'), me.appName, me.appVersion, me.clusterId,
      or(p?.workloadName, 'unknown'), or(peerNs, 'unknown'), or(r.peerPrincipal, 'unknown'), or(p?.appName, 'unknown'),
      or(p?.appVersion, 'unknown'), or(r.serviceHost, 'unknown'), or(p?.canonicalName, 'unknown'), or(p?.canonicalRevision, 'latest'),
      or(r.serviceName, 'unknown'), or(peerNs, 'unknown'), or(p?.clusterId, 'unknown'),
    ];
  }
  return [
    r.reporter,
    or(p?.workloadName, 'unknown'), or(p?.canonicalName, 'unknown'), or(p?.canonicalRevision, 'latest'), or(peerNs, 'unknown'),
    or(r.peerPrincipal, 'unknown'), or(p?.appName, 'unknown'), or(p?.appVersion, 'unknown'), or(p?.clusterId, 'unknown'),
    me.workloadName, me.namespace, or(r.localPrincipal, 'unknown'), me.appName,
    me.appVersion, or(r.serviceHost, me.canonicalName), me.canonicalName, me.canonicalRevision,
    or(r.serviceName, me.canonicalName), me.namespace, me.clusterId,
  ];
}

/**
 * connection_security_policy: the server side knows (mutual_tls when both principals are
 * present, else none); the client side reports unknown, as Istio's does.
 */
export function securityPolicy(reporter: Reporter, peerPrincipal: string, localPrincipal: string): string {
  if (reporter === 'source') return 'unknown';
  return peerPrincipal !== '' && localPrincipal !== '' ? 'mutual_tls' : 'none';
}

interface ResolvedMetric {
  readonly labelNames: readonly string[];
  /** For each label: index into the standard tag values, or -(1 + dimension index). */
  readonly sources: readonly number[];
}

/** One standard metric after overrides; `undefined` when dropped. */
function resolve(metric: string, standard: readonly string[], config: StatsPluginConfig, dimIndex: ReadonlyMap<object, number>, warn: (m: string) => void): ResolvedMetric | undefined {
  const names: string[] = [...standard];
  const sources: number[] = standard.map((_, i) => i);
  for (const o of config.metrics) {
    if (o.name !== '' && o.name !== metric) continue;
    if (o.drop) return undefined;
    for (const tag of o.tagsToRemove) {
      if (!ALL_TAGS.has(tag)) {
        warn(`tags_to_remove: "${tag}" is not a standard tag`);
        continue;
      }
      const i = names.indexOf(tag);
      if (i >= 0) {
        names.splice(i, 1);
        sources.splice(i, 1);
      }
    }
    for (const d of o.dimensions) {
      const i = names.indexOf(d.tag);
      const source = -(1 + (dimIndex.get(d) ?? 0));
      if (i >= 0) {
        // An expression that did not compile removes a standard tag (Istio maps it to no value).
        if (d.expr === undefined) {
          names.splice(i, 1);
          sources.splice(i, 1);
        } else sources[i] = source;
      } else if (d.expr !== undefined && ALL_TAGS.has(d.tag)) {
        // A standard tag this metric does not carry (response_code on TCP): Istio overrides nothing.
      } else if (d.expr !== undefined) {
        const j = names.indexOf(d.tag);
        if (j >= 0) sources[j] = source; // an earlier override added it: the later one wins
        else {
          names.push(d.tag);
          sources.push(source);
        }
      }
    }
  }
  return { labelNames: names, sources };
}

type CounterSeriesFamily = ReturnType<LabeledMetrics['counter']>;
type HistogramSeriesFamily = ReturnType<LabeledMetrics['histogram']>;

/** The HTTP series one request records into (undefined: the metric is dropped). */
interface HttpSeriesBundle {
  readonly requests: { inc(n?: number): void } | undefined;
  readonly duration: { record(v: number): void } | undefined;
  readonly reqBytes: { record(v: number): void } | undefined;
  readonly resBytes: { record(v: number): void } | undefined;
}

/** The standard metrics of one `istio.stats` filter configuration. */
export class IstioMetrics {
  /** The HTTP series of a label set, by its requests_total series (see httpSeries). */
  private readonly httpBundles = new WeakMap<object, HttpSeriesBundle>();
  private readonly dims: ((ctx: ExprContext) => string)[] = [];
  private readonly http: { requests?: [ResolvedMetric, CounterSeriesFamily]; duration?: [ResolvedMetric, HistogramSeriesFamily]; reqBytes?: [ResolvedMetric, HistogramSeriesFamily]; resBytes?: [ResolvedMetric, HistogramSeriesFamily] } = {};
  private readonly tcp: { opened?: [ResolvedMetric, CounterSeriesFamily]; closed?: [ResolvedMetric, CounterSeriesFamily]; sent?: [ResolvedMetric, CounterSeriesFamily]; received?: [ResolvedMetric, CounterSeriesFamily] } = {};

  /** No overrides: every metric has exactly the standard labels (the split fast path applies). */
  private readonly plain: boolean;

  /** Some dimension needs the request's attributes (callers build an ExprContext only then). */
  get usesExpressions(): boolean {
    return this.dims.length > 0;
  }

  constructor(sink: LabeledMetrics, config: StatsPluginConfig, warn: (m: string) => void = () => undefined) {
    this.plain = config.metrics.length === 0;
    const entries = new Map<object, number>();
    for (const o of config.metrics) {
      for (const d of o.dimensions) {
        if (d.expr === undefined) continue;
        entries.set(d, this.dims.length);
        this.dims.push(d.expr);
      }
    }
    const counter = (m: string, tags: readonly string[]): [ResolvedMetric, CounterSeriesFamily] | undefined => {
      const r = resolve(m, tags, config, entries, warn);
      return r && [r, sink.counter(`istio_${m}`, r.labelNames)];
    };
    const histogram = (m: string, tags: readonly string[]): [ResolvedMetric, HistogramSeriesFamily] | undefined => {
      const r = resolve(m, tags, config, entries, warn);
      return r && [r, sink.histogram(`istio_${m}`, r.labelNames)];
    };
    this.http = {
      requests: counter('requests_total', HTTP_TAGS),
      duration: histogram('request_duration_milliseconds', HTTP_TAGS),
      reqBytes: histogram('request_bytes', HTTP_TAGS),
      resBytes: histogram('response_bytes', HTTP_TAGS),
    };
    this.tcp = {
      opened: counter('tcp_connections_opened_total', TCP_TAGS),
      closed: counter('tcp_connections_closed_total', TCP_TAGS),
      sent: counter('tcp_sent_bytes_total', TCP_TAGS),
      received: counter('tcp_received_bytes_total', TCP_TAGS),
    };
  }

  private evalDims(ctx: ExprContext | undefined): string[] {
    if (this.dims.length === 0) return [];
    return this.dims.map((d) => (ctx ? d(ctx) : 'unknown'));
  }

  private static values(m: ResolvedMetric, tags: readonly string[], dims: readonly string[]): string[] {
    return m.sources.map((s) => (s >= 0 ? tags[s]! : dims[-s - 1] ?? 'unknown'));
  }

  /**
   * One finished HTTP request: `peer` are the PEER_TAGS values (reuse the same array for
   * the same peer: lookups are then cheap), `request` the five request tags.
   */
  reportRequestSplit(peer: readonly string[], request: readonly string[], durationMs: number, requestBytes: number, responseBytes: number, ctx?: ExprContext): void {
    if (!this.plain) {
      this.reportRequest(peer.concat(request), durationMs, requestBytes, responseBytes, ctx);
      return;
    }
    const b = this.httpSeries(peer, request);
    b.requests?.inc();
    b.duration?.record(durationMs);
    b.reqBytes?.record(requestBytes);
    b.resBytes?.record(responseBytes);
  }

  /**
   * The four HTTP series of one label set with one trie walk instead of four: the requests
   * family's getSplit finds the label set's series, and the other three are remembered
   * against that series object (~15 Map lookups fewer per request). Bounded by the family:
   * a series past its limit is detached, and its entry goes with it.
   */
  private httpSeries(peer: readonly string[], request: readonly string[]): HttpSeriesBundle {
    const h = this.http;
    const requests = h.requests?.[1].getSplit(peer, request);
    let b = requests === undefined ? undefined : this.httpBundles.get(requests);
    if (b === undefined) {
      b = {
        requests,
        duration: h.duration?.[1].getSplit(peer, request),
        reqBytes: h.reqBytes?.[1].getSplit(peer, request),
        resBytes: h.resBytes?.[1].getSplit(peer, request),
      };
      if (requests !== undefined) this.httpBundles.set(requests, b);
    }
    return b;
  }

  /** One finished HTTP request. `tags` are HTTP_TAGS values. */
  reportRequest(tags: readonly string[], durationMs: number, requestBytes: number, responseBytes: number, ctx?: ExprContext): void {
    const dims = this.evalDims(ctx);
    const h = this.http;
    if (h.requests) h.requests[1].get(IstioMetrics.values(h.requests[0], tags, dims)).inc();
    if (h.duration) h.duration[1].get(IstioMetrics.values(h.duration[0], tags, dims)).record(durationMs);
    if (h.reqBytes) h.reqBytes[1].get(IstioMetrics.values(h.reqBytes[0], tags, dims)).record(requestBytes);
    if (h.resBytes) h.resBytes[1].get(IstioMetrics.values(h.resBytes[0], tags, dims)).record(responseBytes);
  }

  /** The series of one TCP connection (labels fixed once the peer is known), for repeated reports. */
  tcpSeries(tags: readonly string[], ctx?: ExprContext): TcpSeries {
    const dims = this.evalDims(ctx);
    const t = this.tcp;
    // Each series is created on its first increment, as Istio's counters are (closed_total
    // does not show while the connection is open).
    const pick = (m: [ResolvedMetric, CounterSeriesFamily] | undefined): { inc(n?: number): void } | undefined => {
      if (!m) return undefined;
      let series: { inc(n?: number): void } | undefined;
      return { inc: (n?: number) => (series ??= m[1].get(IstioMetrics.values(m[0], tags, dims))).inc(n) };
    };
    return { opened: pick(t.opened), closed: pick(t.closed), sent: pick(t.sent), received: pick(t.received) };
  }
}

export interface TcpSeries {
  readonly opened: { inc(n?: number): void } | undefined;
  readonly closed: { inc(n?: number): void } | undefined;
  readonly sent: { inc(n?: number): void } | undefined;
  readonly received: { inc(n?: number): void } | undefined;
}
