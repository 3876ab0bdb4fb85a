import * as net from 'node:net';
import * as tls from 'node:tls';
import type { TcpProxy } from '../../../config/src/index.js';
import type { PickContext } from '../cluster/endpoint-set.js';
import type { ChainHandler } from '../listener/chain-handler.js';
import { NetworkFilterChain, type ConnectionRun } from '../listener/network-filter-chain.js';
import type { ConnectionInfo } from '../net/connection-info.js';
import type { Snapshot } from '../snapshot.js';
import { endpointConnectOptions } from '../upstream/address.js';
import { applyTcpKeepalive, bindOptions } from '../upstream/pool.js';
import { tlsPrincipals } from '../upstream/tls-connector.js';
import { compileTunneling, type CompiledTunneling } from '../tunnel/upstreams.js';
import { NO_UPSTREAM_EXCHANGES, type UpstreamExchanges } from './upstream-exchange.js';
import type { Counter, Gauge, StatsStore } from '../stats/stats.js';

interface TcpStats {
  readonly downstream_cx_total: Counter;
  readonly downstream_cx_no_route: Counter;
  readonly upstream_flush_total: Counter;
  readonly idle_timeout: Counter;
  readonly downstream_cx_rx_bytes_total: Counter;
  readonly downstream_cx_tx_bytes_total: Counter;
  readonly downstream_cx_active: Gauge;
}

/** What a TCP session's access log is fed (telemetry/'s StreamView / RequestView shapes). */
export interface TcpSessionView {
  readonly requestId: string;
  readonly startTime: number;
  readonly downstreamAddress: string;
  readonly downstreamLocalPort: number;
  readonly peerIdentity: string | undefined;
  readonly method: string;
  readonly protocol: string;
  readonly routeName: string | undefined;
  readonly clusterName: string | undefined;
  readonly responseCode: number;
  readonly responseFlags: string;
  readonly responseCodeDetails: string;
  readonly upstreamHost: string | undefined;
  readonly attemptCount: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly connection: ConnectionInfo;
}

/** A compiled tcp_proxy access_log: called once per session when the client's connection closes. */
export type TcpSessionLog = (
  session: TcpSessionView,
  request: { method: string; path: string; authority: string; scheme: 'http' | 'https'; headers: Record<string, string | string[] | undefined> },
) => void;

/** Per-session facts the access log prints, filled in as the session goes. */
interface SessionRecord {
  cluster: string | undefined;
  host: string | undefined;
  attempts: number;
  flags: string;
}

/**
 * envoy.filters.network.tcp_proxy: each accepted connection is joined to a host picked
 * from the cluster's load balancer, with connect retries (max_connect_attempts) and an
 * idle timeout. Bytes are piped both ways with back-pressure.
 */
export class TcpProxyChain implements ChainHandler {
  readonly kind = 'tcp';
  private readonly sockets = new Set<net.Socket>();
  private readonly stats: TcpStats;
  private draining = false;

  constructor(
    private proxy: TcpProxy,
    private readonly snapshot: () => Snapshot,
    store: StatsStore,
    private readonly random: () => number = Math.random,
    /** The chain's network filters before tcp_proxy (empty: bytes are piped untouched). */
    private filters: NetworkFilterChain = NetworkFilterChain.EMPTY,
    /** access_log, compiled by telemetry/ (undefined: sessions are not logged). */
    private log: TcpSessionLog | undefined = undefined,
    /** Byte protocols spoken upstream by negotiated ALPN (Istio's metadata exchange), the proxy's. */
    private readonly exchanges: UpstreamExchanges = NO_UPSTREAM_EXCHANGES,
  ) {
    const s = store.scope(`tcp.${proxy.statPrefix}.`, 'envoy_tcp_', { envoy_tcp_prefix: proxy.statPrefix });
    this.stats = {
      downstream_cx_total: s.counter('downstream_cx_total'), downstream_cx_no_route: s.counter('downstream_cx_no_route'),
      upstream_flush_total: s.counter('upstream_flush_total'), idle_timeout: s.counter('idle_timeout'),
      downstream_cx_rx_bytes_total: s.counter('downstream_cx_rx_bytes_total'), downstream_cx_tx_bytes_total: s.counter('downstream_cx_tx_bytes_total'),
      downstream_cx_active: s.gauge('downstream_cx_active'),
    };
  }

