import type * as net from 'node:net';
import type { ServerResponse, IncomingMessage } from 'node:http';
import type { ConnectionManager } from '../http/connection-manager.js';
import { CONNECTION_EXPIRED } from '../http/listener.js';
import { newHeaderMap, type HeaderMap } from '../http/headers.js';
import { HPE_OK, HPE_PAUSED, HPE_PAUSED_UPGRADE, Parser, ParserType, type ParserEvents } from './llhttp.js';
import { RawRequest, RawResponse, type RequestOwner, type ResponseOwner } from './messages.js';
import { headerName, headerValue, lowerName } from './names.js';

/** Headers of which node keeps only the first (its IncomingMessage rules, which the node path has). */
const FIRST_WINS = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent']);

/** Adds a header the way node's IncomingMessage does (joinDuplicateHeaders: false). */
export function addHeader(h: HeaderMap, name: string, value: string): void {
  const cur = h[name];
  if (cur === undefined) {
    h[name] = name === 'set-cookie' ? [value] : value;
    return;
  }
  if (name === 'set-cookie') (cur as string[]).push(value);
  else if (FIRST_WINS.has(name)) return;
  else h[name] = `${cur as string}${name === 'cookie' ? '; ' : ', '}${value}`;
}

/** What a connection needs from its chain. */
export interface ConnectionOwner {
  currentManager(): ConnectionManager;
  /** Head size limit in bytes (max_request_headers_kb). */
  readonly maxHeaderBytes: number;
  isDraining(): boolean;
  closed(c: RawConnection): void;
}

const enum Phase { Idle, Head, Body, Waiting, Upgraded, Closed }

const CLIENT_ERROR_LINGER_MS = 1000;
const EMPTY = Buffer.alloc(0);
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

/**
 * One downstream HTTP/1.1 connection on the raw path: bytes in, llhttp (request mode)
 * parses, one request at a time goes to the connection manager; pipelined requests
 * wait in the socket (it is paused) until the response before them is done. Timers are
 * not per connection: the chain's sweep reads the timestamps kept here.
 */
export class RawConnection implements ParserEvents, RequestOwner, ResponseOwner {
  private readonly parser: Parser;
  private phase = Phase.Idle;
  private pending: Buffer | undefined;
  private running = false;
  /** Head being parsed. */
  private url = '';
  private raw: string[] = [];
  private lastWasValue = false;
  private headBytes = 0;
  private keepAlive = true;
  private upgrade = false;
  req: RawRequest | undefined;
  res: RawResponse | undefined;
  /** Timestamps (performance.now()) for the chain's sweep. */
  readonly openedAt: number;
  lastActivity: number;
  headStartedAt = 0;
  requestStartedAt = 0;
  streamIdleMs = 0;
  streamIdleCb: (() => void) | undefined;
  /** Set by drain(): the current response is the last on this connection. */
  private closing = false;
  /** The request's body reader is paused. */
  private bodyHeld = false;
  /** A request was prepared in this read and is not yet with the connection manager. */
  private undispatched = false;
  /** The client sent FIN: no request follows the ones already read. */
  private readEnded = false;

  constructor(readonly socket: net.Socket, private readonly owner: ConnectionOwner) {
    this.parser = new Parser(ParserType.Request, this);
    this.openedAt = this.lastActivity = performance.now();
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', noop);
    socket.on('end', this.onEnd);
    socket.once('close', this.onClose);
  }

  get idle(): boolean {
    return this.phase === Phase.Idle && this.pending === undefined;
  }

  get busy(): boolean {
    return this.phase !== Phase.Idle && this.phase !== Phase.Closed;
  }

  /** Closes now when idle; else the current response is the last. */
  drain(): void {
    this.closing = true;
    if (this.phase === Phase.Idle) this.socket.destroy();
    else if (this.res !== undefined && !this.res.headersSent) this.res.shouldKeepAlive = false;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastActivity = performance.now();
    if (this.phase === Phase.Upgraded || this.phase === Phase.Closed) return;
    this.pending = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    if (!this.running) this.run();
  };

