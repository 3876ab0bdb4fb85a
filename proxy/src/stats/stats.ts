import type { IncomingMessage, ServerResponse } from 'node:http';
import { escapeLabel, LabeledRegistry } from './labeled.js';

/** Prometheus labels of a scope's stats (Envoy's tag extraction), e.g. `{ envoy_cluster_name: 'svc1' }`. */
export type Attributes = Readonly<Record<string, string>>;

/**
 * pilotfish's statistics, named like Envoy's (`cluster.<name>.upstream_rq_2xx`).
 *
 * Counters and gauges are plain numbers bumped on the request path (a property
 * increment, no allocation, no attribute hashing), read only when `/stats` or
 * `/stats/prometheus` is scraped. Histograms are fixed-bucket arrays of our own (a bucket
 * search and two increments per record). The Prometheus text is rendered here, in
 * Envoy's format (names as Envoy's, no `_total` appended, no HELP lines): the
 * OpenTelemetry metrics SDK that used to render it cost ~5 MB of idle RSS for a
 * serializer (its histograms also hashed attributes on every record, ~4 µs per request).
 * `/stats` and `/stats/prometheus` both read this one store.
 */
export class Counter {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class Gauge {
  value = 0;
  inc(): void {
    this.value++;
  }
  dec(): void {
    this.value--;
  }
  set(v: number): void {
    this.value = v;
  }
}

/** Envoy's default histogram buckets, in milliseconds. */
const BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

/** The bucket counts of every histogram that has recorded nothing yet (never written). */
const EMPTY_COUNTS = new Float64Array(BUCKETS_MS.length + 1);

export class TimeHistogram {
  count = 0;
  sum = 0;
  /**
   * counts[i] = observations <= BUCKETS_MS[i] and > BUCKETS_MS[i-1]; last slot is +Inf.
   * Allocated on the first record: a typed array costs ~400 bytes with its buffer, and
   * most clusters of a large mesh never see a request (EMPTY_COUNTS until then).
   */
  counts: Float64Array = EMPTY_COUNTS;
  constructor(readonly promName: string, readonly attributes: Attributes) {}
  record(ms: number): void {
    if (this.count++ === 0) this.counts = new Float64Array(BUCKETS_MS.length + 1);
    this.sum += ms;
    let i = 0;
    while (i < BUCKETS_MS.length && ms > BUCKETS_MS[i]!) i++;
    this.counts[i]!++;
  }
}

interface Family {
  /** Prometheus metric name, e.g. envoy_cluster_upstream_rq_total. */
  readonly promName: string;
  readonly kind: 'counter' | 'gauge';
  /**
   * One series per scope that has this stat: parallel arrays, not a Map of small
   * objects, because a cluster has ~35 of them (~90 bytes per stat saved, bench/memory/clusters.ts).
   */
  readonly labels: Attributes[];
  readonly metrics: (Counter | Gauge)[];
}

/**
 * A scope gives stat names a prefix and Prometheus labels, like Envoy's tag extraction:
 * `cluster.svc1.upstream_rq_total` is `envoy_cluster_upstream_rq_total{envoy_cluster_name="svc1"}`.
 */
export class StatsScope {
  constructor(
    private readonly store: StatsStore,
    readonly prefix: string, // e.g. "cluster.svc1."
    readonly promPrefix: string, // e.g. "envoy_cluster_"
    readonly attrs: Attributes,
  ) {}

  counter(name: string): Counter {
    return this.store.metric(this, name, 'counter') as Counter;
  }

  gauge(name: string): Gauge {
    return this.store.metric(this, name, 'gauge') as Gauge;
  }

  histogram(name: string): TimeHistogram {
    return this.store.histogram(this, name);
  }
}

export class StatsStore {
  private readonly families = new Map<string, Family>();
  /**
   * Every scope's stats for /stats, by scope prefix, then by stat name, in creation order.
   * The Envoy-style flat name (`cluster.svc1.upstream_rq_total`) is made only when /stats is
   * read: kept as one string per stat it was ~70% of the stats' memory in a large mesh
   * (Istio's cluster names are ~60 characters, and a cluster has ~40 stats), while the
   * stat names themselves are the same few strings in every scope (interned below).
   */
  private readonly byScope = new Map<string, Map<string, Counter | Gauge | TimeHistogram>>();
  /** One copy of each stat name (callers build some, e.g. `outlier_detection.${n}`). */
  private readonly statNames = new Map<string, string>();
  private readonly histograms: TimeHistogram[] = [];
  private readonly root: StatsScope;
  /** Sources of counters owned by other modules (xDS client, TLS, filters, fast path). */
  private readonly external: (() => Record<string, number>)[] = [];
  /** Metrics born with labels (Istio's standard metrics), rendered after the Envoy-named ones. */
  readonly labeled = new LabeledRegistry();
  /** Run before every read of the store (gauges sampled at scrape time, e.g. server.memory_*). */
  private readonly collectHooks: (() => void)[] = [];

