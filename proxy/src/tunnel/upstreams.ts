import type * as tls from 'node:tls';
import type { Endpoint, TunnelingConfig } from '../../../config/src/index.js';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import type { ConnectionInfo } from '../net/connection-info.js';
import type { StatsStore } from '../stats/stats.js';
import { ConnectPool } from './connect-pool.js';
import { compileFormat, type CompiledFormat } from './format.js';
import type { InnerSocket } from './inner-socket.js';
import { InternalListeners } from './internal-listeners.js';

/**
 * Filter state in a connection's or stream's map under this key: the set of keys marked
 * shared_with_upstream (set_filter_state), which an internal connection inherits.
 */
export const SHARED_WITH_UPSTREAM = 'pilotfish.shared_with_upstream';
/** A stream's own filter state (HTTP set_filter_state), kept in StreamInfo.metadata under this key. */
export const STREAM_FILTER_STATE = 'pilotfish.filter_state';

/** tunneling_config compiled once per tcp_proxy config. */
export interface CompiledTunneling {
  readonly hostname: CompiledFormat;
  readonly headers: readonly { readonly key: string; readonly value: CompiledFormat }[];
  readonly postPath: string | undefined;
}

const compiled = new WeakMap<TunnelingConfig, CompiledTunneling>();

/** Compiles a tunneling_config, or returns the first problem ("hostname: ..."). */
export function compileTunneling(t: TunnelingConfig): CompiledTunneling | string {
  const hit = compiled.get(t);
  if (hit) return hit;
  const hostname = compileFormat(t.hostname);
  if (typeof hostname === 'string') return `hostname: ${hostname}`;
  const headers: { key: string; value: CompiledFormat }[] = [];
  for (const [i, h] of t.headersToAdd.entries()) {
    const value = compileFormat(h.value);
    if (typeof value === 'string') return `headers_to_add[${i}].header.value: ${value}`;
    headers.push({ key: h.key, value });
  }
  const c: CompiledTunneling = { hostname, headers, postPath: t.usePost ? t.postPath : undefined };
  compiled.set(t, c);
  return c;
}

/** The shared entries of a filter-state map (plus everything when `all`), for an inner connection. */
export function sharedFilterState(...maps: (ReadonlyMap<string, unknown> | undefined)[]): Map<string, unknown> | undefined {
  let out: Map<string, unknown> | undefined;
  for (const m of maps) {
    const keys = m?.get(SHARED_WITH_UPSTREAM);
    if (!m || !(keys instanceof Set)) continue;
    for (const k of keys as Set<string>) if (m.has(k)) (out ??= new Map()).set(k, m.get(k));
  }
  return out;
}

/**
 * The upstream side of the waypoint: internal endpoints (an in-process connection to an
 * internal listener) and CONNECT origination (a stream on a pooled HTTP/2 mTLS connection).
 * Clusters reach it through ClusterRuntime.tunnels; a plain host gets undefined and the
 * caller opens its socket as before.
 */
export class TunnelUpstreams {
  readonly internal: InternalListeners;
  readonly pool: ConnectPool;

  constructor(store: StatsStore) {
    this.internal = new InternalListeners(store);
    this.pool = new ConnectPool(store);
  }

  /**
   * A connection to `host` that is not a plain socket, or undefined. `info` is the
   * downstream connection (its original destination and filter state feed the CONNECT
   * authority and the internal listener); `streamState` a stream's own filter state.
   */
  connect(cluster: ClusterRuntime, host: Host, info: ConnectionInfo | undefined, tunneling?: CompiledTunneling, streamState?: ReadonlyMap<string, unknown>): InnerSocket | undefined {
    const e = host.endpoint;
    if (e.internal) {
      const filterState = sharedFilterState(info?.filterState, streamState);
      return this.internal.connect(cluster.name, e, filterState ? { filterState } : {});
    }
    if (!tunneling) return undefined;
    const ctx = { info, ...(streamState ? { filterState: streamState } : {}) };
    const headers: Record<string, string> = {};
    for (const h of tunneling.headers) {
      const v = h.value(ctx);
      if (v !== '') headers[h.key] = v;
    }
    const tlsSource = cluster.transportFor(host).tls;
    const snap = tlsSource?.current();
    const tlsOpts = snap?.connect as tls.ConnectionOptions | undefined;
    return this.pool.open({
      key: `${cluster.name}|${host.key}|${snap?.version ?? -1}`,
      address: e.address, port: e.port,
      tls: tlsSource ? tlsOpts ?? { rejectUnauthorized: true, ca: [] } : undefined,
      connectTimeout: cluster.config.connectTimeout,
    }, { authority: tunneling.hostname(ctx), headers, ...(tunneling.postPath !== undefined ? { postPath: tunneling.postPath } : {}) });
  }

  /** undici's `connect` for a pool whose host is an internal endpoint. */
  undiciConnector(cluster: string, endpoint: Endpoint, h2: boolean): (opts: unknown, cb: (err: Error | null, socket: unknown) => void) => void {
    return (_opts, cb) => {
      const s = this.internal.connect(cluster, endpoint);
      // undici picks its HTTP/2 client by the socket's ALPN result, as its own h2c connector marks it.
      if (h2) s.alpnProtocol = 'h2';
      let done = false;
      s.once('connect', () => {
        if (done) return;
        done = true;
        cb(null, s);
      });
      s.once('error', (err) => {
        if (done) return;
        done = true;
        cb(err, null);
      });
    };
  }

  destroy(): void {
    this.pool.destroy();
  }
}
