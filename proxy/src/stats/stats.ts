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
  record(ms: number): void {
    if (this.count++ === 0) this.counts = new Float64Array(BUCKETS_MS.length + 1);
    this.sum += ms;
    let i = 0;
    while (i < BUCKETS_MS.length && ms > BUCKETS_MS[i]!) i++;
    this.counts[i]!++;
  }
}

export type StatKind = 'counter' | 'gauge' | 'histogram';
type Metric = Counter | Gauge | TimeHistogram;
/** The kind of a metric type (for typing stat blocks). */
export type KindOf<M> = M extends TimeHistogram ? 'histogram' : M extends Gauge ? 'gauge' : 'counter';

function newMetric(kind: StatKind): Metric {
  return kind === 'counter' ? new Counter() : kind === 'gauge' ? new Gauge() : new TimeHistogram();
}

/**
 * The names (and kinds) of a scope's stats, in creation order, shared by every scope that
 * created the same stats in the same order, the way V8 shares hidden classes: the ~40
 * names of a cluster are one Layout for all clusters, and a scope keeps only its layout
 * and one slot per stat. Kept per scope, the stats' Map of names was ~1.8 KB per cluster
 * (its hash table), and the Prometheus families' series arrays another ~0.7 KB.
 *
 * A layout extended by one name shares its parent's arrays while the parent has no other
 * child (like V8's descriptor sharing), so a scope that grows one stat at a time (the
 * server's root scope) costs one array, not one per length.
 */
class Layout {
  /** The layouts one stat longer, by kind and name (made on the first step). */
  private next: Map<string, Layout> | undefined;
  constructor(
    private readonly shared: SharedNames,
    /** This layout's stats are shared.names[0 .. size). */
    readonly size: number,
  ) {}

  name(i: number): string {
    return this.shared.names[i]!;
  }

  kind(i: number): StatKind {
    return this.shared.kinds[i]!;
  }

  /** Prometheus names of this layout's stats under a prefix (sanitized; built once per prefix). */
  promNames(promPrefix: string): readonly string[] {
    return this.shared.promNames(promPrefix, this.size);
  }

  /** Index of the stat `name` of `kind`, or -1. */
  indexOf(name: string, kind: StatKind): number {
    const { names, kinds } = this.shared;
    const n = this.size;
    if (n > 8) {
      const at = this.shared.firstIndex(name);
      if (at === undefined || at >= n) return -1;
      if (kinds[at] === kind) return at;
    }
    for (let i = 0; i < n; i++) if (names[i] === name && kinds[i] === kind) return i;
    return -1;
  }

  /** This layout plus one stat at the end (one object for every scope that takes the same step). */
  with(name: string, kind: StatKind): Layout {
    const key = kind === 'counter' ? name : `${kind}\u0000${name}`;
    const next = (this.next ??= new Map());
    let l = next.get(key);
    if (l === undefined) {
      const shared = this.shared.names.length === this.size ? this.shared : this.shared.copy(this.size);
      shared.push(name, kind);
      l = new Layout(shared, this.size + 1);
      next.set(key, l);
    }
    return l;
  }
}

/** The name arrays layouts share (see Layout). */
class SharedNames {
  readonly names: string[] = [];
  readonly kinds: StatKind[] = [];
  /** name -> first index, for long layouts; built on the first lookup. */
  private index: Map<string, number> | undefined;
  /** Sanitized Prometheus names by Prometheus prefix (one string per stat and prefix, not per scope). */
  private readonly prom = new Map<string, string[]>();

  copy(size: number): SharedNames {
    const c = new SharedNames();
    for (let i = 0; i < size; i++) c.push(this.names[i]!, this.kinds[i]!);
    return c;
  }

  push(name: string, kind: StatKind): void {
    this.names.push(name);
    this.kinds.push(kind);
    if (this.index !== undefined && !this.index.has(name)) this.index.set(name, this.names.length - 1);
  }

  firstIndex(name: string): number | undefined {
    if (this.index === undefined) {
      const index = (this.index = new Map());
      for (let i = 0; i < this.names.length; i++) if (!index.has(this.names[i]!)) index.set(this.names[i]!, i);
    }
    return this.index.get(name);
  }

  promNames(promPrefix: string, size: number): readonly string[] {
    let p = this.prom.get(promPrefix);
    if (p === undefined) this.prom.set(promPrefix, (p = []));
    for (let i = p.length; i < size; i++) p.push(sanitize(promPrefix + this.names[i]!));
    return p;
  }
}

/**
 * The stats of one scope prefix: its layout and one slot per stat, a slot empty (read as
 * zero) until its metric is first used. Two StatsScope objects with one prefix share it.
 */
