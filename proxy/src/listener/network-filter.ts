/**
 * The network-filter API: Envoy's ReadFilter/WriteFilter, trimmed to what pilotfish's
 * chains need. A filter chain's non-terminal network filters (network RBAC,
 * set_filter_state, Istio's istio_authn / metadata exchange / istio.stats, ...) run
 * before the terminal one (http_connection_manager or tcp_proxy), after the chain's TLS
 * termination, in configuration order.
 *
 * Life cycle, as Envoy's:
 *  - build: once per filter chain (per listener update), a registered factory validates
 *    the filter's config and builds a NetworkFilter; problems reported to `diag` make the
 *    listener update fail with the reason (xDS: NACK, the last good listener keeps serving);
 *  - per connection: `onNewConnection` in order; any filter may close the connection or
 *    hold the chain (return a promise) until it is ready;
 *  - tcp_proxy chains: every chunk from the client goes through `onData` in order, every
 *    chunk from the upstream through `onWrite` in reverse order (Envoy's write filters);
 *    HTTP chains hand the bytes to the codec directly (byte hooks are not called there);
 *  - `onClose` once, when the connection is gone, with byte counts and duration.
 *
 * Filters never throw at a client: a hook that throws (or rejects) closes that connection
 * and is counted (`<listener>.network_filter_error`); other connections are not affected.
 * Per-connection state lives in WeakMaps keyed by the NetworkConnection, never on the filter.
 */
import type { Diagnostics, NetworkFilterConfig, NodeInfo } from '../../../config/src/index.js';
import type { StatsStore } from '../stats/stats.js';
import type { ConnectionInfo } from '../net/connection-info.js';

/** What a factory may use besides the filter's own config. */
export interface NetworkFilterContext {
  /** The proxy's stats store: filters create their counters here (`<stat_prefix>rbac.allowed`). */
  readonly stats: StatsStore;
  /** The bootstrap node (id, cluster, metadata: Istio's node metadata for peer exchange and labels). */
  readonly node: NodeInfo;
  /** Name of the listener the chain belongs to. */
  readonly listenerName: string;
  /** The listener's traffic_direction (Istio: INBOUND for virtualInbound, OUTBOUND for the rest). */
  readonly trafficDirection: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  /** The terminal filter of the chain: byte hooks run on 'tcp' chains only. */
  readonly chainKind: 'http' | 'tcp';
  /** One line to the proxy's log. */
  readonly log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** A cluster's metadata.filter_metadata, when the cluster exists (Istio's stats name the destination service from it). */
  clusterMetadata?(cluster: string): Readonly<Record<string, unknown>> | undefined;
}

/**
 * Builds a chain's filter from its config, once per chain (Envoy's
 * NamedNetworkFilterConfigFactory). Reports every problem through `diag` (paths under
 * `path`, the filter's typed_config) and returns undefined instead of throwing.
 */
export type NetworkFilterFactory = (
  config: NetworkFilterConfig, diag: Diagnostics, path: string, ctx: NetworkFilterContext,
) => NetworkFilter | undefined;

/** Upstream of a tcp_proxy connection, once tcp_proxy has connected it. */
export interface UpstreamInfo {
  /** The cluster tcp_proxy picked. */
  readonly cluster: string;
  /** The connected host, "ip:port" (or the pipe path). */
  readonly host: string;
  /** The host's metadata (filter_metadata by filter name), as EDS gave it; {} when none. */
  readonly hostMetadata: Readonly<Record<string, unknown>>;
  /**
   * Over a TLS upstream: the URI SAN (SPIFFE ID first) of the peer's certificate and of ours
   * (Envoy's uriSanPeerCertificate / uriSanLocalCertificate of the upstream connection;
   * Istio's client-side destination_principal / source_principal). Undefined in plaintext.
   */
  readonly peerPrincipal?: string | undefined;
  readonly localPrincipal?: string | undefined;
}

/** A downstream connection as network filters see it. One object per connection. */
export interface NetworkConnection {
  /**
   * What the listener learned (addresses, original destination, SNI, ALPN, chain name),
   * plus the shared `filterState` map and `peerPrincipal` (set from the client
   * certificate's URI SAN when this chain terminated TLS). Filters may write both;
   * later filters, HTTP filters and access logs read them.
   */
  readonly info: ConnectionInfo;
  /** True when this chain terminated TLS for the connection (a DownstreamTlsContext). */
  readonly tls: boolean;
  /** The ALPN protocol negotiated by this chain's TLS handshake ("" when none or no TLS). */
  readonly negotiatedProtocol: string;
  /** Date.now() when the chain took the connection. */
  readonly startTime: number;
  /** tcp_proxy chains: the upstream once connected (undefined before, and on HTTP chains). */
  readonly upstream: UpstreamInfo | undefined;
  /**
   * Writes bytes to the client, bypassing the write hooks (Envoy's
   * `connection().write()` from a read filter, e.g. metadata exchange answering with its
   * own header). Ignored once the connection is closed.
   */
  write(data: Uint8Array): void;
  /**
   * Closes the connection at once (Envoy's NoFlush close). `details` becomes
   * %CONNECTION_TERMINATION_DETAILS% (e.g. "rbac_access_denied_matched_policy[none]").
   */
  close(details?: string): void;
  /** Why the connection was closed by a filter, once it was (see close()). */
  readonly terminationDetails: string | undefined;
}

