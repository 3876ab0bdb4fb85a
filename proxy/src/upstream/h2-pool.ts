import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Dispatcher } from 'undici';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import { newHeaderMap, type HeaderMap } from '../http/headers.js';
import type { TlsSource } from './transport-match.js';
import { idleOptions } from './pool.js';
import { HTTP2_ALPN, isConnectCode, tlsErrorBeforeReady, UpstreamSocketError as StreamError, UpstreamSocketFactory } from './socket-factory.js';
import { markTrailersPossible } from '../http2/trailer-hint.js';

/**
 * HTTP/2 upstream connections on node's core http2 session/stream API, for clusters whose
 * upstream protocol is HTTP/2 (gRPC services, Istio's h2 between sidecars). It speaks the
 * router's side of undici's dispatch API, as the raw HTTP/1.1 pool does, so attempts,
 * retries, hedging and timeouts run unchanged. What undici's HTTP/2 client did not give:
 * response trailers (grpc-status after the messages), REFUSED_STREAM and GOAWAY told
 * apart from resets (a refused stream is retried, as Envoy does), prior knowledge over TLS
 * whatever ALPN settles on (Envoy speaks HTTP/2 to an HTTP/2 cluster), and more than one
 * connection when a peer's max_concurrent_streams is reached.
 *
 * Plaintext is h2c by prior knowledge; TLS uses the host's transport socket, offering `h2`
 * beside the context's own ALPN list (Istio: `istio-peer-exchange, istio, h2`).
 */

type Handler = Dispatcher.DispatchHandler;
type Body = Buffer | NodeJS.ReadableStream | null | undefined;

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 8 << 20;
const NO_TRAILERS: Record<string, string | string[]> = Object.freeze({}) as Record<string, string | string[]>;

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); node throws on them. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);


/**
 * The HTTP/2 pool of a host of an HTTP/2 cluster at an IP address (hostnames, pipes and
 * internal addresses stay on undici: undefined). Replaced when the cluster's config, the
 * host's endpoint or its TLS material changes; the old pool's sessions finish their streams.
 */
export function h2PoolFor(cluster: ClusterRuntime, host: Host): H2HostPool | undefined {
  const e = host.endpoint;
  const prev = host.directPool as { close(): void } | undefined;
  // The per-request path: the host's current pool, no address parsing.
  if (prev instanceof H2HostPool && prev.config === cluster.config && prev.endpoint === e && prev.tlsCurrent) return prev;
  if (net.isIP(e.address) === 0 || e.port <= 0) return undefined;
  prev?.close();
  const next = new H2HostPool(cluster, host, cluster.transportFor(host).tls);
  host.directPool = next;
  return next;
}

/** The HTTP/2 pool a host already has (none is made): for tests and admin views. */
export function existingH2Pool(host: Host): H2HostPool | undefined {
  const p = host.directPool;
  return p instanceof H2HostPool ? p : undefined;
}

export class H2HostPool {
  readonly endpoint: Host['endpoint'];
  readonly config: ClusterRuntime['config'];
  private readonly sessions: H2Session[] = [];
  /** Opens the sessions' sockets: h2c by prior knowledge, or TLS with the host's material and `h2` offered. */
  readonly sockets: UpstreamSocketFactory;
  private closed = false;

  constructor(readonly cluster: ClusterRuntime, readonly host: Host, tlsSource: TlsSource | undefined) {
    this.endpoint = host.endpoint;
    this.config = cluster.config;
    this.sockets = new UpstreamSocketFactory(cluster, host, tlsSource, HTTP2_ALPN);
  }

  get isTls(): boolean {
    return this.sockets.isTls;
  }

  get tlsCurrent(): boolean {
    return this.sockets.current;
  }

  /** Connections open now (for tests and admin). */
  get connectionCount(): number {
    return this.sessions.length;
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Handler): boolean {
    let s: H2Session | undefined;
    for (const c of this.sessions) {
      if (c.accepting) {
        s = c;
        break;
      }
    }
    if (s === undefined) {
      s = new H2Session(this);
      this.sessions.push(s);
    }
    s.request(opts.method, opts.path, opts.headers as HeaderMap, opts.body as Body, handler);
    return true;
  }