  private readonly onDrain = (): void => {
    this.lastActivity = performance.now();
    this.res?.emit('drain');
  };

  private readonly onEnd = (): void => {
    // The client half-closed: a request still being read is incomplete; an idle connection
    // is done; requests already read are answered, then the connection closes.
    this.readEnded = true;
    if (this.phase === Phase.Head || (this.phase === Phase.Idle && this.pending === undefined)) this.socket.destroy();
    else if (this.phase === Phase.Body) this.req?.abort();
  };

  private readonly onClose = (): void => {
    const wasBusy = this.phase !== Phase.Idle && this.phase !== Phase.Closed && this.phase !== Phase.Upgraded;
    this.phase = Phase.Closed;
    this.parser.free();
    this.pending = undefined;
    if (wasBusy) {
      this.req?.abort();
      if (this.res !== undefined && !this.res.finished) this.res.emit('close');
    }
    this.owner.closed(this);
  };

  /** Parses what is pending, one message at a time; then hands a new request on. */
  private run(): void {
    this.running = true;
    try {
      this.parse();
    } finally {
      this.running = false;
    }
    if (this.undispatched && this.phase !== Phase.Closed) {
      this.undispatched = false;
      this.dispatch();
    }
  }

  private parse(): void {
    {
      while (this.pending !== undefined && (this.phase === Phase.Idle || this.phase === Phase.Head || this.phase === Phase.Body)) {
        const chunk = this.pending;
        this.pending = undefined;
        const rc = this.parser.execute(chunk);
        if (rc === HPE_OK) {
          if (this.phase === Phase.Head && this.headBytes > this.owner.maxHeaderBytes) return this.clientError('HPE_HEADER_OVERFLOW');
          continue;
        }
        const at = this.parser.stoppedAt();
        const rest = at < chunk.length ? chunk.subarray(at) : undefined;
        if (rc === HPE_PAUSED) {
          this.parser.resume();
          this.pending = rest;
          if (this.phase === Phase.Head) {
            // The request goes to the connection manager once this read is parsed to its end
            // (or to the end of the message): a framing error in the same read refuses it
            // before any byte of it is forwarded, as on the node path.
            if (!this.prepare()) return;
            // A message without a body completes in llhttp without another byte: run it on nothing.
            if (this.pending === undefined) this.pending = EMPTY;
          }
          continue;
        }
        if (rc === HPE_PAUSED_UPGRADE) {
          // The tunnel's first bytes stay pending; dispatch() hands them over.
          this.pending = rest;
          this.phase = Phase.Waiting;
          return;
        }
        return this.clientError(Parser.errnoName(rc));
      }
      this.updateReading();
    }
  }

  // ---- llhttp events ---------------------------------------------------------

  onMessageBegin(): void {
    this.phase = Phase.Head;
    this.headStartedAt = this.requestStartedAt = performance.now();
    this.url = '';
    this.raw = [];
    this.lastWasValue = false;
    this.headBytes = 0;
  }

  onUrl(chunk: Buffer, start: number, end: number): void {
    this.headBytes += end - start;
    this.url += chunk.toString('latin1', start, end);
  }

  onHeaderField(chunk: Buffer, start: number, end: number): void {
    this.headBytes += end - start;
    const s = headerName(chunk, start, end);
    // A name split across two reads arrives in two calls.
    if (!this.lastWasValue && this.raw.length > 0 && this.raw.length % 2 === 1) this.raw[this.raw.length - 1] += s;
    else this.raw.push(s);
    this.lastWasValue = false;
  }

  onHeaderValue(chunk: Buffer, start: number, end: number): void {
    this.headBytes += end - start;
    const s = headerValue(chunk, start, end);
    if (this.lastWasValue) this.raw[this.raw.length - 1] += s;
    else this.raw.push(s);
    this.lastWasValue = true;
  }

  onHeadersComplete(_status: number, upgrade: boolean, keepAlive: boolean): number {
    // A name without a value (`X:` then the end of the head) still needs its empty value.
    if (this.raw.length % 2 === 1) this.raw.push('');
    this.keepAlive = keepAlive;
    this.upgrade = upgrade;
    // The head is handled outside the parser (dispatch), after execute returns.
    return HPE_PAUSED;
  }

