import * as net from 'node:net';
import type { Dispatcher } from 'undici';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import { isHopByHop, newHeaderMap, type HeaderMap } from '../http/headers.js';
import { H2HostPool, h2PoolFor } from '../upstream/h2-pool.js';
import { idleOptions } from '../upstream/pool.js';
import { headWriter } from './head.js';
import { holdUntilTurnEnds } from './turn-batch.js';
import { headerName, headerValue, lowerName } from './names.js';
import { HTTP1_ALPN, tlsErrorBeforeReady, UpstreamSocketError as SocketError, UpstreamSocketFactory } from '../upstream/socket-factory.js';
import { HPE_OK, HPE_PAUSED, Parser, ParserType, type ParserEvents } from './llhttp.js';

/**
 * HTTP/1.1 upstream connections on raw sockets, pooled per host (keep-alive, one request
 * per connection at a time), responses parsed by llhttp in strict mode. It speaks the
 * router's side of undici's dispatch API (`dispatch(options, handler)` with the
 * onRequestStart/onResponseStart/... handler and a pause/resume/abort controller), so
 * the router's attempts, retries and timeouts run unchanged on either pool.
 *
 * Hosts reached over TCP at an IP address use it, plaintext or TLS (the host's transport
 * socket, UpstreamSocketFactory); HTTP/2 clusters get the core-API HTTP/2 pool; pipe
 * endpoints and hostnames keep undici (rawDispatcherFor returns undefined for them).
 * Responses are read with net's `onread` into a reused buffer (no Readable push and no
 * new Buffer per read); body chunks are copied out of it.
 */

type Handler = Dispatcher.DispatchHandler;
type Body = Buffer | NodeJS.ReadableStream | null | undefined;

/** The idle sweep runs at least this often, so a removed host's idle connections close within it. */
const SWEEP_MS = 5_000;
/** Request bodies up to this size leave in the same write as the head. */
const COALESCE_MAX = 16 * 1024;

/** Kept in Host.directPool when the host needs undici: for which cluster config and endpoint that was decided. */
interface UndiciOnly {
  readonly config: ClusterRuntime['config'];
  readonly endpoint: Host['endpoint'];
  close(): void;
}

function undiciOnly(config: ClusterRuntime['config'], endpoint: Host['endpoint']): UndiciOnly {
  return { config, endpoint, close: () => undefined };
}

/**
 * The raw pool of a host (the HTTP/2 pool for an HTTP/2 cluster), or undefined when the host
 * needs undici (pipes, internal addresses, hostnames). Decided once per host and again when the cluster's config (a CDS
 * update: transport sockets, protocol options) or the host's endpoint changes; a TLS host's
 * pool is replaced when its certificates or trust rotate (new connections use the new
 * material, the old pool's connections finish their request and close).
 */
export function rawDispatcherFor(cluster: ClusterRuntime, host: Host): RawHostPool | H2HostPool | undefined {
  // HTTP/2 clusters: node's core http2 API (proxy/src/upstream/h2-pool.ts), not undici.
  if (cluster.config.upstreamProtocol === 'HTTP2') return h2PoolFor(cluster, host);
  const p = host.directPool as RawHostPool | UndiciOnly | undefined;
  if (p !== undefined && p.config === cluster.config && p.endpoint === host.endpoint) {
    if (!(p instanceof RawHostPool)) return undefined;
    if (p.sockets.current) return p;
  }
  if (p instanceof RawHostPool) p.close();
  const e = host.endpoint;
  const eligible = net.isIP(e.address) !== 0 && e.port > 0;
  const next = eligible ? new RawHostPool(cluster, host) : undiciOnly(cluster.config, e);
  host.directPool = next;
  return next instanceof RawHostPool ? next : undefined;
}

/**
 * The pool for a request that arrived over HTTP/2. A cluster with
 * use_downstream_protocol_config (Istio's outbound clusters of ports whose protocol is
 * sniffed) answers it over HTTP/2 too, as Envoy does: gRPC through such a port keeps its
 * trailers. Every other cluster: as rawDispatcherFor.
 */
export function rawDispatcherForH2(cluster: ClusterRuntime, host: Host): RawHostPool | H2HostPool | undefined {
  const p = rawDispatcherFor(cluster, host);
  return cluster.config.upstreamProtocol === 'USE_DOWNSTREAM' && p instanceof RawHostPool ? p.h2Sibling() : p;
}

/** The raw pool a host already has (none is made): for admin views and tests. */
export function existingRawPool(host: Host): RawHostPool | undefined {
  const p = host.directPool;
  return p instanceof RawHostPool ? p : undefined;
}

