import type { OutlierDetection } from '../../../config/src/index.js';
import type { Host } from './endpoint-set.js';
import type { Counter, Gauge } from '../stats/stats.js';

export interface OutlierTarget {
  hosts(): Iterable<Host>;
  hostCount(): number;
  /** The detector's verdict; the cluster combines it with active health checking. */
  setEjected(host: Host, ejected: boolean): void;
  /** Decides the enforcing_* percentages (the proxy's random source; Math.random when absent). */
  readonly random?: () => number;
}

export interface OutlierStats {
  readonly ejections_active: Gauge;
  readonly ejections_total: Counter;
  readonly ejections_enforced_total: Counter;
  readonly ejections_overflow: Counter;
  readonly ejections_detected_consecutive_5xx: Counter;
  readonly ejections_enforced_consecutive_5xx: Counter;
  readonly ejections_detected_consecutive_gateway_failure: Counter;
  readonly ejections_enforced_consecutive_gateway_failure: Counter;
  readonly ejections_detected_success_rate: Counter;
  readonly ejections_enforced_success_rate: Counter;
  readonly ejections_detected_consecutive_local_origin_failure?: Counter;
  readonly ejections_enforced_consecutive_local_origin_failure?: Counter;
}

/** Per-host bookkeeping; one object per host, reused for the host's lifetime. */
class HostStats {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  /** split_external_local_origin_errors only: connect failures, resets and timeouts in a row. */
  consecutiveLocalOrigin = 0;
  success = 0;
  total = 0;
  /** Envoy's num_ejections: grows per ejection, shrinks per interval spent healthy. */
  ejections = 0;
  ejectedAt = 0;
  ejected = false;
}

/**
 * A failure of this proxy's own making towards a host, as Envoy's router reports it:
 * LocalOriginConnectFailed (connect failure or any reset) or LocalOriginTimeout (per-try
 * or route timeout). Without split_external_local_origin_errors Envoy maps them to 503
 * and 504 (resultToHttpCode), so both count as 5xx and as gateway failures.
 */
export type LocalOriginFailure = 'connect_failed' | 'timeout';

const LOCAL_ORIGIN_STATUS: Readonly<Record<LocalOriginFailure, number>> = { connect_failed: 503, timeout: 504 };

/**
 * Envoy's outlier detection, fed by the router with every attempt's outcome: ejects a
 * host on consecutive 5xx, consecutive gateway failures (502/503/504 and local-origin
 * failures: a timeout counts as a 504, a connect failure or reset as a 503), with
 * split_external_local_origin_errors on consecutive local-origin failures instead, or a
 * success rate below mean - stdev_factor/1000 * stdev. An ejected host
 * returns after base_ejection_time x (number of ejections), capped at
 * max_ejection_time; never more than max_ejection_percent of hosts are ejected (but at
 * least one may be, as Envoy documents).
 */
export class OutlierDetector {
  private readonly hostStats = new WeakMap<Host, HostStats>();
  private timer: NodeJS.Timeout | undefined;
  private ejectedCount = 0;

  constructor(private readonly target: OutlierTarget, private config: OutlierDetection, private readonly stats: OutlierStats) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.config.interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  updateConfig(next: OutlierDetection): void {
    const restart = next.interval !== this.config.interval && this.timer !== undefined;
    this.config = next;
    if (restart) {
      this.stop();
      this.start();
    }
  }

  private of(host: Host): HostStats {
    let s = this.hostStats.get(host);
    if (s === undefined) {
      s = new HostStats();
      this.hostStats.set(host, s);
    }
    return s;
  }

  /**
   * A failure of local origin. Without split_external_local_origin_errors it is the
   * status Envoy maps it to; with it, it counts only towards
   * consecutive_local_origin_failure (and the host's answers only towards the rest).
   */
  reportLocalOrigin(host: Host, failure: LocalOriginFailure): void {
    if (this.config.splitExternalLocalOriginErrors !== true) {
      this.report(host, LOCAL_ORIGIN_STATUS[failure]);
      return;
    }
    const s = this.of(host);
    if (s.ejected) return;
    const limit = this.config.consecutiveLocalOriginFailure ?? 5;
    if (++s.consecutiveLocalOrigin < limit || limit <= 0) return;
    this.stats.ejections_detected_consecutive_local_origin_failure?.inc();
    if (enforced(this.config.enforcingConsecutiveLocalOriginFailure ?? 100, this.target.random) && this.eject(host, s)) {
      this.stats.ejections_enforced_consecutive_local_origin_failure?.inc();
    }
    s.consecutiveLocalOrigin = 0;
  }

