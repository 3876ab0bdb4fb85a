import * as http from 'node:http';
import * as net from 'node:net';
import type { HealthCheck } from '../../../config/src/index.js';
import type { Host } from './endpoint-set.js';
import { endpointConnectOptions, isPipeEndpoint, pipePath } from '../upstream/address.js';
import type { Counter, Gauge } from '../stats/stats.js';

/** What a health checker needs from its cluster. */
export interface HealthCheckTarget {
  readonly name: string;
  hosts(): Iterable<Host>;
  /** The checker's verdict for a host; the cluster combines it with outlier ejection. */
  setActiveHealth(host: Host, healthy: boolean): void;
  /** True once the cluster has carried a request (Envoy switches from no_traffic_interval). */
  hadTraffic(): boolean;
  /** interval_jitter's source (the proxy's random source; Math.random when absent). */
  readonly random?: () => number;
}

export interface HealthCheckStats {
  readonly attempt: Counter;
  readonly success: Counter;
  readonly failure: Counter;
  readonly network_failure: Counter;
  readonly healthy: Gauge;
}

interface HostState {
  /** undefined until the first check: its result decides at once (Envoy's initial check). */
  healthy: boolean | undefined;
  successes: number;
  failures: number;
  inFlight: boolean;
}

/**
 * Envoy's active health checking for one `health_checks` entry: every interval (plus
 * jitter; no_traffic_interval until the cluster has traffic) each host is probed by an
 * HTTP GET (expected statuses, default 200) or a TCP connect. A host becomes unhealthy
 * after unhealthy_threshold consecutive network failures or timeouts, or at once on an
 * HTTP status outside expected_statuses (as Envoy does), and healthy again after
 * healthy_threshold successes; the first check of a host decides immediately. Probes go
 * over plain HTTP/1.1 or TCP on the host's address (for TLS clusters the cluster runs
 * HTTP checks as TCP connect checks).
 */
export class HealthChecker {
  private readonly state = new Map<Host, HostState>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly target: HealthCheckTarget, private readonly hc: HealthCheck, private readonly stats: HealthCheckStats) {}

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.round(), delay);
    this.timer.unref();
  }

  private round(): void {
    const seen = new Set<Host>();
    for (const host of this.target.hosts()) {
      seen.add(host);
      let st = this.state.get(host);
      if (!st) this.state.set(host, (st = { healthy: undefined, successes: 0, failures: 0, inFlight: false }));
      if (!st.inFlight) this.probe(host, st);
    }
    for (const h of this.state.keys()) if (!seen.has(h)) this.state.delete(h);
    const base = this.target.hadTraffic() ? this.hc.interval : this.hc.noTrafficInterval;
    this.schedule(base + (this.hc.intervalJitter > 0 ? (this.target.random ?? Math.random)() * this.hc.intervalJitter : 0));
  }

  private probe(host: Host, st: HostState): void {
    st.inFlight = true;
    this.stats.attempt.inc();
    const done = (ok: boolean, network: boolean) => {
      st.inFlight = false;
      if (this.stopped || host.removed) return;
      if (ok) this.stats.success.inc();
      else {
        this.stats.failure.inc();
        if (network) this.stats.network_failure.inc();
      }
      // Envoy: an HTTP answer with a non-expected status fails the host at once; only
      // network failures and timeouts count towards unhealthy_threshold.
      this.record(host, st, ok, !ok && !network);
    };
    if (this.hc.kind.type === 'tcp') tcpProbe(host, this.hc.timeout, done);
    else httpProbe(host, this.hc.timeout, this.hc.kind.path, this.hc.kind.host ?? this.target.name, this.hc.kind.expectedStatuses, done);
  }

  private record(host: Host, st: HostState, ok: boolean, immediate: boolean): void {
    if (ok) {
      st.failures = 0;
      st.successes++;
      if (st.healthy === undefined || (!st.healthy && st.successes >= this.hc.healthyThreshold)) this.set(host, st, true);
    } else {
      st.successes = 0;
      st.failures++;
      if (st.healthy === undefined || (st.healthy && (immediate || st.failures >= this.hc.unhealthyThreshold))) this.set(host, st, false);
    }
  }

  private set(host: Host, st: HostState, healthy: boolean): void {
    if (st.healthy === healthy) return;
    st.healthy = healthy;
    this.target.setActiveHealth(host, healthy);
    let n = 0;
    for (const s of this.state.values()) if (s.healthy !== false) n++;
    this.stats.healthy.set(n);
  }
}

function tcpProbe(host: Host, timeout: number, done: (ok: boolean, network: boolean) => void): void {
  const s = net.connect(endpointConnectOptions(host.endpoint));
  const timer = setTimeout(() => finish(false), timeout);
  let finished = false;
  function finish(ok: boolean): void {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    s.destroy();
    done(ok, !ok);
  }
  s.once('connect', () => finish(true));
  s.once('error', () => finish(false));
}

function httpProbe(host: Host, timeout: number, path: string, authority: string, expected: readonly (readonly [number, number])[], done: (ok: boolean, network: boolean) => void): void {
  let finished = false;
  const finish = (ok: boolean, network: boolean) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    req.destroy();
    done(ok, network);
  };
  const req = http.request({
    ...(isPipeEndpoint(host.endpoint) ? { socketPath: pipePath(host.endpoint.address) } : { host: host.endpoint.address, port: host.endpoint.port }),
    path, method: 'GET', agent: false,
    headers: { host: authority, 'user-agent': 'Envoy/HC', connection: 'close' },
  }, (res) => {
    const code = res.statusCode ?? 0;
    const ok = expected.length === 0 ? code === 200 : expected.some(([lo, hi]) => code >= lo && code < hi);
    res.resume();
    finish(ok, false);
  });
  const timer = setTimeout(() => finish(false, true), timeout);
  req.on('error', () => finish(false, true));
  req.end();
}