class ParserError extends Error {
  override readonly name = 'HTTPParserError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export class RawHostPool {
  readonly endpoint: Host['endpoint'];
  /** The cluster config this pool was made for (a CDS update makes a new pool). */
  readonly config: ClusterRuntime['config'];
  /**
   * Idle connections, a stack in idle[0, idleCount): the array keeps its length, because
   * popping it empty lets V8 drop its backing store and every release would allocate a new one.
   */
  private readonly idle: (UpstreamConnection | undefined)[] = [];
  private idleCount = 0;
  private sweeper: NodeJS.Timeout | undefined;
  /**
   * An idle connection unused this long is closed: the cluster's
   * common_http_protocol_options.idle_timeout, else 30 s (the same rule as undici's pool).
   */
  private readonly idleCloseMs: number;
  /** A quarter of the idle limit (a connection closes at most 25% late), at most SWEEP_MS. */
  private readonly sweepMs: number;
  /** Opens this host's connections: plaintext, or TLS with the host's transport socket. */
  readonly sockets: UpstreamSocketFactory;
  /** Replaced (rotation, CDS update): connections that finish their request close instead of idling. */
  private closing = false;
  /** USE_DOWNSTREAM clusters: the same host's HTTP/2 pool, for requests that arrived over HTTP/2. */
  private h2: H2HostPool | undefined;

  constructor(readonly cluster: ClusterRuntime, readonly host: Host) {
    this.endpoint = host.endpoint;
    this.config = cluster.config;
    this.sockets = new UpstreamSocketFactory(cluster, host, cluster.transportFor(host).tls, HTTP1_ALPN);
    this.idleCloseMs = idleOptions(cluster.config.upstreamIdleTimeout).keepAliveTimeout;
    this.sweepMs = Math.max(10, Math.min(SWEEP_MS, Math.floor(this.idleCloseMs / 4)));
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Handler): boolean {
    let c: UpstreamConnection | undefined;
    while (c === undefined && this.idleCount > 0) {
      c = this.idle[--this.idleCount];
      this.idle[this.idleCount] = undefined;
      if (c !== undefined && c.closed) c = undefined;
    }
    c ??= new UpstreamConnection(this);
    c.start(opts.method, opts.path, opts.headers as HeaderMap, opts.body as Body, handler);
    return true;
  }

  /** @internal a connection finished its request and may serve the next. */
  release(c: UpstreamConnection): void {
    if (this.closing) {
      c.destroy();
      return;
    }
    this.idle[this.idleCount++] = c;
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.sweep(), this.sweepMs);
      this.sweeper.unref();
    }
  }

  /** @internal */
  forget(c: UpstreamConnection): void {
    const idle = this.idle;
    const i = idle.indexOf(c);
    if (i < 0 || i >= this.idleCount) return;
    for (let j = i + 1; j < this.idleCount; j++) idle[j - 1] = idle[j];
    idle[--this.idleCount] = undefined;
  }

  /** The idle connections now (a copy: destroying one changes the stack). */
  private idleNow(): UpstreamConnection[] {
    return this.idle.slice(0, this.idleCount) as UpstreamConnection[];
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of this.idleNow()) if (now - c.idleSince >= this.idleCloseMs || this.host.removed) c.destroy();
    if (this.idleCount === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** The HTTP/2 pool beside this one (same host, config and TLS material), made on first use. */
  h2Sibling(): H2HostPool {
    return (this.h2 ??= new H2HostPool(this.cluster, this.host, this.sockets.tlsSource));
  }

  close(): void {
    this.closing = true;
    this.h2?.close();
    const all = this.idleNow();
    this.idle.fill(undefined);
    this.idleCount = 0;
    for (const c of all) c.destroy();
  }
}

const NO_TRAILERS: Record<string, string | string[]> = Object.freeze({}) as Record<string, string | string[]>;

/** One upstream socket; implements the controller the router's attempt holds. */
class UpstreamConnection implements ParserEvents, Dispatcher.DispatchController {
  private readonly socket: net.Socket;
  private readonly parser: Parser;
  private handler: Handler | undefined;
  private method = 'GET';
  private connected = false;
  closed = false;
  idleSince = 0;
  private requests = 0;
  /** The request's last byte was written. */
  private requestSent = false;
  private responseStarted = false;
  private raw: string[] = [];
  private lastWasValue = false;
  private headersDone = false;
  private status = 0;
  aborted = false;
  paused = false;
  reason: Error | null = null;