  onBody(chunk: Buffer, start: number, end: number): void {
    this.lastActivity = performance.now();
    this.req?.push(chunk.subarray(start, end));
  }

  onMessageComplete(): number {
    const req = this.req;
    if (req === undefined) return HPE_OK;
    req.pushEnd();
    if (this.phase === Phase.Body) {
      if (this.res !== undefined && this.res.finished) this.finishExchange();
      else this.phase = Phase.Waiting;
    }
    return HPE_PAUSED;
  }

  // ---- the exchange ------------------------------------------------------------

  /** The head is complete: build the request (false: refused). */
  private prepare(): boolean {
    if (this.headBytes > this.owner.maxHeaderBytes) {
      this.clientError('HPE_HEADER_OVERFLOW');
      return false;
    }
    const parser = this.parser;
    const raw = this.raw;
    // llhttp validates Transfer-Encoding after the headers-complete callback, where this
    // parser pauses: check its rule (strict mode) first, so such a head is never forwarded.
    if (!chunkedLast(raw)) {
      this.clientError('HPE_INVALID_TRANSFER_ENCODING');
      return false;
    }
    const headers = newHeaderMap();
    for (let i = 0; i < raw.length; i += 2) addHeader(headers, lowerName(raw[i]!), raw[i + 1]!);
    const minor = parser.versionMinor;
    const version = parser.versionMajor === 1 && minor === 0 ? '1.0' : '1.1';
    const method = parser.method;
    const expired = (this.socket as unknown as Record<symbol, boolean>)[CONNECTION_EXPIRED] === true;
    const keepAlive = this.keepAlive && !this.closing && !this.owner.isDraining() && !expired;
    this.phase = Phase.Body;
    const req = new RawRequest(this.socket, method, this.url, version, headers, raw, this);
    const res = new RawResponse(this, method, version === '1.0', keepAlive);
    this.req = req;
    this.res = res;
    this.bodyHeld = false;
    this.streamIdleMs = 0;
    this.streamIdleCb = undefined;
    this.undispatched = true;
    return true;
  }

