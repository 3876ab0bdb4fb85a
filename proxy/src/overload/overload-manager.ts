import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { OverloadManagerConfig } from '../../../config/src/index.js';
import { readMemory } from '../stats/memory.js';

const STOP_REQUESTS = 'envoy.overload_actions.stop_accepting_requests';
const STOP_CONNECTIONS = 'envoy.overload_actions.stop_accepting_connections';
const DISABLE_KEEPALIVE = 'envoy.overload_actions.disable_http_keepalive';
const MONITOR_GLOBAL_CX = 'envoy.resource_monitors.global_downstream_max_connections';
const MONITOR_HEAP = 'envoy.resource_monitors.fixed_heap';
const MONITOR_LAG = 'pilotfish.resource_monitors.event_loop_lag';
/** Period of the overload manager's own event-loop lateness probe. */
const PROBE_MS = 50;

/**
 * Envoy's overload manager, process-wide (as Envoy's is): resource monitors are sampled
 * every refresh_interval into pressures (0..1+), and actions whose trigger pressure is
 * reached switch on until it falls again. The request path only reads three booleans;
 * the downstream connection count is kept exactly (admit/release per connection).
 *
 * Monitors: fixed_heap (V8 used heap / max_heap_size_bytes), global_downstream_max_connections
 * (a hard limit: connections beyond it are closed at accept, as in Envoy), and
 * pilotfish.resource_monitors.event_loop_lag (the worst event-loop delay seen in the
 * last interval / max_lag): the Node analogue of a saturated worker thread.
 */
export class OverloadManager {
  /** envoy.overload_actions.stop_accepting_requests: new requests get 503 + x-envoy-overloaded. */
  shedRequests = false;
  /** envoy.overload_actions.stop_accepting_connections: new connections are closed at accept. */
  stopAccepting = false;
  /** envoy.overload_actions.disable_http_keepalive: responses carry connection: close. */
  disableKeepalive = false;
  activeConnections = 0;
  readonly pressure = new Map<string, number>();
  /**
   * Exported under `overload.`: the counters, and as Envoy names them each monitor's
   * `<monitor>.pressure` (percent) and each action's `<action>.active` (0 or 1).
   */
  readonly stats: { downstream_global_cx_overflow: number; connections_refused: number; requests_shed: number; [gauge: string]: number } =
    { downstream_global_cx_overflow: 0, connections_refused: 0, requests_shed: 0 };

  private config: OverloadManagerConfig | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lag: IntervalHistogram | undefined;
  /**
   * Our own lateness probe beside the histogram: a 50 ms timer whose worst lateness since
   * the last refresh is kept. monitorEventLoopDelay was seen to miss a 2.5 s stall now
   * and then (its max stayed at ~10 ms) while this probe cannot: a blocked loop makes
   * the next tick late by the length of the block.
   */
  private probe: NodeJS.Timeout | undefined;
  private probeLast = 0;
  private probeWorst = 0;
  private maxConnections = Infinity;
  private lastRefresh = 0;

  configure(config: OverloadManagerConfig | undefined): void {
    this.stop();
    this.config = config;
    if (!config) return;
    this.maxConnections = config.maxActiveDownstreamConnections ?? Infinity;
    if (config.maxEventLoopLag !== undefined) {
      this.lag = monitorEventLoopDelay({ resolution: 10 });
      this.lag.enable();
      this.probeLast = performance.now();
      this.probeWorst = 0;
      this.probe = setInterval(() => {
        const now = performance.now();
        const late = now - this.probeLast - PROBE_MS;
        if (late > this.probeWorst) this.probeWorst = late;
        this.probeLast = now;
      }, PROBE_MS);
      this.probe.unref();
    }
    this.timer = setInterval(() => this.refresh(), config.refreshInterval);
    this.timer.unref();
    this.refresh();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.lag?.disable();
    this.lag = undefined;
    if (this.probe) clearInterval(this.probe);
    this.probe = undefined;
    this.config = undefined;
    this.maxConnections = Infinity;
    this.lastRefresh = 0;
    this.shedRequests = this.stopAccepting = this.disableKeepalive = false;
    this.pressure.clear();
    // Monitors and actions of the old configuration are no longer exported.
    for (const k of Object.keys(this.stats)) if (k.endsWith('.pressure') || k.endsWith('.active')) delete this.stats[k];
  }

  /** Called per accepted downstream connection; false = close it now. Pair with release(). */
  admitConnection(): boolean {
    if (this.stopAccepting) {
      this.stats.connections_refused++;
      return false;
    }
    if (this.activeConnections >= this.maxConnections) {
      this.stats.downstream_global_cx_overflow++;
      return false;
    }
    this.activeConnections++;
    return true;
  }

  releaseConnection(): void {
    this.activeConnections--;
  }

  /** Samples the monitors and recomputes the actions (exposed for tests). */
  refresh(): void {
    const c = this.config;
    if (!c) return;
    // The V8 heap in use: the number /stats shows as server.memory_allocated (one source, readMemory).
    if (c.maxHeapSizeBytes !== undefined) this.pressure.set(MONITOR_HEAP, readMemory().allocated / c.maxHeapSizeBytes);
    if (c.maxActiveDownstreamConnections !== undefined) this.pressure.set(MONITOR_GLOBAL_CX, this.activeConnections / c.maxActiveDownstreamConnections);
    const now = performance.now();
    if (this.lag && c.maxEventLoopLag !== undefined) {
      // The histogram (ns, including its 10 ms resolution) sees many short stalls; this
      // timer's own lateness sees the stall it was delayed by (a reset can drop that sample).
      const drift = this.lastRefresh > 0 ? now - this.lastRefresh - c.refreshInterval : 0;
      // A tick still pending when refresh() runs right after a stall is counted too.
      const pending = this.probe ? performance.now() - this.probeLast - PROBE_MS : 0;
      const lagMs = Math.max(0, this.lag.max / 1e6 - 10, drift, this.probeWorst, pending);
      this.lag.reset();
      this.probeWorst = 0;
      this.pressure.set(MONITOR_LAG, lagMs / c.maxEventLoopLag);
    }
    this.lastRefresh = now;
    let shed = false;
    let stop = false;
    let noKeepalive = false;
    for (const a of c.actions) {
      let on = false;
      for (const t of a.triggers) if ((this.pressure.get(t.monitor) ?? 0) >= t.threshold) on = true;
      if (!on) continue;
      if (a.name === STOP_REQUESTS) shed = true;
      else if (a.name === STOP_CONNECTIONS) stop = true;
      else if (a.name === DISABLE_KEEPALIVE) noKeepalive = true;
    }
    this.shedRequests = shed;
    this.stopAccepting = stop;
    this.disableKeepalive = noKeepalive;
    for (const [monitor, p] of this.pressure) this.stats[`${monitor}.pressure`] = Math.round(p * 100);
    for (const a of c.actions) this.stats[`${a.name}.active`] = a.name === STOP_REQUESTS ? +shed : a.name === STOP_CONNECTIONS ? +stop : a.name === DISABLE_KEEPALIVE ? +noKeepalive : 0;
  }
}