  constructor(private readonly pool: RawHostPool) {
    const cluster = pool.cluster;
    // Responses are read into a buffer the socket reuses (onRead), not through 'data' events.
    this.socket = pool.sockets.open(() => {
      this.connected = true;
      this.socket.setTimeout(0);
    }, (n, buf) => this.onRead(n, buf));
    this.parser = new Parser(ParserType.Response, this);
    cluster.stats.upstream_cx_total.inc();
    cluster.stats.upstream_cx_http1_total.inc();
    cluster.stats.upstream_cx_active.inc();
    const timeout = cluster.config.connectTimeout;
    if (timeout > 0) this.socket.setTimeout(timeout, () => this.fail(new SocketError('UND_ERR_CONNECT_TIMEOUT', 'connect timeout')));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.fail(this.connected ? new SocketError('UND_ERR_SOCKET', err.message) : this.pool.sockets.isTls ? tlsErrorBeforeReady(err) : err));
    this.socket.once('close', () => this.onClose());
  }

  start(method: string, path: string, headers: HeaderMap, body: Body, handler: Handler): void {
    this.handler = handler;
    this.method = method;
    this.requestSent = false;
    this.responseStarted = false;
    this.headersDone = false;
    this.aborted = false;
    this.paused = false;
    this.reason = null;
    this.requests++;
    handler.onRequestStart?.(this, {});
    if (this.aborted) return;
    const socket = this.socket;
    holdUntilTurnEnds(socket);
    const w = headWriter.start();
    try {
      w.requestLine(method, path).headers(headers, isFraming);
    } catch (e) {
      this.handler = undefined;
      this.destroy();
      throw e;
    }
    if (body === null || body === undefined) {
      if (method === 'POST' || method === 'PUT' || method === 'PATCH') w.text('content-length: 0\r\n');
      socket.write(w.text('\r\n').take());
      this.requestSent = true;
      return;
    }
    if (Buffer.isBuffer(body)) {
      // Head and body in one send; a large body follows the head instead of being copied.
      w.text('content-length: ').text(String(body.length)).text('\r\n\r\n');
      if (body.length <= COALESCE_MAX) {
        const out = w.take(body.length);
        body.copy(out, out.length - body.length);
        socket.write(out);
      } else {
        socket.cork();
        socket.write(w.take());
        socket.write(body);
        socket.uncork();
      }
      this.requestSent = true;
      return;
    }
    const cl = headers['content-length'];
    const chunked = cl === undefined;
    if (chunked) w.text('transfer-encoding: chunked\r\n\r\n');
    else w.header('content-length', String(cl)).text('\r\n');
    socket.write(w.take());
    this.streamBody(body, chunked);
  }

  /** The request body as it arrives, with back-pressure both ways. */
  private streamBody(body: NodeJS.ReadableStream, chunked: boolean): void {
    const socket = this.socket;
    const resume = () => body.resume();
    body.on('data', (c: Buffer) => {
      if (this.aborted || this.closed) return;
      let ok: boolean;
      if (chunked) {
        if (c.length === 0) return;
        socket.cork();
        socket.write(`${c.length.toString(16)}\r\n`, 'latin1');
        socket.write(c);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else ok = socket.write(c);
      if (!ok) {
        body.pause();
        socket.once('drain', resume);
      }
    });
    body.once('end', () => {
      if (this.aborted || this.closed) return;
      if (chunked) socket.write('0\r\n\r\n', 'latin1');
      this.requestSent = true;
    });
    body.once('error', () => this.abort(new Error('request body aborted')));
    body.resume();
  }

  /**
   * `n` bytes at the start of `buf`, which the socket's next read overwrites: everything
   * kept from them is copied before this returns (header strings, body chunks in onBody).
   */
  private onRead(n: number, buf: Buffer): boolean {
    if (!this.closed) this.onData(n === buf.length ? buf : buf.subarray(0, n));
    return true;
  }

  private onData(d: Buffer): void {
    if (this.handler === undefined) {
      // Bytes from an idle connection: the upstream broke the protocol; never reuse it.
      this.destroy();
      return;
    }
    const rc = this.parser.execute(d);
    if (rc === HPE_OK || this.aborted || this.closed) return;
    if (rc === HPE_PAUSED) {
      // Paused after a complete response: anything more is an unsolicited response.
      this.parser.resume();
      if (this.parser.stoppedAt() < d.length) this.destroy();
      return;
    }
    this.fail(new ParserError(Parser.errnoName(rc), this.parser.errorReason()));
  }

  private onEnd(): void {
    // A close-delimited body ends here; anything else incomplete is a reset.
    if (this.handler !== undefined && this.responseStarted) {
      const rc = this.parser.finish();
      if (rc !== HPE_OK && this.handler !== undefined) this.fail(new SocketError('UND_ERR_SOCKET', 'upstream closed mid-response'));
    }
  }

  private onClose(): void {
    if (!this.closed) {
      this.closed = true;
      const s = this.pool.cluster.stats;
      s.upstream_cx_active.dec();
      s.upstream_cx_destroy.inc();
    }
    this.pool.forget(this);
    this.parser.free();
    if (this.handler !== undefined) this.fail(new SocketError(this.connected ? 'UND_ERR_SOCKET' : 'ECONNRESET_BEFORE_CONNECT', 'upstream connection closed'));
  }

  private fail(err: Error): void {
    const h = this.handler;
    this.handler = undefined;
    this.destroy();
    if (h !== undefined && !this.aborted) h.onResponseError?.(this, err);
  }

  destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy();
  }

  // ---- controller (the router's attempt calls these) ---------------------------

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.handler = undefined;
    this.destroy();
  }

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket.resume();
  }

  // ---- llhttp events -------------------------------------------------------------

  onMessageBegin(): void {
    this.raw = [];
    this.lastWasValue = false;
    this.headersDone = false;
  }

  onUrl(): void {}

  onHeaderField(chunk: Buffer, start: number, end: number): void {
    const s = headerName(chunk, start, end);
    if (!this.lastWasValue && this.raw.length % 2 === 1) this.raw[this.raw.length - 1] += s;
    else this.raw.push(s);
    this.lastWasValue = false;
  }

  onHeaderValue(chunk: Buffer, start: number, end: number): void {
    const s = headerValue(chunk, start, end);
    if (this.lastWasValue) this.raw[this.raw.length - 1] += s;
    else this.raw.push(s);
    this.lastWasValue = true;
  }

  onHeadersComplete(status: number): number {
    if (this.raw.length % 2 === 1) this.raw.push('');
    this.headersDone = true;
    this.status = status;
    const h = this.handler;
    if (status < 200) return 0;
    this.responseStarted = true;
    const headers = collectResponse(this.raw);
    this.raw = [];
    h?.onResponseStart?.(this, status, headers, '');
    return this.method === 'HEAD' ? 1 : 0;
  }

  onBody(chunk: Buffer, start: number, end: number): void {
    if (this.handler === undefined) return;
    // A copy: `chunk` is the socket's read buffer, and a body chunk may be kept past this
    // read (a write held to the end of the turn, a buffering filter, a slow client's queue).
    const out = Buffer.allocUnsafe(end - start);
    chunk.copy(out, 0, start, end);
    this.handler.onResponseData?.(this, out);
  }

  onMessageComplete(): number {
    if (this.status < 200) return HPE_OK; // 1xx: the final response follows
    const h = this.handler;
    this.handler = undefined;
    const trailers = this.raw.length > 0 ? collect(this.raw) : NO_TRAILERS;
    this.raw = [];
    const max = this.pool.cluster.config.maxRequestsPerConnection;
    const reusable = this.requestSent && !this.aborted && this.parser.shouldKeepAlive() && !(max !== undefined && max > 0 && this.requests >= max);
    if (reusable) {
      this.idleSince = performance.now();
      if (this.paused) this.resume();
      this.pool.release(this);
    } else this.destroy();
    h?.onResponseEnd?.(this, trailers);
    return HPE_PAUSED;
  }
}

