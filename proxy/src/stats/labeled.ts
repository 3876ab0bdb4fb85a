/**
 * Labeled metric families: one Prometheus name, a fixed list of label names, one series
 * per distinct list of label values (Istio's `istio_requests_total{reporter=...,...}`).
 *
 * Envoy-named stats get their labels from the stat name (tag extraction); Istio's
 * standard metrics are born labeled, with values that come from requests (peer workload,
 * response code), so a family is keyed by the values themselves. Lookup is one string join
 * and one Map get; callers that report the same labels repeatedly (a TCP connection's
 * byte counters) keep the Series object and skip even that.
 *
 * Cardinality is bounded: past `maxSeries` distinct label sets a family stops creating
 * series, counts what it refused (`droppedSeries`, exported as
 * `pilotfish_labeled_series_dropped_total{metric=...}`), and hands out a detached series
 * that records into nothing, so a client that sends a new peer identity per request cannot
 * grow the proxy's memory without bound. (Istio rotates its whole stats scope instead.)
 */

/** Envoy's default histogram buckets, which Istio's standard histograms use unchanged. */
export const DEFAULT_BUCKETS: readonly number[] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

export const DEFAULT_MAX_SERIES = 10_000;

export interface LabeledCounterSeries {
  readonly values: readonly string[];
  value: number;
  inc(n?: number): void;
}

export interface LabeledHistogramSeries {
  readonly values: readonly string[];
  count: number;
  sum: number;
  record(v: number): void;
}

class CounterSeries implements LabeledCounterSeries {
  value = 0;
  constructor(readonly values: readonly string[]) {}
  inc(n = 1): void {
    this.value += n;
  }
}

class HistogramSeries implements LabeledHistogramSeries {
  count = 0;
  sum = 0;
  /** counts[i]: observations in (buckets[i-1], buckets[i]]; the last slot is +Inf. */
  readonly counts: Float64Array;
  constructor(readonly values: readonly string[], private readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length + 1);
  }
  record(v: number): void {
    this.count++;
    this.sum += v;
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
  }
}

const SEP = '\u0000';

type Trie<S> = Map<string, Trie<S> | S>;

abstract class Family<S extends { readonly values: readonly string[] }> {
  protected readonly series = new Map<string, S>();
  droppedSeries = 0;
  constructor(
    readonly name: string,
    readonly labelNames: readonly string[],
    readonly maxSeries: number,
  ) {}

  protected abstract make(values: readonly string[]): S;

  /** The series for these label values (in labelNames order), created on first use. */
  get(values: readonly string[]): S {
    const key = values.length === 1 ? values[0]! : values.join(SEP);
    let s = this.series.get(key);
    if (s !== undefined) return s;
    s = this.make(values.slice());
    if (this.series.size >= this.maxSeries) {
      this.droppedSeries++;
      return s; // detached: records into nothing that is exported
    }
    this.series.set(key, s);
    return s;
  }

  private readonly byPrefix = new WeakMap<readonly string[], Trie<S>>();
  private trieEntries = 0;

  /**
   * The series for `prefix` followed by `suffix`, for callers whose leading labels come
   * from one long-lived array (Istio's 20 peer labels, the same array for every request of
   * one peer) and whose trailing ones are few (protocol, response code): the lookup walks
   * one small map per suffix label, without building a key. Same series as
   * get(prefix.concat(suffix)).
   */
  getSplit(prefix: readonly string[], suffix: readonly string[]): S {
    let node = this.byPrefix.get(prefix);
    if (node === undefined) {
      node = new Map();
      this.byPrefix.set(prefix, node);
    }
    const last = suffix.length - 1;
    for (let i = 0; i < last; i++) {
      let next = node.get(suffix[i]!) as Trie<S> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(suffix[i]!, next);
      }
      node = next;
    }
    let s = node.get(suffix[last]!) as S | undefined;
    if (s === undefined) {
      s = this.get(prefix.concat(suffix));
      // Bounded like the family itself: past maxSeries lookups go the slow way.
      if (this.trieEntries < this.maxSeries) {
        this.trieEntries++;
        node.set(suffix[last]!, s);
      }
    }
    return s;
  }

  get size(): number {
    return this.series.size;
  }

  all(): IterableIterator<S> {
    return this.series.values();
  }

  protected labelText(values: readonly string[]): string {
    let out = '';
    for (let i = 0; i < this.labelNames.length; i++) {
      if (i > 0) out += ',';
      out += `${this.labelNames[i]}="${escapeLabel(values[i] ?? '')}"`;
    }
    return out;
  }

  abstract render(): string;
}