class ScopeStats {
  /** metrics.length === layout.size */
  constructor(
    public layout: Layout,
    readonly prefix: string,
    readonly promPrefix: string,
    readonly attrs: Attributes,
    /** Exact capacity when a block declares the scope's stats up front (most scopes); grown by push after. */
    readonly metrics: (Metric | undefined)[] = [],
  ) {}

  /** The slot of `name` of `kind`, appended to the layout if new. */
  slot(name: string, kind: StatKind): number {
    const at = this.layout.indexOf(name, kind);
    if (at >= 0) return at;
    this.layout = this.layout.with(name, kind);
    this.metrics.push(undefined);
    return this.metrics.length - 1;
  }

  metricAt(i: number): Metric {
    let m = this.metrics[i];
    if (m === undefined) this.metrics[i] = m = newMetric(this.layout.kind(i));
    return m;
  }
}

/**
 * A fixed set of a scope's stats as one object (`stats.upstream_rq_total.inc()`), whose
 * metrics are made on first use: in a large mesh most clusters never see a request, and
 * 36 counter objects cost ~1.2 KB per cluster. The stats are in the scope's layout from
 * the start, so /stats and Prometheus show them (as zero) as before.
 */
abstract class StatBlockBase {
  constructor(
    /** The scope's slots, from `_base` (or the block's own slots when the scope's are not contiguous). */
    protected readonly _m: (Metric | undefined)[],
    protected readonly _base: number,
    protected readonly _ss: ScopeStats,
  ) {}

  protected _make(i: number, name: string, kind: StatKind): Metric {
    const m = this._ss.metricAt(this._ss.slot(name, kind));
    this._m[this._base + i] = m;
    return m;
  }
}

export type StatBlock<T> = { readonly [K in keyof T]-?: NonNullable<T[K]> };
export type StatSchema<T> = { readonly [K in keyof T]-?: KindOf<NonNullable<T[K]>> };
/** Makes the stat block of a schema for a scope (see defineStatBlock). */
export type StatBlockFactory<T> = (scope: StatsScope) => StatBlock<T>;

/**
 * Defines a stat block: `const make = defineStatBlock<ClusterStats>({ upstream_rq_total: 'counter', ... })`,
 * then `make(scope)` per scope. One class per schema, with a getter per stat; the stats
 * are created in the schema's order, named `statPrefix` + key.
 */
export function defineStatBlock<T>(schema: StatSchema<T>, statPrefix = ''): StatBlockFactory<T> {
  const keys = Object.keys(schema);
  const kinds = keys.map((k) => (schema as Record<string, StatKind>)[k]!);
  const names = keys.map((k) => statPrefix + k);
  class Block extends StatBlockBase {}
  keys.forEach((key, i) => {
    const kind = kinds[i]!;
    const name = names[i]!;
    Object.defineProperty(Block.prototype, key, {
      get(this: { _m: (Metric | undefined)[]; _base: number; _make: (i: number, name: string, kind: StatKind) => Metric }) {
        return this._m[this._base + i] ?? this._make(i, name, kind);
      },
      enumerable: true,
    });
  });
  return (scope) => {
    const { metrics, base, ss } = scope.store.blockSlots(scope, names, kinds);
    return new Block(metrics, base, ss) as unknown as StatBlock<T>;
  };
}

/**
 * A scope gives stat names a prefix and Prometheus labels, like Envoy's tag extraction:
 * `cluster.svc1.upstream_rq_total` is `envoy_cluster_upstream_rq_total{envoy_cluster_name="svc1"}`.
 */
