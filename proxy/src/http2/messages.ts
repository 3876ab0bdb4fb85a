import type * as net from 'node:net';
import * as http2 from 'node:http2';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import { newHeaderMap, type HeaderMap } from '../http/headers.js';
import type { H2SessionState, IdleWatched } from './sweep.js';
import { trailersPossible } from './trailer-hint.js';

/**
 * The request and response of one HTTP/2 stream on node's core http2 API. They carry
 * exactly the members the shared exchange core (proxy/src/http/connection-manager.ts)
 * and the request-body steps use of node's compat Http2ServerRequest /
 * Http2ServerResponse, nothing else: no Readable and no Stream per request, no socket
 * Proxy. The ServerHttp2Stream itself is the body source and sink (its own flow control:
 * pausing it withholds WINDOW_UPDATE from the client; its write() says when the client's
 * window is full).
 */

/** The upstream pool the router uses for a host, or undefined for the cluster's undici pool. */
export type UpstreamDispatcherChoice = (cluster: ClusterRuntime, host: Host) => { dispatch: import('undici').Dispatcher['dispatch'] } | undefined;

type Listener = (...args: unknown[]) => void;

/** The upstream pool chosen for an HTTP/2 downstream request; undefined for any other request (undici). */
export function upstreamDispatcherOf(req: unknown): UpstreamDispatcherChoice | undefined {
  return req instanceof H2Request ? req.dispatcher : undefined;
}

const { HTTP2_HEADER_STATUS, NGHTTP2_INTERNAL_ERROR } = http2.constants;

const kSocket = Symbol('pilotfish.h2SessionSocket');

/**
 * Records the socket a session serves. node's `session.socket` is a Proxy whose every
 * property read runs a trap (~4% of an h2c request's CPU when read per request).
 */
export function setSessionSocket(session: http2.Http2Session, socket: net.Socket): void {
  (session as unknown as Record<symbol, net.Socket>)[kSocket] = socket;
}

function sessionSocket(session: http2.Http2Session): net.Socket {
  return (session as unknown as Record<symbol, net.Socket | undefined>)[kSocket] ?? (session.socket as net.Socket);
}

/**
 * A request as the 'stream' event delivered it. `headers` holds node's header entries
 * (pseudo-headers included) in a fast-mode header map (request-headers.ts), used as is by
 * the exchange core. The body is the stream's: pause/resume go
 * to it (flow control), and its events are re-emitted from here, attached only when
 * someone listens (a GET costs nothing). Listeners are called without the stream as
 * `this`: undici destroys `this` on a body's 'end', which must not be the HTTP/2 stream
 * (its response is still to come).
 */
export class H2Request {
  readonly httpVersion = '2.0';
  readonly method: string;
  /** :path (undefined for a plain CONNECT, as node's compat request has it). */
  url: string | undefined;
  /** The session's socket (TCP or TLS): addresses, TLS state, the listener's connection info. */
  readonly socket: net.Socket;
  private listeners: { name: string; fn: Listener; once: boolean }[] | undefined;
  /** Stream events already re-emitted from here. */
  private forwarded: string[] | undefined;
  /** The stream's response: request body data is activity for its stream idle timer. */
  response: H2Response | undefined;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    readonly headers: HeaderMap,
    readonly rawHeaders: string[],
    /** Which upstream pool serves this request's attempts (the raw HTTP/1.1 pool, or undici). */
    readonly dispatcher: UpstreamDispatcherChoice | undefined,
  ) {
    this.method = headers[':method'] as string;
    this.url = headers[':path'] as string | undefined;
    this.socket = sessionSocket(stream.session!);
  }

  /** The client ended its side (END_STREAM seen), or the stream is gone. */
  get complete(): boolean {
    return this.stream.readableEnded || this.stream.destroyed;
  }

  on(name: string, fn: Listener): this {
    return this.add(name, fn, false);
  }

  once(name: string, fn: Listener): this {
    return this.add(name, fn, true);
  }

  private add(name: string, fn: Listener, once: boolean): this {
    (this.listeners ??= []).push({ name, fn, once });
    const f = (this.forwarded ??= []);
    if (!f.includes(name)) {
      f.push(name);
      // A 'data' listener starts the stream's flow unless it was paused, as on any Readable.
      if (name === 'data') {
        this.stream.on(name, (chunk: unknown) => {
          this.response?.touch();
          this.emit(name, chunk);
        });
      } else this.stream.on(name, (...args: unknown[]) => this.emit(name, ...args));
    }
    return this;
  }

  off(name: string, fn: Listener): this {
    const l = this.listeners;
    if (l === undefined) return this;
    const i = l.findIndex((e) => e.name === name && e.fn === fn);
    if (i >= 0) l.splice(i, 1);
    return this;
  }

  removeListener(name: string, fn: Listener): this {
    return this.off(name, fn);
  }

  emit(name: string, ...args: unknown[]): boolean {
    const l = this.listeners;
    if (l === undefined) return false;
    let any = false;
    for (const e of l.slice()) {
      if (e.name !== name) continue;
      any = true;
      if (e.once) {
        const i = l.indexOf(e);
        if (i >= 0) l.splice(i, 1);
      }
      e.fn(...args);
    }
    return any;
  }

  pause(): this {
    this.stream.pause();
    return this;
  }

  resume(): this {
    this.stream.resume();
    return this;
  }

  pipe<T extends NodeJS.WritableStream>(dest: T): T {
    return this.stream.pipe(dest);
  }
}