/** onNewConnection's verdict: go on with the next filter, or stop (the filter closed the connection). */
export type ConnectionVerdict = 'continue' | 'stop';

/**
 * A byte hook's verdict for one chunk:
 *  - `undefined`: pass the chunk on unchanged;
 *  - `{ data }`: pass `data` on instead (may be longer: bytes inserted; shorter or
 *    empty: bytes consumed); `data: null` holds everything back (the filter buffers and
 *    releases later through a later chunk's verdict or at `end`);
 *  - 'stop': drop the chunk and stop the chain (the filter closed the connection);
 *  - 'detach': pass the chunk on unchanged and never call this hook again for the
 *    connection (e.g. RBAC once it decided): when no hook is left in either direction,
 *    tcp_proxy joins the sockets directly again.
 * A promise holds the pipe in that direction until it settles (bytes queue behind it,
 * in order); back-pressure still applies to the socket.
 */
export type DataVerdict = { readonly data: Uint8Array | null } | 'stop' | 'detach' | undefined;

/** Totals handed to onClose. */
export interface ConnectionSummary {
  /** Bytes received from the client (before any filter changed them). */
  readonly bytesReceived: number;
  /** Bytes sent to the client. */
  readonly bytesSent: number;
  /** Milliseconds from the chain taking the connection to its close. */
  readonly durationMs: number;
  /** The connection reached an upstream (tcp_proxy) or a codec (HTTP). */
  readonly upstreamConnected: boolean;
}

/** One configured network filter of one chain. Every hook is optional. */
export interface NetworkFilter {
  /** The filter's name as configured (`envoy.filters.network.rbac`, `istio.stats`). */
  readonly name: string;
  /** Its type URL (the inner one when the config came in a TypedStruct). */
  readonly typeUrl: string;
  /**
   * A new connection, after TLS termination (peerPrincipal known) and before the
   * terminal filter sees it. Return 'stop' after calling conn.close() to refuse it; a
   * promise holds the connection until it settles.
   */
  onNewConnection?(conn: NetworkConnection): ConnectionVerdict | Promise<ConnectionVerdict>;
  /** tcp_proxy chains: a chunk from the client (`end`: the client half-closed; chunk may be empty). */
  onData?(chunk: Buffer, end: boolean, conn: NetworkConnection): DataVerdict | Promise<DataVerdict>;
  /** tcp_proxy chains: a chunk from the upstream on its way to the client (reverse filter order). */
  onWrite?(chunk: Buffer, end: boolean, conn: NetworkConnection): DataVerdict | Promise<DataVerdict>;
  /** The connection is gone (any cause). Called once, also when onNewConnection stopped it. */
  onClose?(conn: NetworkConnection, summary: ConnectionSummary): void;
  /** For /config_dump and logs. */
  describe?(): Record<string, unknown>;
  /** The chain was replaced: release timers and the like. */
  dispose?(): void;
}

const factories = new Map<string, NetworkFilterFactory>();

/** "type.googleapis.com/a.b.C" and "a.b.C" name the same message. */
function messageName(typeUrl: string): string {
  const i = typeUrl.lastIndexOf('/');
  return i < 0 ? typeUrl : typeUrl.slice(i + 1);
}

/**
 * Registers the factory for a network filter type (with or without the
 * type.googleapis.com/ prefix; a later registration replaces an earlier one). The
 * decoder must also accept the type (config/src/well-known.ts NETWORK_FILTER_TYPES);
 * an accepted type without a registered factory fails the listener with a clear reason.
 */
export function registerNetworkFilter(typeUrl: string, factory: NetworkFilterFactory): void {
  factories.set(messageName(typeUrl), factory);
}

/** The factory registered for a type, if any. */
export function networkFilterFactory(typeUrl: string): NetworkFilterFactory | undefined {
  return factories.get(messageName(typeUrl));
}

/** Type names (without prefix) that have a registered factory. */
export function registeredNetworkFilterTypes(): string[] {
  return [...factories.keys()];
}