  update(proxy: TcpProxy, filters: NetworkFilterChain = NetworkFilterChain.EMPTY, log?: TcpSessionLog): void {
    this.proxy = proxy;
    this.log = log;
    if (filters !== this.filters) {
      this.filters.retire();
      this.filters = filters;
    }
  }

  private clusterName(): string | undefined {
    const c = this.proxy.cluster;
    if (c.kind === 'cluster') return c.name;
    if (c.kind === 'weighted') {
      let r = this.random() * c.totalWeight;
      for (const w of c.clusters) if ((r -= w.weight) < 0) return w.name;
      return c.clusters[c.clusters.length - 1]?.name;
    }
    return undefined;
  }

  accept(down: net.Socket, info: ConnectionInfo): void {
    if (this.draining) {
      down.destroy();
      return;
    }
    down.pause();
    this.stats.downstream_cx_total.inc();
    this.stats.downstream_cx_active.inc();
    this.sockets.add(down);
    down.on('error', () => undefined);
    down.once('close', () => {
      this.sockets.delete(down);
      this.stats.downstream_cx_active.dec();
    });
    const record = this.log ? this.logSession(down, info, this.log) : undefined;
    const filters = this.filters;
    if (filters.isEmpty) return this.connectUpstream(down, info, undefined, undefined, record);
    const run = filters.start(down, info);
    const startedAt = Date.now();
    let upstreamConnected = false;
    // Counted on the sockets' data (a paused socket stays paused: a listener does not resume it).
    let received = 0;
    let sent = 0;
    down.on('data', (c: Buffer) => (received += c.length));
    down.once('close', () => run.finish({ bytesReceived: received, bytesSent: sent, durationMs: Date.now() - startedAt, upstreamConnected }));
    const onUp = (up: net.Socket): void => {
      upstreamConnected = true;
      up.on('data', (c: Buffer) => (sent += c.length));
    };
    const admitted = run.admitted;
    if (admitted === true) this.connectUpstream(down, info, run, onUp, record);
    else if (admitted === false) down.destroy();
    else {
      void admitted.then((ok) => {
        if (ok && !down.destroyed) this.connectUpstream(down, info, run, onUp, record);
        else down.destroy();
      });
    }
  }