export class StatsScope {
  constructor(
    readonly store: StatsStore,
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
  /**
   * Every scope's stats, by scope prefix, in creation order (see ScopeStats and Layout).
   * The Envoy-style flat name (`cluster.svc1.upstream_rq_total`) is made only when /stats
   * is read: kept as one string per stat it was ~70% of the stats' memory in a large mesh
   * (Istio's cluster names are ~60 characters, and a cluster has ~40 stats). Prometheus
   * families are grouped when the exposition is rendered.
   */
  private readonly byScope = new Map<string, ScopeStats>();
  /** One copy of each stat name (callers build some, e.g. `outlier_detection.${n}`). */
  private readonly statNames = new Map<string, string>();
  private readonly emptyLayout = new Layout(new SharedNames(), 0);
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
  private statsOf(scope: StatsScope): ScopeStats {
    let stats = this.byScope.get(scope.prefix);
    if (stats === undefined) this.byScope.set(scope.prefix, (stats = new ScopeStats(this.emptyLayout, scope.prefix, scope.promPrefix, scope.attrs)));
    return stats;
  }

  private internName(name: string): string {
    let interned = this.statNames.get(name);
    if (interned === undefined) this.statNames.set(name, (interned = name));
    return interned;
  }

  metric(scope: StatsScope, statName: string, kind: 'counter' | 'gauge'): Counter | Gauge {
    const ss = this.statsOf(scope);
    return ss.metricAt(ss.slot(this.internName(statName), kind)) as Counter | Gauge;
  }

  histogram(scope: StatsScope, statName: string): TimeHistogram {
    const ss = this.statsOf(scope);
    return ss.metricAt(ss.slot(this.internName(statName), 'histogram')) as TimeHistogram;
  }

  /**
   * A stat block's slots: the scope's own from `base` when the block's stats are (or are
   * now appended) contiguous there, as in a fresh scope; otherwise the block's own.
   * @internal (defineStatBlock)
   */
  blockSlots(scope: StatsScope, names: readonly string[], kinds: readonly StatKind[]): { metrics: (Metric | undefined)[]; base: number; ss: ScopeStats } {
    if (!this.byScope.has(scope.prefix)) {
      let layout = this.emptyLayout;
      for (let i = 0; i < names.length; i++) layout = layout.with(this.internName(names[i]!), kinds[i]!);
      const fresh = new ScopeStats(layout, scope.prefix, scope.promPrefix, scope.attrs, new Array<Metric | undefined>(names.length));
      this.byScope.set(scope.prefix, fresh);
      return { metrics: fresh.metrics, base: 0, ss: fresh };
    }
    const ss = this.statsOf(scope);
    let base = -1;
    let contiguous = true;
    for (let i = 0; i < names.length; i++) {
      const at = ss.slot(this.internName(names[i]!), kinds[i]!);
      if (i === 0) base = at;
      else if (at !== base + i) contiguous = false;
    }
    return contiguous ? { metrics: ss.metrics, base, ss } : { metrics: new Array<Metric | undefined>(names.length), base: 0, ss };
  }

  /** Envoy's `/stats` text: `name: value`, sorted; histograms as count/sum. */
  snapshot(): [string, number][] {
    this.collect();
    const out: [string, number][] = [];
    for (const ss of this.byScope.values()) {
      const { prefix, metrics, layout } = ss;
      for (let i = 0; i < metrics.length; i++) {
        const name = prefix + layout.name(i);
        const m = metrics[i];
        if (layout.kind(i) === 'histogram') {
          const h = m as TimeHistogram | undefined;
          out.push([`${name}.count`, h?.count ?? 0], [`${name}.sum`, h === undefined ? 0 : Math.round(h.sum * 1000) / 1000]);
        } else out.push([name, (m as Counter | Gauge | undefined)?.value ?? 0]);
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
    return this.renderScopes() + this.renderExternals() + this.labeled.render();
  }

  /**
   * Counters and gauges, then histograms, one family per Prometheus name (in order of
   * first appearance), one series per scope: the families are grouped here, at scrape
   * time, rather than kept as per-stat arrays.
   */
  private renderScopes(): string {
    const families = new Map<string, { kind: StatKind; text: string }>();
    const histograms = new Map<string, string>();
    for (const ss of this.byScope.values()) {
      const { metrics, layout } = ss;
      const promNames = layout.promNames(ss.promPrefix);
      let labels: string | undefined;
      for (let i = 0; i < metrics.length; i++) {
        const kind = layout.kind(i);
        const promName = promNames[i]!;
        labels ??= labelText(ss.attrs);
        if (kind === 'histogram') {
          histograms.set(promName, (histograms.get(promName) ?? '') + histogramText(promName, labels, metrics[i] as TimeHistogram | undefined));
          continue;
        }
        const line = `${promName}${labels} ${(metrics[i] as Counter | Gauge | undefined)?.value ?? 0}\n`;
        const f = families.get(promName);
        if (f === undefined) families.set(promName, { kind, text: line });
        else f.text += line;
      }
    }
    let out = '';
    for (const [name, f] of families) out += `# TYPE ${name} ${f.kind}\n${f.text}`;
    for (const [name, text] of histograms) out += `# HELP ${name} milliseconds\n# TYPE ${name} histogram\n${text}`;
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

/** One histogram series: cumulative buckets, sum and count (an unused histogram: zeros). */
function histogramText(name: string, labels: string, h: TimeHistogram | undefined): string {
  const base = labels === '' ? '' : labels.slice(1, -1);
  const sep = base ? ',' : '';
  const counts = h?.counts ?? EMPTY_COUNTS;
  const count = h?.count ?? 0;
  let out = '';
  let cumulative = 0;
  for (let i = 0; i < BUCKETS_MS.length; i++) {
    cumulative += counts[i]!;
    out += `${name}_bucket{${base}${sep}le="${BUCKETS_MS[i]}"} ${cumulative}\n`;
  }
  out += `${name}_bucket{${base}${sep}le="+Inf"} ${count}\n`;
  out += `${name}_sum{${base}} ${h?.sum ?? 0}\n${name}_count{${base}} ${count}\n`;
  return out;
}