  /** @internal */
  forget(s: H2Session): void {
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
  }

  /** Replaced or its host removed: sessions take no new streams and close when their streams are done. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sessions.slice()) s.retire();
  }
}

/** One HTTP/2 connection to the host. */
class H2Session {
  private readonly session: http2.ClientHttp2Session;
  private active = 0;
  private started = 0;
  private retired = false;
  private connected = false;
  private readonly maxPerConnection: number;

  constructor(private readonly pool: H2HostPool) {
    const cluster = pool.cluster;
    const config = cluster.config;
    const e = pool.endpoint;
    const host = e.address.includes(':') ? `[${e.address}]` : e.address;
    this.maxPerConnection = config.maxRequestsPerConnection ?? 0;
    this.session = http2.connect(`${pool.isTls ? 'https' : 'http'}://${host}:${e.port}`, {
      createConnection: () => pool.sockets.open(() => this.onSocketReady()),
      // HTTP/2's default 64 KiB stream window stalls a bulk response after every 64 KiB for a
      // round trip; Envoy's defaults are far larger (256 MiB). 1 MiB per stream and 8 MiB per
      // connection keep one core busy on loopback while bounding what a slow client can pin.
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW },
    });
    cluster.stats.upstream_cx_total.inc();
    cluster.stats.upstream_cx_http2_total.inc();
    cluster.stats.upstream_cx_active.inc();
    const timeout = config.connectTimeout;
    const connectTimer = timeout > 0 ? setTimeout(() => this.session.destroy(new StreamError('UND_ERR_CONNECT_TIMEOUT', 'connect timeout')), timeout) : undefined;
    this.session.once('connect', () => {
      if (connectTimer) clearTimeout(connectTimer);
      this.session.setLocalWindowSize(CONNECTION_WINDOW);
    });
    this.session.once('close', () => {
      if (connectTimer) clearTimeout(connectTimer);
      cluster.stats.upstream_cx_active.dec();
      cluster.stats.upstream_cx_destroy.inc();
      pool.forget(this);
    });
    // A peer's GOAWAY: streams it accepted finish, new ones go to another connection.
    this.session.once('goaway', () => this.retire());
    this.session.on('error', () => undefined);
    const idle = idleOptions(config.upstreamIdleTimeout).keepAliveTimeout;
    this.session.setTimeout(idle, () => {
      if (this.active === 0) this.session.close();
    });
  }

  private onSocketReady(): void {
    this.connected = true;
  }

  /** Takes a new stream: not retired, under the peer's and the cluster's stream limits. */
  get accepting(): boolean {
    if (this.retired || this.session.closed || this.session.destroyed) return false;
    const peerMax = this.session.remoteSettings?.maxConcurrentStreams ?? 100;
    const clusterMax = this.pool.config.http2MaxConcurrentStreams;
    return this.active < Math.min(peerMax, clusterMax);
  }

  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.pool.forget(this);
    if (this.active === 0) this.session.close();
  }

  request(method: string, path: string, headers: HeaderMap, body: Body, handler: Handler): void {
    const h = newHeaderMap() as http2.OutgoingHttpHeaders;
    h[':method'] = method;
    h[':path'] = path;
    h[':scheme'] = this.pool.isTls ? 'https' : 'http';
    h[':authority'] = typeof headers.host === 'string' ? headers.host : `${this.pool.endpoint.address}:${this.pool.endpoint.port}`;
    for (const k in headers) {
      const v = headers[k];
      if (v === undefined || HOP_BY_HOP.has(k)) continue;
      // TE is allowed with "trailers" only (gRPC sends it).
      if (k === 'te') {
        if (String(v).toLowerCase().includes('trailers')) h.te = 'trailers';
        continue;
      }
      h[k] = v;
    }
    const noBody = body === null || body === undefined;
    const stream = this.session.request(h, { endStream: noBody });
    this.active++;
    this.started++;
    if (this.maxPerConnection > 0 && this.started >= this.maxPerConnection) this.retire();
    new H2Exchange(this, stream, handler, method === 'HEAD').start(body);
  }

  /** @internal a stream ended (any way). */
  streamDone(): void {
    this.active--;
    if (this.active === 0 && this.retired) this.session.close();
  }

  /** Whether the connection came up: errors before it are connection failures. */
  get wasConnected(): boolean {
    return this.connected;
  }

  get tls(): boolean {
    return this.pool.isTls;
  }
}

