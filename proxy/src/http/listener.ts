import * as http from 'node:http';
import { AlpnNoackTls } from '../listener/alpn-noack.js';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ConnectionManager } from './connection-manager.js';
import { connectionInfo, setConnectionInfo, type ConnectionInfo } from '../net/connection-info.js';
import type { ChainHandler } from '../listener/chain-handler.js';
import { NetworkFilterChain } from '../listener/network-filter-chain.js';
import { setPeerPrincipal } from '../listener/peer-principal.js';
import type { ListenerStats } from '../listener/network-listener.js';
import { h2UpstreamFromEnv, http2PathFromEnv, serveStreams } from '../http2/streams.js';
import { setSessionSocket } from '../http2/messages.js';
import { H2Sweep } from '../http2/sweep.js';

const H2_MAX_INVALID_FRAMES = 100;
const CLIENT_ERROR_LINGER_MS = 1000;
const H2_MAX_REJECTED_STREAMS = 100;
const H2_MAX_OUTSTANDING_PINGS = 10;

/** Set on an HTTP/1.1 socket whose max_connection_duration passed: the next response closes it. */
export const CONNECTION_EXPIRED = Symbol('pilotfish.connectionExpired');

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** True when the bytes so far are a prefix of the HTTP/2 connection preface (RFC 9113 §3.4). */
function isH2Preface(first: Buffer): boolean {
  const n = Math.min(first.length, H2_PREFACE.length);
  return n >= 3 && first.compare(H2_PREFACE, 0, n, 0, n) === 0;
}

/** TLS termination of a filter chain: server options, kept current by certs/ on rotation. */
export interface DownstreamTls {
  /** Options for tls.createServer (ALPN list decided here from the codec). */
  serverOptions(alpn: string[]): tls.TlsOptions;
  /** Keeps the server's context current on rotation and verifies peers. */
  attach(server: tls.Server): void;
}

/**
 * The HTTP connection manager of one filter chain, as the listener hands it connections:
 * per connection the codec chosen as Envoy's AUTO does (HTTP/2 by its connection preface
 * or by ALPN, else HTTP/1.1), over the chain's TLS when it has one. The connection
 * manager is looked up per request, so a listener update (new routes, new filters)
 * takes effect for new requests without closing any connection.
 */
export class HttpChain implements ChainHandler {
  readonly kind = 'http';
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private tlsServer: tls.Server | undefined;
  /** The TLS server with its ALPN-less twin (Envoy's NOACK when the client offers nothing in common). */
  private tlsNoack: AlpnNoackTls | undefined;
  private readonly sessions = new Set<http2.Http2Session>();
  /** The socket being handed to the HTTP/2 server, for its session to remember (http2/messages.ts). */
  private arriving: net.Socket | undefined;
  /** idle_timeout and stream_idle_timeout of the core-API HTTP/2 sessions, on one sweep (http2/sweep.ts). */
  private h2Sweep: H2Sweep | undefined;
  private draining = false;

