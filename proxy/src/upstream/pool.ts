import type * as net from 'node:net';
import { alpnTlsConnector, tlsPrincipals } from './tls-connector.js';
import { createRequire } from 'node:module';
import type { Dispatcher } from 'undici';
import type { Cluster } from '../../../config/src/index.js';
import type { Host } from '../cluster/endpoint-set.js';
import { isPipeEndpoint, pipePath } from './address.js';

/** TLS options for undici's connector (from certs/ UpstreamTlsContext), or undefined for cleartext. */
export type UpstreamTls = Record<string, unknown> | undefined;

// undici (~8 MB of RSS once loaded) is required on the first pool a host needs, not at
// start-up: a proxy that never dispatches through undici (TCP only, or the raw HTTP/1.1
// path) never loads it. The require is synchronous, so pool creation stays synchronous.
const require = createRequire(import.meta.url);
let undici: typeof import('undici') | undefined;
function loadUndici(): typeof import('undici') {
  return (undici ??= require('undici') as typeof import('undici'));
}

/**
 * One undici dispatcher per upstream host, created on first use and kept across
 * configuration changes that do not touch the host: this is what makes an endpoint
 * diff cheap for the data path (no pool of an untouched endpoint is ever rebuilt).
 */
export function createHostPool(
  cluster: Cluster, host: Host, tls: UpstreamTls, onConnect: () => void, onDisconnect: (err: unknown) => void,
  /** A connector replacing the socket (internal endpoints: an in-process connection, proxy/src/tunnel/). */
  connector?: (opts: unknown, cb: (err: Error | null, socket: unknown) => void) => void,
): Dispatcher {
  const e = host.endpoint;
  const pipe = isPipeEndpoint(e);
  const hostPart = e.address.includes(':') ? `[${e.address}]` : e.address;
  // A pipe endpoint: undici connects to `socketPath`; the origin only names the pool
  // (requests carry their own Host header).
  const origin = pipe ? `${tls ? 'https' : 'http'}://localhost` : `${tls ? 'https' : 'http'}://${hostPart}:${e.port}`;
  const connect = {
    timeout: cluster.connectTimeout,
    ...(pipe ? { socketPath: pipePath(e.address) } : {}),
    ...keepaliveOptions(cluster),
    ...(tls ?? {}),
  };
  // The proxy enforces route and per-try timeouts itself; undici's own limits would
  // fire with the wrong response flags.
  const bind = cluster.upstreamBindConfig;
  const common = {
    // undici's own connector replaces the context's ALPN with ['http/1.1']: offer the cluster's, as Envoy does.
    connect: (connector ?? (Array.isArray(tls?.['ALPNProtocols']) && (tls['ALPNProtocols'] as unknown[]).length > 0 ? alpnTlsConnector(withH2Offered(connect, cluster), (socket) => {
      const p = tlsPrincipals(socket);
      host.tlsPeerPrincipal = p.peer;
      host.tlsLocalPrincipal = p.local;
    }) : connect)) as typeof connect,
    // undici takes the source address at the client level and hands it to its connector.
    ...(bind && !pipe ? { localAddress: bind.sourceAddress } : {}),
    connectTimeout: cluster.connectTimeout,
    headersTimeout: 0,
    bodyTimeout: 0,
    ...idleOptions(cluster.upstreamIdleTimeout),
    ...(cluster.maxRequestsPerConnection ? { maxRequestsPerClient: cluster.maxRequestsPerConnection } : {}),
  };
  const { Client, Pool } = loadUndici();
  let d: Dispatcher;
  if (cluster.upstreamProtocol === 'HTTP2') {
    // One multiplexed connection per host, as Envoy does for HTTP/2 upstreams.
    d = new Client(origin, {
      ...common,
      allowH2: true,
      ...(tls ? {} : { useH2c: true }),
      maxConcurrentStreams: Math.min(cluster.http2MaxConcurrentStreams, 1000),
      pipelining: Math.min(cluster.http2MaxConcurrentStreams, 1000),
    });
  } else {
    const maxConnections = cluster.circuitBreakers.find((c) => c.priority === 'DEFAULT')?.maxConnections ?? 1024;
    d = new Pool(origin, { ...common, connections: maxConnections, pipelining: 1 });
  }
  d.on('connect', onConnect);
  d.on('disconnect', (_origin: unknown, _targets: unknown, err: unknown) => onDisconnect(err));
  // connectionError is a connection that never came up ('connect' never fired): not active, not destroyed;
  // the router counts it as upstream_cx_connect_fail with the request that needed it.
  return d;
}

