/**
 * Per-filter counters, shared by filter name across chain rebuilds so that a config push
 * does not reset them. Plain numeric fields: incrementing is the hot path, formatting
 * into `http.<filter>.<counter>` happens only when someone reads them.
 */
export class FilterCounters {
  calls = 0;
  errors = 0;
  rejections = 0;
  /** Microseconds spent inside the filter (sum over calls). */
  timeUs = 0;
  /** Filter-specific counters (rbac.allowed, ratelimit.rate_limited, ...). */
  readonly extra = new Map<string, number>();

  constructor(readonly name: string) {}

  inc(counter: string, by = 1): void {
    this.extra.set(counter, (this.extra.get(counter) ?? 0) + by);
  }
}

/**
 * One proxy's filter counters by filter name. Each proxy (ProxyServer) owns one, so two
 * proxies in one process never add into each other's counters.
 */
export class FilterStats {
  private readonly counters = new Map<string, FilterCounters>();

  countersFor(filterName: string): FilterCounters {
    let c = this.counters.get(filterName);
    if (c === undefined) {
      c = new FilterCounters(filterName);
      this.counters.set(filterName, c);
    }
    return c;
  }

  /** Envoy-style names: `http.<filter>.<counter>`. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.counters.values()) {
      const p = `http.${c.name}.`;
      out[`${p}calls`] = c.calls;
      out[`${p}errors`] = c.errors;
      out[`${p}rejections`] = c.rejections;
      out[`${p}time_us`] = Math.round(c.timeUs);
      for (const [k, v] of c.extra) out[p + k] = v;
    }
    return out;
  }
}