  constructor(
    private hcm: ConnectionManager,
    private readonly stats: ListenerStats,
    private tlsTermination: DownstreamTls | undefined,
    /** The chain's network filters before the connection manager (connection-level hooks only on HTTP chains). */
    private filters: NetworkFilterChain = NetworkFilterChain.EMPTY,
  ) {
    const limits = hcm.config.limits;
    const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => this.hcm.handle(req, res);
    // Envoy's request_headers_timeout is off by default; node always needs one (and no
    // longer than request_timeout). Node checks both on a timer, so its period bounds
    // how late a slow client is cut off.
    const requestTimeout = limits.requestTimeout;
    let headersTimeout = limits.requestHeadersTimeout > 0 ? limits.requestHeadersTimeout : 60_000;
    if (requestTimeout > 0) headersTimeout = Math.min(headersTimeout, requestTimeout);
    const checkEvery = Math.max(100, Math.min(30_000, Math.floor(Math.min(headersTimeout, requestTimeout > 0 ? requestTimeout : Infinity) / 4)));
    this.h1 = http.createServer({
      maxHeaderSize: limits.maxRequestHeadersKb * 1024,
      keepAliveTimeout: Math.min(limits.idleTimeout, 2 ** 31 - 1),
      headersTimeout,
      requestTimeout,
      connectionsCheckingInterval: checkEvery,
      noDelay: true,
      joinDuplicateHeaders: false,
      requireHostHeader: true,
    }, handler);
    // Node drops headers past maxHeadersCount silently; one more lets the connection manager see the excess and answer 431 as Envoy does.
    this.h1.maxHeadersCount = limits.maxHeadersCount + 1;
    // Upgrades (WebSocket) and CONNECT leave node's HTTP/1.1 parser: the connection manager routes and tunnels them.
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.hcm.handleUpgrade(req, socket, head));
    this.h1.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.hcm.handleUpgrade(req, socket, head));
    // Node enforces headersTimeout/requestTimeout from a timer it starts on 'listening';
    // this server never listens itself (sockets are handed to it), so start it here.
    // (http.Server.close stops it again.)
    this.h1.emit('listening');
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      // Malformed requests: answer 400 (431 for oversized headers) and close, like Envoy.
      // A response already under way on this socket cannot be followed by another one.
      const inFlight = (socket as unknown as { _httpMessage?: http.ServerResponse | null })._httpMessage;
      if (!socket.writable || inFlight?.headersSent) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      // The connection is done either way: do not wait for a peer (say, a slowloris) to close its side.
      const t = setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS);
      t.unref();
      socket.once('close', () => clearTimeout(t));
    });
    const h2Options: http2.ServerOptions = {
      // Pseudo-headers count towards node's limit; Envoy's max_headers_count does not count them.
      maxHeaderListPairs: limits.maxHeadersCount + 4,
      maxSendHeaderBlockLength: limits.maxRequestHeadersKb * 1024,
      // Flood protections (Envoy: max_outbound_frames, max_consecutive_inbound_frames_with_empty_payload,
      // reset floods as in CVE-2023-44487): a session exceeding these is torn down.
      maxSessionInvalidFrames: H2_MAX_INVALID_FRAMES,
      maxSessionRejectedStreams: H2_MAX_REJECTED_STREAMS,
      maxOutstandingPings: H2_MAX_OUTSTANDING_PINGS,
      maxSettings: 32,
      settings: {
        maxConcurrentStreams: Math.min(limits.maxConcurrentStreams, 2 ** 32 - 1),
        maxHeaderListSize: limits.maxRequestHeadersKb * 1024,
        enablePush: false,
        // http2_protocol_options.allow_connect: RFC 8441 extended CONNECT (WebSocket over HTTP/2).
        enableConnectProtocol: hcm.config.http2AllowConnect === true,
      },
    };
    if (http2PathFromEnv() === 'core') {
      // Streams straight from the session (proxy/src/http2/): no compat request/response per stream.
      this.h2 = http2.createServer(h2Options);
      serveStreams(this.h2, () => this.hcm, h2UpstreamFromEnv());
      this.h2Sweep = new H2Sweep(() => {
        const l = this.hcm.config.limits;
        return { idleTimeout: l.idleTimeout, streamIdleTimeout: l.streamIdleTimeout };
      });
    } else {
      this.h2 = http2.createServer(h2Options, handler);
      // node's compat API emits CONNECT streams (plain and RFC 8441) as 'connect', answering 405 when unheard.
      this.h2.on('connect', handler);
    }
    this.h2.on('session', (session: http2.Http2Session) => {
      this.sessions.add(session);
      if (this.arriving !== undefined) setSessionSocket(session, this.arriving);
      // Idle (no open stream) for idle_timeout: GOAWAY, as Envoy's connection idle timeout.
      // On the core API the sweep tracks it (no node timer refreshed by every frame);
      // the compat API keeps node's session timer (no activity at all for that long).
      if (this.h2Sweep !== undefined) this.h2Sweep.addSession(session);
      else {
        const idle = Math.min(limits.idleTimeout, 2 ** 31 - 1);
        if (idle > 0) session.setTimeout(idle, () => session.close());
      }
      let lifetime: NodeJS.Timeout | undefined;
      if (limits.maxConnectionDuration) {
        lifetime = setTimeout(() => session.close(), limits.maxConnectionDuration);
        lifetime.unref();
      }
      session.once('close', () => {
        this.sessions.delete(session);
        if (lifetime) clearTimeout(lifetime);
      });
      session.on('error', () => undefined);
      if (this.draining) session.close();
    });
    if (tlsTermination) this.tlsServer = this.makeTlsServer(tlsTermination);
  }

  get connectionManager(): ConnectionManager {
    return this.hcm;
  }

  private makeTlsServer(t: DownstreamTls): tls.Server {
    const codec = this.hcm.config.codecType;
    const alpn = codec === 'HTTP1' ? ['http/1.1'] : codec === 'HTTP2' ? ['h2'] : ['h2', 'http/1.1'];
    const options = t.serverOptions(alpn);
    const onSecure = (socket: tls.TLSSocket): void => {
      this.stats.downstream_cx_ssl_total.inc();
      // The listener attached what it knows to the TCP socket; requests read it from the TLS one.
      const info = connectionInfo((socket as unknown as { _parent?: net.Socket })._parent);
      if (info) {
        setConnectionInfo(socket, info);
        setPeerPrincipal(socket, info);
      }
      const serve = (held: boolean): void => {
        if (socket.alpnProtocol === 'h2' || (codec === 'HTTP2' && socket.alpnProtocol !== 'http/1.1')) this.toH2(socket);
        else {
          this.toH1(socket);
          // A filter that held the connection paused it; node's HTTP/1.1 parser does not resume a paused socket.
          if (held) socket.resume();
        }
      };
      if (this.filters.isEmpty || !info) serve(false);
      else this.throughFilters(socket, info, serve);
    };
    const prepare = (server: tls.Server): void => {
      server.on('tlsClientError', (_err, socket) => socket.destroy());
      t.attach(server);
    };
    const server = tls.createServer(options, onSecure);
    prepare(server);
    this.tlsNoack = new AlpnNoackTls(server, options, onSecure, prepare);
    return server;
  }

  /**
   * The chain's network filters for one connection (after TLS): onNewConnection in order,
   * then `serve` hands it to the codec; onClose when it is gone. The socket stays paused
   * while a filter holds the connection.
   */
  private throughFilters(socket: net.Socket, info: ConnectionInfo, serve: (held: boolean) => void): void {
    const run = this.filters.start(socket, info);
    const startedAt = Date.now();
    let served = false;
    socket.once('close', () => run.finish({ bytesReceived: socket.bytesRead, bytesSent: socket.bytesWritten, durationMs: Date.now() - startedAt, upstreamConnected: served }));
    const go = (ok: boolean, held: boolean): void => {
      if (!ok || socket.destroyed) {
        socket.destroy();
        return;
      }
      served = true;
      serve(held);
    };
    const admitted = run.admitted;
    if (typeof admitted === 'boolean') go(admitted, false);
    else {
      socket.pause();
      void admitted.then((ok) => go(ok, true));
    }
  }

  /** Swaps the connection manager (and TLS, network filters) for requests and connections that start from now on. */
  update(hcm: ConnectionManager, tlsTermination: DownstreamTls | undefined, filters: NetworkFilterChain = NetworkFilterChain.EMPTY): void {
    if (filters !== this.filters) {
      this.filters.retire();
      this.filters = filters;
    }
    this.hcm = hcm;
    if (tlsTermination !== this.tlsTermination) {
      this.tlsTermination = tlsTermination;
      this.tlsServer = tlsTermination ? this.makeTlsServer(tlsTermination) : undefined;
    }
  }

  accept(socket: net.Socket, info: ConnectionInfo): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    // With TLS the filters run behind the handshake (makeTlsServer); plaintext, before the codec.
    if (!this.tlsServer && !this.filters.isEmpty) {
      this.throughFilters(socket, info, () => this.serveAccepted(socket));
      return;
    }
    this.serveAccepted(socket);
  }

  private serveAccepted(socket: net.Socket): void {
    const codec = this.hcm.config.codecType;
    if (!this.tlsServer && codec === 'HTTP1') {
      this.toH1(socket);
      socket.resume();
      return;
    }
    if (!this.tlsServer && codec === 'HTTP2') return this.toH2(socket);
    // A chain with a DownstreamTlsContext speaks TLS only, as Envoy's: plaintext fails the
    // handshake and the connection closes (serving it would bypass mTLS). PERMISSIVE
    // meshes put a raw_buffer chain beside it, chosen by tls_inspector.
    if (this.tlsServer) {
      if (this.tlsNoack?.server === this.tlsServer) this.tlsNoack.emitConnection(socket);
      else this.tlsServer.emit('connection', socket);
      return;
    }
    // Sniff the first bytes: the HTTP/2 preface, or HTTP/1.x.
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      // HTTP/2 reads the unshifted bytes itself; resuming would drop them.
      if (codec !== 'HTTP1' && isH2Preface(first)) this.toH2(socket);
      else {
        this.toH1(socket);
        socket.resume();
      }
    });
    socket.resume();
  }

  /**
   * max_connection_duration for HTTP/1.1 (HTTP/2 sessions get a GOAWAY instead): an idle
   * connection closes at once, a busy one answers its current request with
   * `connection: close`. The timer is unref'd and dies with the socket.
   */
  private expireLater(socket: net.Socket, ms: number): void {
    const timer = setTimeout(() => {
      (socket as unknown as Record<symbol, boolean>)[CONNECTION_EXPIRED] = true;
      const res = (socket as unknown as { _httpMessage?: http.ServerResponse | null })._httpMessage;
      if (!res) socket.destroy();
      else if (!res.headersSent) res.shouldKeepAlive = false;
      else res.once('finish', () => socket.destroySoon());
    }, ms);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  /** Serves an HTTP/1.1 connection (plaintext or TLS); the raw path (http1/raw-chain.ts) overrides it. */
  protected toH1(socket: net.Socket | tls.TLSSocket): void {
    this.stats.downstream_cx_http1_total.inc();
    const maxDuration = this.hcm.config.limits.maxConnectionDuration;
    if (maxDuration) this.expireLater(socket, maxDuration);
    this.h1.emit('connection', socket);
  }

  private toH2(socket: net.Socket | tls.TLSSocket): void {
    this.stats.downstream_cx_http2_total.inc();
    // node makes the session (and emits 'session') synchronously in this emit.
    this.arriving = socket;
    try {
      this.h2.emit('connection', socket);
    } finally {
      this.arriving = undefined;
    }
  }

  /** Asks clients to go away (GOAWAY / connection: close); idle keep-alives close. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const s of this.sessions) s.close();
    this.h1.closeIdleConnections();
  }

  closeIdle(): void {
    this.h1.closeIdleConnections();
  }

  destroy(): void {
    this.draining = true;
    this.filters.retire();
    this.h1.close();
    for (const s of this.sessions) s.destroy();
    this.h2Sweep?.stop();
  }
}