/** Headers HTTP/2 forbids in a response (RFC 9113 §8.2.2); node's compat layer drops them too. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** A header object HTTP/2 can carry: connection-specific names and undefined values dropped, names lowercase. */
export function h2Headers(headers: HeaderMap | Record<string, string | string[]>, into: http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders {
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
    if (name === 'te' && v !== 'trailers') continue;
    into[name] = v;
  }
  return into;
}

const kResponse = Symbol('pilotfish.h2Response');
const WAIT_FOR_TRAILERS: http2.ServerStreamResponseOptions = Object.freeze({ waitForTrailers: true });
const NO_TRAILERS: http2.ServerStreamResponseOptions = Object.freeze({});

type StreamWithResponse = http2.ServerHttp2Stream & { [kResponse]?: H2Response };

function onStreamClose(this: StreamWithResponse): void {
  const res = this[kResponse];
  if (res !== undefined) res.closed();
}

function onWantTrailers(this: StreamWithResponse): void {
  const res = this[kResponse];
  res?.sendTrailers();
}

/**
 * The response written by the exchange core. writeHead() sends HEADERS at once (so a
 * header node refuses throws there, where the core turns it into a 502, as with the
 * compat layer); bodies are the stream's writes; trailers go out when the stream asks
 * for them (waitForTrailers), an empty trailer set as an empty END_STREAM DATA frame.
 */