  /** Picks a host and joins the connection to it (with connect retries); `run` carries the filters' byte hooks. */
  private connectUpstream(down: net.Socket, info: ConnectionInfo, run: ConnectionRun | undefined, onUp?: (up: net.Socket) => void, record?: SessionRecord): void {
    const proxy = this.proxy;
    const name = this.clusterName();
    const cluster = name === undefined ? undefined : this.snapshot().clusters.get(name);
    if (record) record.cluster = name;
    if (!cluster) {
      if (record) record.flags = 'NR';
      this.stats.downstream_cx_no_route.inc();
      down.destroy();
      return;
    }
    let attempts = 0;
    const tryConnect = (): void => {
      // One context per connection; ORIGINAL_DST clusters read the connection's original destination from it.
      const ctx: PickContext = { hash: Number.NaN, exclude: undefined, connection: info, headers: undefined };
      const host = cluster.pick(ctx);
      if (!host) {
        if (record) record.flags = 'UH';
        // (ClusterRuntime.pick counted upstream_cx_none_healthy.)
        down.destroy();
        return;
      }
      attempts++;
      if (record) {
        record.attempts = attempts;
        record.host = host.endpoint.pipe ? host.endpoint.address : `${host.endpoint.address}:${host.endpoint.port}`;
      }
      host.activeRequests++;
      cluster.stats.upstream_cx_total.inc();
      cluster.stats.upstream_cx_active.inc();
      // An internal endpoint or tunneling_config: an in-process connection or a CONNECT stream (proxy/src/tunnel/).
      const special = cluster.tunnels?.connect(cluster, host, info, tunnelingOf(proxy));
      // The host's transport socket (Istio: mTLS to endpoints labelled tlsMode istio, with the context's ALPN).
      const upstreamTls = special ? undefined : cluster.transportFor(host).tls;
      const tlsConnect = upstreamTls?.current()?.connect;
      const up = (special as net.Socket | undefined) ?? (upstreamTls
        ? tls.connect({ ...endpointConnectOptions(host.endpoint), ...bindOptions(cluster.config), ...withoutUnspokenAlpn(tlsConnect ?? { ca: [], rejectUnauthorized: true }, this.exchanges) } as tls.ConnectionOptions)
        : net.connect({ ...endpointConnectOptions(host.endpoint), ...bindOptions(cluster.config), noDelay: true }));
      if (!special) applyTcpKeepalive(up, cluster.config);
      if (upstreamTls) up.setNoDelay(true);
      let connected = false;
      const connectTimer = setTimeout(() => up.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), cluster.config.connectTimeout);
      // A TLS upstream counts as connected once the handshake (and the peer's verification) is done.
      const ready = (): void => {
        connected = true;
        clearTimeout(connectTimer);
        onUp?.(up);
        if (run) {
          const principals = upstreamTls && up instanceof tls.TLSSocket ? tlsPrincipals(up) : undefined;
          run.upstream = {
            cluster: cluster.name, host: host.endpoint.pipe ? host.endpoint.address : `${host.endpoint.address}:${host.endpoint.port}`,
            hostMetadata: host.endpoint.transportSocketMatch ? { 'envoy.transport_socket_match': host.endpoint.transportSocketMatch } : {},
            ...(principals ? { peerPrincipal: principals.peer, localPrincipal: principals.local } : {}),
          };
        }
        if (run && this.filters.hasByteHooks) joinThroughHooks(down, up, run);
        else {
          down.pipe(up);
          up.pipe(down);
        }
        down.resume();
        const idle = proxy.idleTimeout;
        if (idle > 0) {
          const onIdle = () => {
            this.stats.idle_timeout.inc();
            up.destroy();
            down.destroy();
          };
          down.setTimeout(idle, onIdle);
          up.setTimeout(idle, onIdle);
        }
      };
      up.once(upstreamTls ? 'secureConnect' : 'connect', () => {
        const alpn = (up as tls.TLSSocket).alpnProtocol;
        const exchange = typeof alpn === 'string' ? this.exchanges.get(alpn)?.(info) : undefined;
        if (!exchange) return ready();
        // The exchange comes first both ways; the application's bytes wait (the client's stay paused).
        up.write(exchange.greeting);
        const onFirst = (chunk: Buffer): void => {
          const rest = exchange.push(chunk);
          if (rest === null) return;
          up.removeListener('data', onFirst);
          up.pause();
          if (rest.length > 0) up.unshift(rest);
          ready();
          // Paused explicitly above: a 'data' listener alone (the byte hooks' join) would not restart it.
          up.resume();
        };
        up.on('data', onFirst);
      });
      up.on('error', () => undefined);
      up.once('close', () => {
        clearTimeout(connectTimer);
        host.activeRequests--;
        cluster.stats.upstream_cx_active.dec();
        if (!connected) {
          cluster.stats.upstream_cx_connect_fail.inc();
          if (record) record.flags = 'UF';
          if (attempts < proxy.maxConnectAttempts && !down.destroyed) return tryConnect();
          down.destroy();
          return;
        }
        this.stats.downstream_cx_tx_bytes_total.inc(up.bytesRead);
        this.stats.downstream_cx_rx_bytes_total.inc(up.bytesWritten);
        // Half-close semantics: the upstream ended; finish writing to the client, then close.
        if (!down.destroyed) down.end();
      });
      down.once('close', () => {
        if (!up.destroyed) up.end();
      });
    };
    tryConnect();
  }

  /**
   * Logs the session when the client's connection closes: bytes both ways (as they
   * crossed the client socket), duration, cluster, host and Envoy's TCP response flags
   * (NR no cluster, UH no healthy host, UF connect failure).
   */
  private logSession(down: net.Socket, info: ConnectionInfo, log: TcpSessionLog): SessionRecord {
    const record: SessionRecord = { cluster: undefined, host: undefined, attempts: 0, flags: '' };
    const startTime = performance.now();
    let received = 0;
    // Counted on the socket's data: a listener does not resume a paused socket.
    down.on('data', (c: Buffer) => (received += c.length));
    const sentBefore = down.bytesWritten;
    down.once('close', () => {
      try {
        log({
          requestId: '', startTime, downstreamAddress: info.remoteAddress, downstreamLocalPort: info.originalDst?.port ?? info.localPort,
          peerIdentity: info.peerPrincipal, method: '', protocol: '', routeName: undefined, clusterName: record.cluster,
          responseCode: 0, responseFlags: record.flags, responseCodeDetails: '', upstreamHost: record.host, attemptCount: record.attempts,
          bytesSent: down.bytesWritten - sentBefore, bytesReceived: received, connection: info,
        }, { method: '', path: '', authority: '', scheme: 'http', headers: {} });
      } catch {
        // A logger never breaks the data path (telemetry counts its own drops).
      }
    });
    return record;
  }

  drain(): void {
    this.draining = true;
  }

  closeIdle(): void {
    // A TCP connection is never idle in the HTTP sense: it ends when either side closes or idle_timeout fires.
  }

  destroy(): void {
    this.draining = true;
    for (const s of this.sockets) s.destroy();
    this.filters.retire();
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Joins client and upstream through the filters' byte hooks (onData toward the upstream,
 * onWrite toward the client), with back-pressure on both sockets.
 */
