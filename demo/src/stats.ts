/** Per-route request counts, failures, versions and latency percentiles over a sliding window. */

interface Sample {
  readonly at: number;
  readonly ms: number;
}

export interface RouteStats {
  total: number;
  failures: number;
  versions: Map<string, number>;
  window: Sample[];
}

export interface RouteRow {
  readonly route: string;
  readonly total: number;
  readonly failures: number;
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  /** Version -> share of the window's requests (0..1). */
  readonly split: Readonly<Record<string, number>>;
  readonly versions: Readonly<Record<string, number>>;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export class Stats {
  readonly routes = new Map<string, RouteStats>();
  private readonly windowVersions = new Map<string, { at: number; v: string }[]>();

  constructor(private readonly windowMs = 5000) {}

  record(route: string, ms: number, ok: boolean, version?: string): void {
    let r = this.routes.get(route);
    if (!r) {
      r = { total: 0, failures: 0, versions: new Map(), window: [] };
      this.routes.set(route, r);
    }
    const now = performance.now();
    r.total++;
    if (!ok) r.failures++;
    r.window.push({ at: now, ms });
    if (ok && version !== undefined) {
      r.versions.set(version, (r.versions.get(version) ?? 0) + 1);
      let w = this.windowVersions.get(route);
      if (!w) this.windowVersions.set(route, (w = []));
      w.push({ at: now, v: version });
    }
  }

  rows(): RouteRow[] {
    const now = performance.now();
    const cut = now - this.windowMs;
    const out: RouteRow[] = [];
    for (const [route, r] of this.routes) {
      while (r.window.length > 0 && r.window[0]!.at < cut) r.window.shift();
      const w = this.windowVersions.get(route) ?? [];
      while (w.length > 0 && w[0]!.at < cut) w.shift();
      const sorted = r.window.map((s) => s.ms).sort((a, b) => a - b);
      const counts: Record<string, number> = {};
      for (const x of w) counts[x.v] = (counts[x.v] ?? 0) + 1;
      const split: Record<string, number> = {};
      for (const [v, n] of Object.entries(counts)) split[v] = n / w.length;
      out.push({
        route, total: r.total, failures: r.failures, rps: r.window.length / (this.windowMs / 1000),
        p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99),
        split, versions: Object.fromEntries(r.versions),
      });
    }
    return out.sort((a, b) => a.route.localeCompare(b.route));
  }
}