export class H2Response implements IdleWatched {
  headersSent = false;
  finished = false;
  private trailers: http2.OutgoingHttpHeaders | undefined;
  private closeListeners: Listener[] | undefined;
  private finishListeners: Listener[] | undefined;
  /** stream_idle_timeout on the chain's sweep (sweep.ts): armed while idleCb is set. */
  lastActivity = 0;
  active = false;
  idlePrev: IdleWatched | undefined = undefined;
  idleNext: IdleWatched | undefined = undefined;
  private idleMs = 0;
  private idleCb: (() => void) | undefined;
  /** The stream's unsent bytes when the sweep last found it due (node's progress check). */
  private queuedAtCheck = 0;
  /**
   * The exchange's idle timer is swept until it is disarmed; from then on the stream's
   * timer is node's again: a tunnel (http/upgrade.ts) arms its own on the stream, and its
   * bytes flow by pipe(), past touch().
   */
  private sweepIdle = true;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    /** The request carried te: trailers. */
    private readonly trailersAsked: boolean,
    /** The session's sweep state (counts its open streams for idle_timeout); undefined: node's timers. */
    private readonly conn?: H2SessionState,
  ) {
    (stream as StreamWithResponse)[kResponse] = this;
    // 'close' comes once: a plain listener spares once()'s wrapper per stream.
    stream.on('close', onStreamClose);
    conn?.streamOpened();
  }

  /**
   * The stream idle timer (node's stream.setTimeout, as the exchange core arms it): `cb`
   * once the stream saw no read or write for `ms`; 0 disarms it. On the session's sweep
   * when there is one, else node's timer.
   */
  setTimeout(ms: number, cb?: () => void): this {
    const conn = this.conn;
    if (conn === undefined || !this.sweepIdle) {
      this.stream.setTimeout(ms, cb);
      return this;
    }
    if (ms > 0 && cb !== undefined && !this.stream.destroyed) {
      const armed = this.idleCb !== undefined;
      this.idleMs = ms;
      this.idleCb = cb;
      this.active = false;
      this.lastActivity = performance.now();
      if (!armed) conn.sweep.watch(this);
    } else {
      this.disarmIdle();
      this.sweepIdle = false;
    }
    return this;
  }

  /** Takes the stream off the sweep (armed or not). */
  private disarmIdle(): void {
    if (this.idleCb === undefined) return;
    this.idleCb = undefined;
    this.conn?.sweep.unwatch(this);
  }

  /** A read or write on the stream: its idle timer starts over (at the sweep's next pass, see sweep.ts). */
  touch(): void {
    this.active = true;
  }

  /** @internal the sweep: fires the idle timer when due. */
  idleCheck(now: number): void {
    if (now - this.lastActivity < this.idleMs) return;
    // As node's timer: a response still being handed to the session is making progress.
    const queued = this.stream.writableLength;
    if (queued > 0 && queued !== this.queuedAtCheck) {
      this.queuedAtCheck = queued;
      this.lastActivity = now;
      return;
    }
    const cb = this.idleCb;
    this.disarmIdle();
    cb?.();
  }

  writeHead(status: number, headers: HeaderMap | Record<string, string | string[]>): this {
    if (this.headersSent) return this;
    const into = newHeaderMap() as http2.OutgoingHttpHeaders;
    into[HTTP2_HEADER_STATUS] = status;
    const out = h2Headers(headers, into);
    const stream = this.stream;
    if (stream.destroyed) {
      this.headersSent = true;
      return this;
    }
    // Trailers can follow a body of unknown length (chunked HTTP/1.1, HTTP/2), any body of
    // an HTTP/2 upstream (trailer-hint.ts; Envoy forwards them whatever `te` said), or any
    // body when the client asked for them (te: trailers, as gRPC clients do). Only then
    // does the stream wait for them: otherwise the last DATA frame carries END_STREAM,
    // where waiting costs an event and an empty DATA frame per response.
    const wait = out['content-length'] === undefined || this.trailersAsked || trailersPossible(headers);
    stream.respond(out, wait ? WAIT_FOR_TRAILERS : NO_TRAILERS);
    this.headersSent = true;
    this.touch();
    if (wait) stream.once('wantTrailers', onWantTrailers);
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.finished) return true;
    if (!this.headersSent) this.writeHead(200, {});
    const stream = this.stream;
    if (stream.destroyed) return true;
    this.touch();
    return stream.write(chunk);
  }

  addTrailers(t: Record<string, string>): void {
    this.trailers = h2Headers(t, newHeaderMap() as http2.OutgoingHttpHeaders);
  }

  end(body?: Buffer | string): this {
    if (this.finished) return this;
    if (!this.headersSent) this.writeHead(200, {});
    this.finished = true;
    const stream = this.stream;
    this.touch();
    if (!stream.destroyed) {
      if (body !== undefined && body.length > 0) stream.end(body);
      else stream.end();
    }
    const l = this.finishListeners;
    if (l !== undefined) {
      this.finishListeners = undefined;
      for (const fn of l) fn();
    }
    return this;
  }

  /** @internal the stream asked for trailers (after the last DATA was queued). */
  sendTrailers(): void {
    const stream = this.stream;
    if (stream.destroyed) return;
    try {
      stream.sendTrailers(this.trailers ?? {});
    } catch {
      // Trailers HTTP/2 cannot carry: the response ends without them.
      try {
        stream.sendTrailers({});
      } catch {
        stream.close(NGHTTP2_INTERNAL_ERROR);
      }
    }
  }

  /** @internal the stream closed (completed or reset by either side). */
  closed(): void {
    this.stream.off('wantTrailers', onWantTrailers);
    (this.stream as StreamWithResponse)[kResponse] = undefined;
    this.disarmIdle();
    this.conn?.streamClosed();
    const l = this.closeListeners;
    if (l === undefined) return;
    this.closeListeners = undefined;
    for (const fn of l) fn();
  }

  /** 'close' (the stream closed), 'finish' (end() called) and 'drain' (the stream's) are the events the core listens to. */
  once(name: string, fn: Listener): this {
    if (name === 'close') (this.closeListeners ??= []).push(fn);
    else if (name === 'finish') (this.finishListeners ??= []).push(fn);
    else this.stream.once(name, fn);
    return this;
  }

  on(name: string, fn: Listener): this {
    if (name === 'close' || name === 'finish') return this.once(name, fn);
    this.stream.on(name, fn);
    return this;
  }

  off(name: string, fn: Listener): this {
    const list = name === 'close' ? this.closeListeners : name === 'finish' ? this.finishListeners : undefined;
    if (list !== undefined) {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    } else if (name !== 'close' && name !== 'finish') this.stream.off(name, fn);
    return this;
  }

  removeListener(name: string, fn: Listener): this {
    return this.off(name, fn);
  }
}