/**
 * `istio-peer-exchange` announces Istio's TCP metadata exchange (Envoy: the cluster's
 * upstream filter). It is offered only when this proxy speaks it (istio/ registers it):
 * a peer that accepts it writes its exchange header before the application's bytes. Left
 * out, the peer's inbound chain still matches on `istio` and the exchange is skipped.
 */
function withoutUnspokenAlpn(o: object, exchanges: UpstreamExchanges): object {
  const alpn = (o as { ALPNProtocols?: unknown }).ALPNProtocols;
  if (!Array.isArray(alpn) || !alpn.includes('istio-peer-exchange') || exchanges.has('istio-peer-exchange')) return o;
  return { ...o, ALPNProtocols: alpn.filter((p) => p !== 'istio-peer-exchange') };
}

function joinThroughHooks(down: net.Socket, up: net.Socket, run: ConnectionRun): void {
  const toUp = run.readPipe((c) => {
    if (!up.write(c)) {
      down.pause();
      up.once('drain', () => down.resume());
    }
  }, () => up.end());
  const toDown = run.writePipe((c) => {
    if (!down.write(c)) {
      up.pause();
      down.once('drain', () => up.resume());
    }
  }, () => down.end(), up);
  const onDownData = (c: Buffer): void => {
    toUp.push(c, false);
    spliceWhenDetached();
  };
  const onUpData = (c: Buffer): void => {
    toDown.push(c, false);
    spliceWhenDetached();
  };
  const onDownEnd = (): void => toUp.push(EMPTY, true);
  const onUpEnd = (): void => toDown.push(EMPTY, true);
  // Once every hook detached (RBAC after its first-byte decision), the sockets are piped
  // directly, as on a chain without byte hooks.
  const spliceWhenDetached = (): void => {
    if (!toUp.detached || !toDown.detached || down.destroyed || up.destroyed) return;
    down.off('data', onDownData);
    up.off('data', onUpData);
    down.off('end', onDownEnd);
    up.off('end', onUpEnd);
    down.pipe(up);
    up.pipe(down);
  };
  down.on('data', onDownData);
  down.once('end', onDownEnd);
  up.on('data', onUpData);
  up.once('end', onUpEnd);
}

/** tunneling_config compiled (cached per config; validated when the chain was built). */
function tunnelingOf(proxy: TcpProxy): CompiledTunneling | undefined {
  if (!proxy.tunneling) return undefined;
  const c = compileTunneling(proxy.tunneling);
  return typeof c === 'string' ? undefined : c;
}