  /**
   * A connection to the host was usable (Envoy's LocalOriginConnectSuccess): with
   * split_external_local_origin_errors it ends a run of local-origin failures; without,
   * it says nothing (the host's answer will).
   */
  reportLocalOriginSuccess(host: Host): void {
    if (this.config.splitExternalLocalOriginErrors !== true) return;
    const s = this.hostStats.get(host);
    if (s !== undefined) s.consecutiveLocalOrigin = 0;
  }

  /** Whether reportLocalOriginSuccess does anything (the router skips the call otherwise). */
  get splitsLocalOrigin(): boolean {
    return this.config.splitExternalLocalOriginErrors === true;
  }

  /** One answer of the host: its HTTP status (or, unsplit, the status a local-origin failure maps to). */
  report(host: Host, status: number): void {
    const s = this.of(host);
    s.total++;
    const c = this.config;
    if (status < 500) {
      s.success++;
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      return;
    }
    if (s.ejected) return;
    s.consecutive5xx++;
    if (status === 502 || status === 503 || status === 504) s.consecutiveGateway++;
    else s.consecutiveGateway = 0;
    if (c.consecutiveGatewayFailure > 0 && s.consecutiveGateway >= c.consecutiveGatewayFailure) {
      this.stats.ejections_detected_consecutive_gateway_failure.inc();
      if (enforced(c.enforcingConsecutiveGatewayFailure, this.target.random) && this.eject(host, s)) {
        this.stats.ejections_enforced_consecutive_gateway_failure.inc();
        return;
      }
      s.consecutiveGateway = 0;
    }
    if (c.consecutive5xx > 0 && s.consecutive5xx >= c.consecutive5xx) {
      this.stats.ejections_detected_consecutive_5xx.inc();
      if (enforced(c.enforcingConsecutive5xx, this.target.random) && this.eject(host, s)) this.stats.ejections_enforced_consecutive_5xx.inc();
      s.consecutive5xx = 0;
    }
  }

  isEjected(host: Host): boolean {
    return this.hostStats.get(host)?.ejected === true;
  }

  private eject(host: Host, s: HostStats): boolean {
    const total = this.target.hostCount();
    // Envoy: never above max_ejection_percent, but at least one host can be ejected.
    if (this.ejectedCount > 0 && ((this.ejectedCount + 1) * 100) / total > this.config.maxEjectionPercent) {
      this.stats.ejections_overflow.inc();
      return false;
    }
    s.ejected = true;
    s.ejections++;
    s.ejectedAt = Date.now();
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveLocalOrigin = 0;
    this.ejectedCount++;
    this.stats.ejections_active.set(this.ejectedCount);
    this.stats.ejections_total.inc();
    this.stats.ejections_enforced_total.inc();
    this.target.setEjected(host, true);
    return true;
  }

  /** Ejection time for the n-th ejection: base x n, capped (Envoy's max_ejection_time). */
  ejectionTime(s: { ejections: number }): number {
    return Math.min(this.config.baseEjectionTime * s.ejections, Math.max(this.config.maxEjectionTime, this.config.baseEjectionTime));
  }

  /** The interval timer: unejects, decays ejection counts, runs success-rate detection. */
  tick(now = Date.now()): void {
    const c = this.config;
    const rates: [Host, HostStats, number][] = [];
    let count = 0;
    for (const host of this.target.hosts()) {
      const s = this.hostStats.get(host);
      if (!s) continue;
      count++;
      if (s.ejected) {
        if (now - s.ejectedAt >= this.ejectionTime(s)) {
          s.ejected = false;
          this.ejectedCount--;
          this.target.setEjected(host, false);
        }
      } else if (s.ejections > 0) {
        s.ejections--;
      }
      if (!s.ejected && s.total >= c.successRateRequestVolume) rates.push([host, s, s.success / s.total]);
      s.success = 0;
      s.total = 0;
    }
    if (count === 0) this.ejectedCount = 0;
    this.stats.ejections_active.set(this.ejectedCount);
    if (rates.length >= c.successRateMinimumHosts && rates.length > 0) {
      let mean = 0;
      for (const r of rates) mean += r[2];
      mean /= rates.length;
      let v = 0;
      for (const r of rates) v += (r[2] - mean) ** 2;
      const stdev = Math.sqrt(v / rates.length);
      const threshold = mean - (c.successRateStdevFactor / 1000) * stdev;
      for (const [host, s, rate] of rates) {
        if (rate < threshold) {
          this.stats.ejections_detected_success_rate.inc();
          if (enforced(c.enforcingSuccessRate, this.target.random) && this.eject(host, s)) this.stats.ejections_enforced_success_rate.inc();
        }
      }
    }
  }
}

function enforced(percent: number, random: () => number = Math.random): boolean {
  return percent >= 100 || (percent > 0 && random() * 100 < percent);
}