/** One request/response on a stream; the controller the router's attempt holds. */
class H2Exchange implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  private handler: Handler | undefined;
  private trailers: Record<string, string | string[]> = NO_TRAILERS;
  private done = false;

  constructor(private readonly session: H2Session, private readonly stream: http2.ClientHttp2Stream, handler: Handler, private readonly head: boolean) {
    this.handler = handler;
  }

  start(body: Body): void {
    const stream = this.stream;
    const handler = this.handler!;
    stream.on('response', (headers: http2.IncomingHttpHeaders, flags: number) => {
      if (this.handler === undefined) return;
      const status = Number(headers[':status']);
      const h = plain(headers);
      // Trailers may follow any body of this response (an HTTP/2 downstream then waits for them).
      if (!this.head && (flags & NGHTTP2_FLAG_END_STREAM) === 0) markTrailersPossible(h);
      handler.onResponseStart?.(this, status, h, '');
      // A HEAD response has no body even when content-length says otherwise.
      if (this.head) stream.resume();
    });
    stream.on('data', (chunk: Buffer) => {
      if (this.handler !== undefined) this.handler.onResponseData?.(this, chunk);
    });
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
      this.trailers = plain(t);
    });
    stream.once('end', () => this.finish());
    stream.on('error', (err: NodeJS.ErrnoException) => this.fail(this.errorOf(err)));
    stream.once('close', () => {
      if (!this.done) {
        const code = stream.rstCode;
        this.fail(code === NGHTTP2_REFUSED_STREAM
          ? new StreamError('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_REFUSED_STREAM')
          : this.session.wasConnected ? new StreamError('UND_ERR_SOCKET', `upstream reset the stream (code ${code ?? NGHTTP2_NO_ERROR})`) : new StreamError('ECONNRESET_BEFORE_CONNECT', 'upstream connection closed'));
      }
      this.session.streamDone();
    });
    handler.onRequestStart?.(this, {});
    if (this.aborted || body === null || body === undefined) return;
    if (Buffer.isBuffer(body)) {
      stream.end(body);
      return;
    }
    const resume = (): void => {
      body.resume();
    };
    body.on('data', (c: Buffer) => {
      if (this.done || this.aborted) return;
      if (!stream.write(c)) {
        body.pause();
        stream.once('drain', resume);
      }
    });
    body.once('end', () => {
      if (!this.done && !this.aborted) stream.end();
    });
    body.once('error', () => this.abort(new Error('request body aborted')));
    body.resume();
  }

  /**
   * The error a router reads: before the connection came up a TLS or TCP failure is a
   * connection failure (UF), as in Envoy; a refused stream keeps its code (retried).
   */
  private errorOf(err: NodeJS.ErrnoException): Error {
    if (/REFUSED_STREAM/.test(err.message)) return err;
    if (this.session.wasConnected) return err.code === 'ERR_HTTP2_STREAM_ERROR' ? err : new StreamError('UND_ERR_SOCKET', err.message);
    if (this.session.tls) return tlsErrorBeforeReady(err);
    return isConnectCode(err.code) ? err : new StreamError('ECONNRESET_BEFORE_CONNECT', err.message);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    const h = this.handler;
    this.handler = undefined;
    h?.onResponseEnd?.(this, this.trailers);
  }

  private fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    const h = this.handler;
    this.handler = undefined;
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    if (h !== undefined && !this.aborted) h.onResponseError?.(this, err);
  }

  // ---- controller (the router's attempt calls these) ---------------------------

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.done = true;
    this.handler = undefined;
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
  }

  pause(): void {
    this.paused = true;
    this.stream.pause();
  }

  resume(): void {
    this.paused = false;
    this.stream.resume();
  }
}

/** Response headers or trailers without pseudo-headers, as undici hands them over. */
function plain(headers: http2.IncomingHttpHeaders): Record<string, string | string[]> {
  const out = newHeaderMap() as Record<string, string | string[]>;
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* ':' */) continue;
    const v = headers[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