export class LabeledCounterFamily extends Family<LabeledCounterSeries> {
  protected make(values: readonly string[]): LabeledCounterSeries {
    return new CounterSeries(values);
  }
  render(): string {
    if (this.series.size === 0) return '';
    let out = `# TYPE ${this.name} counter\n`;
    for (const s of this.series.values()) out += `${this.name}{${this.labelText(s.values)}} ${s.value}\n`;
    return out;
  }
}

export interface LabeledGaugeSeries {
  readonly values: readonly string[];
  value: number;
  set(v: number): void;
}

class GaugeSeries implements LabeledGaugeSeries {
  value = 0;
  constructor(readonly values: readonly string[]) {}
  set(v: number): void {
    this.value = v;
  }
}

export class LabeledGaugeFamily extends Family<LabeledGaugeSeries> {
  protected make(values: readonly string[]): LabeledGaugeSeries {
    return new GaugeSeries(values);
  }
  render(): string {
    if (this.series.size === 0) return '';
    let out = `# TYPE ${this.name} gauge\n`;
    for (const s of this.series.values()) out += `${this.name}{${this.labelText(s.values)}} ${s.value}\n`;
    return out;
  }
}

export class LabeledHistogramFamily extends Family<LabeledHistogramSeries> {
  constructor(name: string, labelNames: readonly string[], maxSeries: number, readonly buckets: readonly number[]) {
    super(name, labelNames, maxSeries);
  }
  protected make(values: readonly string[]): LabeledHistogramSeries {
    return new HistogramSeries(values, this.buckets);
  }
  render(): string {
    if (this.series.size === 0) return '';
    let out = `# TYPE ${this.name} histogram\n`;
    for (const s of this.series.values() as IterableIterator<HistogramSeries>) {
      const base = this.labelText(s.values);
      const sep = base === '' ? '' : ',';
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i]!;
        out += `${this.name}_bucket{${base}${sep}le="${this.buckets[i]}"} ${cumulative}\n`;
      }
      out += `${this.name}_bucket{${base}${sep}le="+Inf"} ${s.count}\n`;
      out += `${this.name}_sum{${base}} ${s.sum}\n${this.name}_count{${base}} ${s.count}\n`;
    }
    return out;
  }
}

/**
 * The labeled families of one stats store. Asking twice for the same name returns the
 * same family (two listeners' stats filters share `istio_requests_total`); asking with
 * other label names is a programming error and throws at configuration time.
 */
export class LabeledRegistry {
  private readonly families = new Map<string, LabeledCounterFamily | LabeledHistogramFamily | LabeledGaugeFamily>();

  counter(name: string, labelNames: readonly string[], maxSeries = DEFAULT_MAX_SERIES): LabeledCounterFamily {
    const f = this.families.get(name);
    if (f !== undefined) {
      if (!(f instanceof LabeledCounterFamily) || !sameLabels(f.labelNames, labelNames)) throw new Error(`labeled metric ${name} already exists with other labels or kind`);
      return f;
    }
    const created = new LabeledCounterFamily(name, labelNames, maxSeries);
    this.families.set(name, created);
    return created;
  }

  gauge(name: string, labelNames: readonly string[], maxSeries = DEFAULT_MAX_SERIES): LabeledGaugeFamily {
    const f = this.families.get(name);
    if (f !== undefined) {
      if (!(f instanceof LabeledGaugeFamily) || !sameLabels(f.labelNames, labelNames)) throw new Error(`labeled metric ${name} already exists with other labels or kind`);
      return f;
    }
    const created = new LabeledGaugeFamily(name, labelNames, maxSeries);
    this.families.set(name, created);
    return created;
  }

  histogram(name: string, labelNames: readonly string[], buckets: readonly number[] = DEFAULT_BUCKETS, maxSeries = DEFAULT_MAX_SERIES): LabeledHistogramFamily {
    const f = this.families.get(name);
    if (f !== undefined) {
      if (!(f instanceof LabeledHistogramFamily) || !sameLabels(f.labelNames, labelNames)) throw new Error(`labeled metric ${name} already exists with other labels or kind`);
      return f;
    }
    const created = new LabeledHistogramFamily(name, labelNames, maxSeries, buckets);
    this.families.set(name, created);
    return created;
  }

  /** Prometheus text of every family, then the count of refused series per family. */
  render(): string {
    let out = '';
    let dropped = '';
    for (const f of this.families.values()) {
      out += f.render();
      if (f.droppedSeries > 0) dropped += `pilotfish_labeled_series_dropped_total{metric="${escapeLabel(f.name)}"} ${f.droppedSeries}\n`;
    }
    if (dropped !== '') out += `# TYPE pilotfish_labeled_series_dropped_total counter\n${dropped}`;
    return out;
  }
}

function sameLabels(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