  constructor() {
    this.root = new StatsScope(this, '', 'envoy_', {});
  }

  scope(prefix: string, promPrefix: string, attrs: Attributes): StatsScope {
    return new StatsScope(this, prefix, promPrefix, attrs);
  }

  get rootScope(): StatsScope {
    return this.root;
  }

  clusterScope(cluster: string): StatsScope {
    return this.scope(`cluster.${cluster}.`, 'envoy_cluster_', { envoy_cluster_name: cluster });
  }

  httpScope(statPrefix: string): StatsScope {
    return this.scope(`http.${statPrefix}.`, 'envoy_http_', { envoy_http_conn_manager_prefix: statPrefix });
  }

  listenerScope(address: string): StatsScope {
    return this.scope(`listener.${address}.`, 'envoy_listener_', { envoy_listener_address: address });
  }

  /** `hook` runs before /stats and /stats/prometheus read the store: for gauges too costly to keep current. */
  onCollect(hook: () => void): void {
    this.collectHooks.push(hook);
  }

  private collect(): void {
    for (const h of this.collectHooks) h();
  }

  /** Registers counters kept elsewhere; names are flat Envoy names (e.g. `control_plane.connected_state`). */
  addExternal(source: () => Record<string, number>): void {
    this.external.push(source);
  }

  /** The stats of a scope prefix (two StatsScope objects with one prefix share them). */
  private statsOf(prefix: string): Map<string, Counter | Gauge | TimeHistogram> {
    let stats = this.byScope.get(prefix);
    if (stats === undefined) this.byScope.set(prefix, (stats = new Map()));
    return stats;
  }

  private internName(name: string): string {
    let interned = this.statNames.get(name);
    if (interned === undefined) this.statNames.set(name, (interned = name));
    return interned;
  }

  metric(scope: StatsScope, statName: string, kind: 'counter' | 'gauge'): Counter | Gauge {
    const stats = this.statsOf(scope.prefix);
    const name = this.internName(statName);
    const existing = stats.get(name);
    if (existing && !(existing instanceof TimeHistogram)) return existing;
    const metric = kind === 'counter' ? new Counter() : new Gauge();
    stats.set(name, metric);
    const promName = sanitize(scope.promPrefix + name);
    let family = this.families.get(promName);
    if (!family) {
      family = { promName, kind, labels: [], metrics: [] };
      this.families.set(promName, family);
    }
    family.labels.push(scope.attrs);
    family.metrics.push(metric);
    return metric;
  }

  /** Sanitized Prometheus names, shared by every scope (one string, not one per cluster). */
  private readonly promNames = new Map<string, string>();
  private promName(raw: string): string {
    let n = this.promNames.get(raw);
    if (n === undefined) this.promNames.set(raw, (n = sanitize(raw)));
    return n;
  }

  histogram(scope: StatsScope, statName: string): TimeHistogram {
    const stats = this.statsOf(scope.prefix);
    const name = this.internName(statName);
    const existing = stats.get(name);
    if (existing instanceof TimeHistogram) return existing;
    const th = new TimeHistogram(this.promName(scope.promPrefix + name), scope.attrs);
    stats.set(name, th);
    this.histograms.push(th);
    return th;
  }

  /** Envoy's `/stats` text: `name: value`, sorted; histograms as count/sum. */
  snapshot(): [string, number][] {
    this.collect();
    const out: [string, number][] = [];
    for (const [prefix, stats] of this.byScope) {
      for (const [stat, m] of stats) {
        const name = prefix + stat;
        if (m instanceof TimeHistogram) {
          out.push([`${name}.count`, m.count], [`${name}.sum`, Math.round(m.sum * 1000) / 1000]);
        } else out.push([name, m.value]);
      }
    }
    for (const src of this.external) for (const [k, v] of Object.entries(src())) out.push([k, v]);
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out;
  }

  /** Serves the Prometheus exposition: counters and gauges, histograms, other modules' counters, labeled families. */
  servePrometheus(_req: IncomingMessage, res: ServerResponse): void {
    const text = this.renderPrometheus();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(text);
  }