/**
 * An HTTP/2 cluster whose context lists its own ALPN (Istio: `istio-peer-exchange, istio`)
 * also offers `h2`: undici speaks HTTP/2 only when ALPN says so, where Envoy speaks it by
 * prior knowledge; Istio's istio.alpn filter makes the same override (`istio-h2, istio, h2`)
 * so the peer's inbound chain (`h2, http/1.1`) picks h2.
 */
function withH2Offered<T extends Record<string, unknown>>(connect: T, cluster: Cluster): T {
  const alpn = connect['ALPNProtocols'];
  if (cluster.upstreamProtocol !== 'HTTP2' || !Array.isArray(alpn) || alpn.includes('h2')) return connect;
  return { ...connect, ALPNProtocols: [...(alpn as string[]), 'h2'] };
}

/**
 * common_http_protocol_options.idle_timeout as undici's keep-alive: an idle pooled
 * connection closes after it (also when the upstream announces a longer keep-alive);
 * 0 is Envoy's "never", a day here (undici needs a finite timer). Unset: undici's 30 s
 * default, up to 60 s when the upstream announces more.
 */
export function idleOptions(idle: number | undefined): { keepAliveTimeout: number; keepAliveMaxTimeout: number } {
  if (idle === undefined) return { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 };
  const ms = idle === 0 ? 86_400_000 : idle;
  return { keepAliveTimeout: ms, keepAliveMaxTimeout: ms };
}

/**
 * upstream_connection_options.tcp_keepalive -> undici's connector, which calls
 * socket.setKeepAlive(true, keepAliveInitialDelay) on every new connection. Only the
 * idle time can be set from Node 20 (0 keeps the OS default, as Envoy does for an unset
 * field); keepalive_probes and keepalive_interval need setsockopt(TCP_KEEPCNT /
 * TCP_KEEPINTVL), which Node does not expose: they stay at the OS defaults
 * (keepaliveWarnings says so). Without tcp_keepalive undici's default applies
 * (keep-alive after 60 s idle; Envoy sets no SO_KEEPALIVE then).
 */
export function keepaliveOptions(cluster: Cluster): { keepAlive?: boolean; keepAliveInitialDelay?: number } {
  const k = cluster.upstreamConnectionOptions?.tcpKeepalive;
  if (k === undefined) return {};
  return { keepAlive: true, keepAliveInitialDelay: k.time ?? 0 };
}

/** tcp_keepalive on a socket the caller opened itself (the TCP proxy's upstream connection). */
/** upstream_bind_config: net.connect's localAddress/localPort (for TLS, tls.connect passes them on). */
export function bindOptions(cluster: Cluster): { localAddress?: string; localPort?: number } {
  const b = cluster.upstreamBindConfig;
  return b ? { localAddress: b.sourceAddress, ...(b.sourcePort !== undefined ? { localPort: b.sourcePort } : {}) } : {};
}

export function applyTcpKeepalive(socket: net.Socket, cluster: Cluster): void {
  const k = cluster.upstreamConnectionOptions?.tcpKeepalive;
  if (k !== undefined) socket.setKeepAlive(true, k.time ?? 0);
}

/** One line per tcp_keepalive field the runtime cannot apply. */
export function keepaliveWarnings(cluster: Cluster): string[] {
  const k = cluster.upstreamConnectionOptions?.tcpKeepalive;
  const out: string[] = [];
  if (k?.probes !== undefined) out.push('upstream_connection_options.tcp_keepalive.keepalive_probes is not supported on Node 20 (the OS default applies)');
  if (k?.interval !== undefined) out.push('upstream_connection_options.tcp_keepalive.keepalive_interval is not supported on Node 20 (the OS default applies)');
  return out;
}