function isFraming(name: string): boolean {
  return name === 'content-length' || name === 'transfer-encoding';
}

/**
 * A response's header object without the headers the exchange core strips from every
 * response (hop-by-hop and those Connection names): left out here, they need not be
 * set to undefined and deleted there, which would turn the object into a slow
 * dictionary for everything that reads it afterwards (filters, the head writer).
 */
function collectResponse(raw: string[]): Record<string, string | string[]> {
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (lowerName(raw[i]!) !== 'connection') continue;
    connection = connection === undefined ? raw[i + 1]! : `${connection},${raw[i + 1]!}`;
  }
  // The usual values name no other header.
  if (connection === 'keep-alive' || connection === 'close') connection = undefined;
  return collect(raw, true, connection);
}

/** Header pairs into an object (repeats as arrays); `dropHopByHop` leaves out what the exchange core would strip. */
function collect(raw: string[], dropHopByHop = false, connection?: string): Record<string, string | string[]> {
  const h = newHeaderMap() as Record<string, string | string[]>;
  for (let i = 0; i < raw.length; i += 2) {
    const k = lowerName(raw[i]!);
    if (dropHopByHop && isHopByHop(k, connection)) continue;
    const v = raw[i + 1]!;
    const cur = h[k];
    if (cur === undefined) h[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else h[k] = [cur, v];
  }
  return h;
}
