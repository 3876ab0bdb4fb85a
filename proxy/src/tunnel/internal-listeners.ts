import { isIP } from 'node:net';
import type { Endpoint, InternalUpstream } from '../../../config/src/index.js';
import type { NetworkListener } from '../listener/network-listener.js';
import { InnerSocket } from './inner-socket.js';
import type { Counter, Gauge, StatsStore } from '../stats/stats.js';

/** Envoy's filter-state keys the original_dst listener filter reads on an internal listener. */
export const ORIGINAL_DST_LOCAL_IP = 'envoy.filters.listener.original_dst.local_ip';
export const ORIGINAL_DST_REMOTE_IP = 'envoy.filters.listener.original_dst.remote_ip';
/** ...and the metadata namespace an internal_upstream socket passes the same through (field "local"). */
export const ORIGINAL_DST_METADATA = 'envoy.filters.listener.original_dst';
/** Istio: the caller's identity, set on connect_terminate from the peer certificate. */
export const PEER_PRINCIPAL = 'io.istio.peer_principal';

/** Where an inner connection comes from and what it carries into the internal listener. */
export interface InternalOrigin {
  /** Filter state the upstream side shares with the internal connection (set_filter_state shared_with_upstream). */
  readonly filterState?: ReadonlyMap<string, unknown>;
  /** The filter_metadata namespaces the cluster's internal_upstream socket passes through. */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** What the internal listener's entry point is told about one inner connection. */
export interface InternalConnection {
  readonly originalDst: { address: string; port: number } | undefined;
  readonly filterState: Map<string, unknown>;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly peerPrincipal: string | undefined;
}

interface InternalStats {
  readonly cx_total: Counter;
  readonly cx_active: Gauge;
  readonly cx_no_listener: Counter;
}

/**
 * Envoy's internal listener registry (the envoy.bootstrap.internal_listener extension)
 * and the internal_upstream transport: listeners with `internal_listener` are kept here by
 * name, and a cluster whose endpoint is an `envoy_internal_address` connects to one in
 * process — an InnerSocket pair, no file descriptor. One per proxy.
 */
export class InternalListeners {
  private readonly listeners = new Map<string, NetworkListener>();
  /** internal_upstream settings by cluster name (which metadata to pass through). */
  private readonly transports = new Map<string, InternalUpstream>();
  private readonly stats: InternalStats;

  constructor(store: StatsStore) {
    const s = store.rootScope;
    this.stats = {
      cx_total: s.counter('internal_listener.downstream_cx_total'),
      cx_active: s.gauge('internal_listener.downstream_cx_active'),
      cx_no_listener: s.counter('internal_listener.downstream_cx_no_listener'),
    };
  }

  set(name: string, listener: NetworkListener): void {
    this.listeners.set(name, listener);
  }

  delete(name: string, listener: NetworkListener): void {
    if (this.listeners.get(name) === listener) this.listeners.delete(name);
  }

  get(name: string): NetworkListener | undefined {
    return this.listeners.get(name);
  }

  setClusterTransport(cluster: string, spec: InternalUpstream | undefined): void {
    if (spec) this.transports.set(cluster, spec);
    else this.transports.delete(cluster);
  }

  /**
   * Opens an inner connection from `cluster` to the internal listener `endpoint` names and
   * returns the client end (it emits 'connect' on the next tick, or errors with
   * ECONNREFUSED when no such listener exists, as a refused socket would).
   */
  connect(cluster: string, endpoint: Endpoint, origin: InternalOrigin = {}): InnerSocket {
    const target = endpoint.internal!;
    const listener = this.listeners.get(target.serverListenerName);
    const metadata = passthrough(this.transports.get(cluster), endpoint, origin.metadata);
    const filterState = new Map<string, unknown>(origin.filterState ?? []);
    const remote = parseHostPort(stringOf(filterState.get(ORIGINAL_DST_REMOTE_IP)));
    const [client, server] = InnerSocket.pair({
      localAddress: remote?.address ?? 'envoy://internal_client_address/', localPort: remote?.port ?? 0,
      remoteAddress: endpoint.address, remotePort: 0,
    });
    if (!listener || listener.isDraining) {
      this.stats.cx_no_listener.inc();
      process.nextTick(() => client.destroy(Object.assign(new Error(`no internal listener "${target.serverListenerName}"`), { code: 'ECONNREFUSED' })));
      return client;
    }
    this.stats.cx_total.inc();
    this.stats.cx_active.inc();
    server.once('close', () => this.stats.cx_active.dec());
    const conn: InternalConnection = {
      originalDst: listener.restoresOriginalDst ? originalDstOf(filterState, metadata) : undefined,
      filterState, metadata,
      peerPrincipal: stringOf(filterState.get(PEER_PRINCIPAL)),
    };
    process.nextTick(() => {
      if (client.destroyed) return;
      listener.acceptInternal(server, conn);
      client.emit('connect');
    });
    return client;
  }
}

/** The metadata an internal_upstream socket hands over: the listed host (endpoint) namespaces. */
function passthrough(spec: InternalUpstream | undefined, endpoint: Endpoint, extra: Readonly<Record<string, unknown>> | undefined): Readonly<Record<string, unknown>> {
  const out: Record<string, unknown> = { ...(extra ?? {}) };
  const host = endpoint.internal?.metadata ?? {};
  // Envoy passes nothing unless listed; the cluster kind names cluster metadata, which pilotfish does not keep (telemetry only).
  for (const p of spec?.passthroughMetadata ?? []) if (p.kind === 'host' && host[p.name] !== undefined) out[p.name] = host[p.name];
  return out;
}

/**
 * original_dst on an internal listener: Envoy reads the filter state object
 * envoy.filters.listener.original_dst.local_ip, else the passed-through metadata
 * envoy.filters.listener.original_dst {local: "ip:port"}.
 */
export function originalDstOf(filterState: ReadonlyMap<string, unknown>, metadata: Readonly<Record<string, unknown>>): { address: string; port: number } | undefined {
  const fromState = parseHostPort(stringOf(filterState.get(ORIGINAL_DST_LOCAL_IP)));
  if (fromState) return fromState;
  const md = metadata[ORIGINAL_DST_METADATA];
  const local = md !== null && typeof md === 'object' ? (md as Record<string, unknown>)['local'] : undefined;
  return parseHostPort(stringOf(local));
}

function stringOf(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** "1.2.3.4:80" or "[::1]:80" -> address and port; anything else (a host name, no port) -> undefined. */
export function parseHostPort(s: string | undefined): { address: string; port: number } | undefined {
  if (s === undefined) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  const address = (m[1] ?? m[2])!;
  if (port > 65535 || isIP(address) === 0) return undefined;
  return { address, port };
}
