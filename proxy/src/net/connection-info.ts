import type * as net from 'node:net';

/**
 * What the listener learned about a downstream connection before handing it to a filter
 * chain: addresses (the local one restored to the original destination when the
 * connection was intercepted), what the listener filters sniffed, and which chain took
 * it. One object per connection, attached to the socket (and to the TLS socket over it)
 * under a symbol, so request-path code reads it without a lookup table.
 */
export interface ConnectionInfo {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The address the connection arrived at: the listener's socket address. */
  readonly localAddress: string;
  readonly localPort: number;
  /**
   * Where the client meant to go, when the connection was intercepted (iptables REDIRECT
   * via SO_ORIGINAL_DST, or the fast path's cgroup hook) and an `original_dst` listener
   * filter restored it. Envoy calls this the downstream local address after restoration.
   */
  readonly originalDst?: { readonly address: string; readonly port: number };
  /** tls_inspector: SNI of the ClientHello, lower-cased. */
  readonly serverName?: string;
  /** "tls" or "raw_buffer" (tls_inspector), as filter_chain_match.transport_protocol names them. */
  readonly transportProtocol: string;
  /** ALPN offered by the client (tls_inspector) or sniffed by http_inspector ("http/1.1", "h2c"). */
  readonly applicationProtocols: readonly string[];
  /** The name of the filter chain that took the connection ("" when unnamed). */
  readonly filterChainName: string;
  /**
   * Envoy's connection-level filter state: objects network filters (istio_authn,
   * metadata exchange, set_filter_state), the HBONE terminator and internal listeners put
   * here for later filters, HTTP filters and access logs to read. Keys are Envoy's / Istio's
   * names (e.g. "io.istio.peer_principal", "envoy.filters.listener.original_dst.local_ip",
   * "wasm.downstream_peer"). Created on first write; shared by the TLS socket and the raw
   * socket under it, and carried into an internal listener's inner connection.
   */
  filterState?: Map<string, unknown>;
  /**
   * The downstream peer's verified identity once TLS is done: the URI SAN (SPIFFE ID) of
   * its certificate. Set by the chain that terminates TLS (or the HBONE terminator for an
   * inner connection), read by RBAC `authenticated` principals and Istio's telemetry.
   */
  peerPrincipal?: string;
  /** This proxy's own certificate URI SAN on the connection (Istio's io.istio.local_principal), set with peerPrincipal. */
  localPrincipal?: string;
}

/** The connection's filter state, created on first use. */
export function filterState(info: ConnectionInfo): Map<string, unknown> {
  return (info.filterState ??= new Map());
}

const INFO = Symbol('pilotfish.connectionInfo');

export function setConnectionInfo(socket: net.Socket, info: ConnectionInfo): void {
  (socket as unknown as Record<symbol, ConnectionInfo>)[INFO] = info;
}

/** The info the listener attached, or undefined for sockets no listener saw (tests, internal). */
export function connectionInfo(socket: net.Socket | undefined | null): ConnectionInfo | undefined {
  if (!socket) return undefined;
  const info = (socket as unknown as Record<symbol, ConnectionInfo | undefined>)[INFO];
  if (info !== undefined) return info;
  // node:http2 wraps a socket without a native handle (an internal listener's inner
  // connection) in a JSStreamSocket: the info is on the stream it wraps.
  const wrapped = (socket as unknown as { stream?: unknown }).stream;
  return wrapped !== null && typeof wrapped === 'object' ? (wrapped as Record<symbol, ConnectionInfo | undefined>)[INFO] : undefined;
}

/**
 * The destination a connection was meant for: the restored original destination, else
 * the local address it arrived at. ORIGINAL_DST clusters and `use_original_dst` use this.
 */
export function effectiveDestination(info: ConnectionInfo): { readonly address: string; readonly port: number } {
  return info.originalDst ?? { address: info.localAddress, port: info.localPort };
}