  /** Hands the prepared request to the connection manager (the chain's current one). */
  private dispatch(): void {
    const req = this.req!;
    const res = this.res!;
    const hcm = this.owner.currentManager();
    if (this.upgrade) {
      // The tunnel (or the 403/404 before it) owns the rest of the connection, as on the node path.
      // Bytes after the head belong to the tunnel; this connection parses no more.
      this.phase = Phase.Upgraded;
      this.socket.off('data', this.onData);
      this.socket.pause();
      const head = this.pending ?? EMPTY;
      this.pending = undefined;
      res.shouldKeepAlive = false;
      res.once('finish', () => this.socket.destroySoon());
      hcm.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse, head);
      return;
    }
    // Expect: 100-continue is answered here, as node:http and Envoy (proxy_100_continue
    // off) do; the upstream never sees the header, so it cannot send a second 100.
    const expect = req.headers.expect;
    if (typeof expect === 'string' && req.httpVersion === '1.1' && expect.toLowerCase() === '100-continue') {
      req.headers.expect = undefined;
      if (!req.complete) this.socket.write(CONTINUE);
    }
    hcm.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  }

  responseDone(res: RawResponse): void {
    if (res !== this.res) return;
    this.lastActivity = performance.now();
    if (!res.shouldKeepAlive || this.closing) {
      this.phase = Phase.Closed;
      this.socket.destroySoon();
      return;
    }
    // The request may still be arriving (the upstream answered early): parsing goes on to its end.
    if (this.phase === Phase.Waiting) this.finishExchange();
  }

  /** Request and response both complete: ready for the next request. */
  private finishExchange(): void {
    this.phase = Phase.Idle;
    this.req = undefined;
    this.res = undefined;
    this.streamIdleCb = undefined;
    this.bodyHeld = false;
    if (this.readEnded && this.pending === undefined) {
      this.phase = Phase.Closed;
      this.socket.destroySoon();
      return;
    }
    this.updateReading();
    if (this.pending !== undefined && !this.running) setImmediate(runLater, this);
  }

  /** @internal */
  runPending(): void {
    if (!this.running && this.pending !== undefined && this.phase === Phase.Idle) this.run();
  }

  socketDetached(res: RawResponse): void {
    if (res !== this.res) return;
    this.phase = Phase.Upgraded;
    this.socket.off('data', this.onData);
  }

  streamIdle(res: RawResponse, ms: number, cb: (() => void) | undefined): void {
    if (res !== this.res) return;
    this.streamIdleMs = ms;
    this.streamIdleCb = cb;
  }

  bodyPaused(paused: boolean): void {
    this.bodyHeld = paused;
    this.updateReading();
  }

  /**
   * Reads from the socket unless someone holds it: the request's reader paused its body
   * (back-pressure), or a pipelined request waits for the response before it.
   */
  private updateReading(): void {
    const p = this.phase;
    if (p === Phase.Closed || p === Phase.Upgraded) return;
    const hold = (this.bodyHeld && p === Phase.Body) || (p === Phase.Waiting && this.pending !== undefined);
    if (hold) this.socket.pause();
    else this.socket.resume();
  }

  /**
   * A request llhttp refused (or a timeout before the head was complete): 400 (431 for
   * an oversized head, 408 for a timeout) and close, as node's clientError handling on
   * the node path; a response already under way cannot be followed by another: reset.
   */
  clientError(code: string): void {
    if (this.phase === Phase.Closed) return;
    const started = this.res !== undefined && this.res.headersSent;
    this.req?.abort();
    this.phase = Phase.Closed;
    this.pending = undefined;
    if (started || !this.socket.writable) {
      this.socket.destroy();
      return;
    }
    const status = code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    this.socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    const t = setTimeout(() => this.socket.destroy(), CLIENT_ERROR_LINGER_MS);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
  }

  /** The chain's sweep: which deadline passed (limits in ms; 0 = off). */
  sweep(now: number, limits: SweepLimits): void {
    const p = this.phase;
    if (p === Phase.Closed || p === Phase.Upgraded) return;
    if (limits.maxConnectionDuration > 0 && now - this.openedAt >= limits.maxConnectionDuration) {
      (this.socket as unknown as Record<symbol, boolean>)[CONNECTION_EXPIRED] = true;
      if (p === Phase.Idle) return void this.socket.destroy();
      this.drain();
    }
    if (p === Phase.Idle) {
      if (limits.idleTimeout > 0 && now - this.lastActivity >= limits.idleTimeout) this.socket.destroy();
      return;
    }
    if (p === Phase.Head) {
      if (limits.headersTimeout > 0 && now - this.headStartedAt >= limits.headersTimeout) this.clientError('ERR_HTTP_REQUEST_TIMEOUT');
      return;
    }
    if (limits.requestTimeout > 0 && this.req !== undefined && !this.req.complete && now - this.requestStartedAt >= limits.requestTimeout) {
      if (this.res !== undefined && !this.res.headersSent) return this.clientError('ERR_HTTP_REQUEST_TIMEOUT');
    }
    const cb = this.streamIdleCb;
    if (cb !== undefined && this.streamIdleMs > 0 && now - this.lastActivity >= this.streamIdleMs) {
      this.streamIdleCb = undefined;
      cb();
    }
  }
}

export interface SweepLimits {
  readonly idleTimeout: number;
  readonly headersTimeout: number;
  readonly requestTimeout: number;
  readonly maxConnectionDuration: number;
}

/**
 * RFC 9112 §6.3: a request whose Transfer-Encoding does not end in chunked has no
 * length a server can read (llhttp's strict-mode rule). True when there is no TE.
 */
export function chunkedLast(raw: readonly string[]): boolean {
  let last: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 17 && k.toLowerCase() === 'transfer-encoding') last = raw[i + 1]!;
  }
  if (last === undefined) return true;
  const comma = last.lastIndexOf(',');
  return (comma < 0 ? last : last.slice(comma + 1)).trim().toLowerCase() === 'chunked';
}

function runLater(c: RawConnection): void {
  c.runPending();
}

function noop(): void {}