  /** The whole Prometheus text exposition (format 0.0.4), as Envoy's /stats/prometheus renders it. */
  renderPrometheus(): string {
    this.collect();
    return this.renderCountersAndGauges() + this.renderHistograms() + this.renderExternals() + this.labeled.render();
  }

  private renderCountersAndGauges(): string {
    let out = '';
    for (const f of this.families.values()) {
      out += `# TYPE ${f.promName} ${f.kind}\n`;
      for (let i = 0; i < f.metrics.length; i++) out += `${f.promName}${labelText(f.labels[i]!)} ${f.metrics[i]!.value}\n`;
    }
    return out;
  }

  private renderHistograms(): string {
    const byName = new Map<string, TimeHistogram[]>();
    for (const h of this.histograms) {
      const list = byName.get(h.promName) ?? [];
      list.push(h);
      byName.set(h.promName, list);
    }
    let out = '';
    for (const [name, list] of byName) {
      out += `# HELP ${name} milliseconds\n# TYPE ${name} histogram\n`;
      for (const h of list) {
        const labels = Object.entries(h.attributes).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
        const base = labels.join(',');
        let cumulative = 0;
        BUCKETS_MS.forEach((le, i) => {
          cumulative += h.counts[i]!;
          out += `${name}_bucket{${base}${base ? ',' : ''}le="${le}"} ${cumulative}\n`;
        });
        out += `${name}_bucket{${base}${base ? ',' : ''}le="+Inf"} ${h.count}\n`;
        out += `${name}_sum{${base}} ${h.sum}\n${name}_count{${base}} ${h.count}\n`;
      }
    }
    return out;
  }

  /**
   * Counters kept by other modules (TLS providers, filters, the xDS client, the fast path,
   * telemetry), read at scrape time: `/stats` shows them under their Envoy names, and the
   * Prometheus exposition renders them with Envoy's tag extraction, so names that appear
   * after start (a listener added over LDS) are exported too.
   */
  registerExternalGauges(prefix: string, source: () => Record<string, number>): void {
    this.addExternal(prefix === '' ? source : () => {
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(source())) out[prefix + k] = v;
      return out;
    });
  }

  private renderExternals(): string {
    const families = new Map<string, string[]>();
    for (const src of this.external) {
      for (const [k, v] of Object.entries(src())) {
        if (typeof v !== 'number' || !Number.isFinite(v)) continue;
        const { name, labels } = extractTags(k);
        const lines = families.get(name) ?? [];
        lines.push(`${name}${labels} ${v}`);
        families.set(name, lines);
      }
    }
    let out = '';
    // Untyped: these sources mix counters and gauges, and say nothing about which is which.
    for (const [name, lines] of families) out += `# TYPE ${name} untyped\n${lines.join('\n')}\n`;
    return out;
  }

  /** Kept for callers that stop a proxy; the store holds no timers or handles. */
  async shutdown(): Promise<void> {}
}

/**
 * Envoy's default tag extraction for the scopes external counters use:
 * `listener.<address>.<stat>` -> `envoy_listener_<stat>{envoy_listener_address="<address>"}`,
 * `cluster.<name>.<stat>` -> `envoy_cluster_<stat>{envoy_cluster_name="<name>"}`; the rest
 * keep their name with `envoy_`-free sanitising (pilotfish's own counters).
 */
export function extractTags(flat: string): { name: string; labels: string } {
  // Cluster names contain dots (outbound|9080||reviews.default.svc.cluster.local): the stat is the known suffix.
  const m = /^(listener|cluster)\.(.+?)\.(ssl\..+|[a-z_]+)$/.exec(flat);
  if (m) {
    const [, kind, scope, stat] = m as unknown as [string, 'listener' | 'cluster', string, string];
    const label = kind === 'listener' ? 'envoy_listener_address' : 'envoy_cluster_name';
    return { name: sanitize(`envoy_${kind}_${stat}`), labels: `{${label}="${scope.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"}` };
  }
  return { name: sanitize(flat), labels: '' };
}

function sanitize(name: string): string {
  return name.replace(/[^a-zA-Z0-9_:]/g, '_');
}

/** `{a="x",b="y"}` with Prometheus escaping, or '' without labels. */
function labelText(attrs: Attributes): string {
  let out = '';
  for (const k in attrs) out += `${out ? ',' : ''}${k}="${escapeLabel(attrs[k]!)}"`;
  return out ? `{${out}}` : '';
}
