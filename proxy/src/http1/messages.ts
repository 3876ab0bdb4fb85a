import type * as net from 'node:net';
import type { HeaderMap } from '../http/headers.js';
import { headerLines, httpDate, reasonPhrase, statusHasNoBody } from './head.js';

/**
 * The request and response of one HTTP/1.1 exchange on the raw path. They carry exactly
 * the members the shared exchange core (proxy/src/http/connection-manager.ts) and the
 * request-body steps use of node's IncomingMessage / ServerResponse, so that one core
 * serves both paths; nothing else of node's stream machinery is built per request.
 */

type Listener = (...args: unknown[]) => void;

/** A minimal event source: a few named listeners, no EventEmitter per request. */
class Events {
  private listeners: { name: string; fn: Listener; once: boolean }[] | undefined;

  on(name: string, fn: Listener): this {
    (this.listeners ??= []).push({ name, fn, once: false });
    this.listenerAdded(name);
    return this;
  }

  once(name: string, fn: Listener): this {
    (this.listeners ??= []).push({ name, fn, once: true });
    this.listenerAdded(name);
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

  protected listenerAdded(_name: string): void {}

  protected hasListeners(name: string): boolean {
    return this.listeners !== undefined && this.listeners.some((e) => e.name === name);
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
}

/** What a request needs from its connection (flow control of the downstream socket). */
export interface RequestOwner {
  /** The request stopped (true) or resumed (false) consuming its body. */
  bodyPaused(paused: boolean): void;
}

const END = Symbol('end');

/**
 * A request parsed by llhttp. Its body is a small readable: chunks queue until someone
 * reads (a 'data' listener, resume), 'end' follows the last chunk; pausing stops the
 * socket, so a slow upstream holds the client back instead of filling memory.
 */
export class RawRequest extends Events {
  complete = false;
  /** Explicitly paused (node's readableFlowing === false): adding a 'data' listener does not start the flow. */
  private flowing: boolean | null = null;
  private queue: (Buffer | typeof END)[] | undefined;
  private flushScheduled = false;
  aborted = false;

  constructor(
    readonly socket: net.Socket,
    readonly method: string,
    public url: string,
    readonly httpVersion: string,
    readonly headers: HeaderMap,
    readonly rawHeaders: string[],
    private readonly owner: RequestOwner,
  ) {
    super();
  }

  protected override listenerAdded(name: string): void {
    if (name === 'data' && this.flowing === null) this.resume();
    else if (name === 'end' && this.flowing === true) this.scheduleFlush();
  }

  /** A body chunk from the parser. */
  push(chunk: Buffer): void {
    if (this.flowing === true && this.queue === undefined) {
      this.emit('data', chunk);
      return;
    }
    (this.queue ??= []).push(chunk);
    if (this.flowing !== true) this.owner.bodyPaused(true);
  }

  /** The end of the body (message complete). */
  pushEnd(): void {
    this.complete = true;
    if (this.flowing === true && this.queue === undefined) {
      this.emit('end');
      return;
    }
    (this.queue ??= []).push(END);
  }

  pause(): this {
    if (this.flowing !== false) {
      this.flowing = false;
      this.owner.bodyPaused(true);
    }
    return this;
  }

  resume(): this {
    if (this.flowing === true) return this;
    this.flowing = true;
    this.scheduleFlush();
    this.owner.bodyPaused(false);
    return this;
  }

  /** Queued chunks go out on the next tick, as a stream's would: listeners added in this tick still see them. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.queue === undefined) return;
    this.flushScheduled = true;
    process.nextTick(flush, this);
  }

  /** @internal */
  flushQueue(): void {
    this.flushScheduled = false;
    const q = this.queue;
    if (q === undefined) return;
    while (q.length > 0 && this.flowing === true) {
      const c = q.shift()!;
      if (c === END) this.emit('end');
      else this.emit('data', c);
    }
    if (q.length === 0) this.queue = undefined;
  }

  /** Streams the body into a writable with back-pressure (used when a retry buffer overflows). */
  pipe<T extends NodeJS.WritableStream>(dest: T): T {
    const onDrain = () => this.resume();
    this.on('data', (c) => {
      if (!dest.write(c as Buffer)) {
        this.pause();
        dest.once('drain', onDrain);
      }
    });
    this.once('end', () => dest.end());
    this.resume();
    return dest;
  }

  /** The connection failed before the body ended. */
  abort(): void {
    if (this.complete || this.aborted) return;
    this.aborted = true;
    this.emit('aborted');
    this.emit('error', new Error('aborted'));
  }
}

function flush(r: RawRequest): void {
  r.flushQueue();
}

/** What a response needs from its connection. */
export interface ResponseOwner {
  readonly socket: net.Socket;
  /** The response's last byte was handed to the socket. */
  responseDone(res: RawResponse): void;
  /** A tunnel took the socket over (upgrade / CONNECT). */
  socketDetached(res: RawResponse): void;
  /** The stream idle timer of this response (node's res.setTimeout), run by the chain's sweep. */
  streamIdle(res: RawResponse, ms: number, cb: (() => void) | undefined): void;
}

const CRLF = '\r\n';
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/**
 * The response written by the exchange core. The head is kept until the first body
 * write or the end, so head and body leave in one writev. Framing: the upstream's (or
 * local reply's) content-length as is, else chunked to an HTTP/1.1 client, else the
 * connection closes after the body (HTTP/1.0), as node's ServerResponse frames.
 */
export class RawResponse extends Events {
  headersSent = false;
  shouldKeepAlive: boolean;
  finished = false;
  private head: string | undefined;
  private chunked = false;
  private noBody = false;
  private trailers: Record<string, string> | undefined;
  detached = false;

  constructor(private readonly owner: ResponseOwner, private readonly requestMethod: string, private readonly http10: boolean, keepAlive: boolean) {
    super();
    this.shouldKeepAlive = keepAlive;
  }

  writeHead(status: number, headers: Record<string, string | string[]>): this {
    if (this.headersSent) return this;
    const h = headers as HeaderMap;
    let head = `HTTP/1.1 ${status} ${reasonPhrase(status)}${CRLF}${headerLines(h)}`;
    if (h.date === undefined) head += `date: ${httpDate()}${CRLF}`;
    this.noBody = statusHasNoBody(status, this.requestMethod);
    if (!this.noBody && h['content-length'] === undefined) {
      if (this.http10) this.shouldKeepAlive = false;
      else {
        this.chunked = true;
        head += `transfer-encoding: chunked${CRLF}`;
      }
    }
    if (!this.shouldKeepAlive) head += `connection: close${CRLF}`;
    else if (this.http10) head += `connection: keep-alive${CRLF}`;
    this.head = head + CRLF;
    this.headersSent = true;
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.finished || this.detached) return true;
    if (!this.headersSent) this.writeHead(200, {});
    const socket = this.owner.socket;
    const head = this.head;
    if (this.noBody) {
      if (head !== undefined) {
        this.head = undefined;
        return socket.write(head, 'latin1');
      }
      return true;
    }
    const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (len === 0 && head === undefined) return true;
    socket.cork();
    if (head !== undefined) {
      this.head = undefined;
      socket.write(head, 'latin1');
    }
    if (this.chunked && len > 0) socket.write(`${len.toString(16)}${CRLF}`, 'latin1');
    let ok = len > 0 ? socket.write(chunk) : true;
    if (this.chunked && len > 0) ok = socket.write(CRLF, 'latin1');
    socket.uncork();
    return ok;
  }

  addTrailers(t: Record<string, string>): void {
    this.trailers = t;
  }

  end(body?: Buffer | string): this {
    if (this.finished || this.detached) return this;
    if (!this.headersSent) this.writeHead(200, {});
    const socket = this.owner.socket;
    socket.cork();
    if (body !== undefined && (typeof body !== 'string' || body.length > 0)) this.write(body);
    else if (this.head !== undefined) {
      socket.write(this.head, 'latin1');
      this.head = undefined;
    }
    if (this.chunked) {
      if (this.trailers !== undefined) socket.write(`0${CRLF}${headerLines(this.trailers)}${CRLF}`, 'latin1');
      else socket.write(LAST_CHUNK);
    }
    socket.uncork();
    this.finished = true;
    this.owner.responseDone(this);
    this.emit('finish');
    return this;
  }

  /** node's res.setTimeout: the stream idle timer (any socket activity restarts it). */
  setTimeout(ms: number, cb?: () => void): this {
    this.owner.streamIdle(this, ms, cb);
    return this;
  }

  /** A tunnel writes to the socket itself from now on. */
  detachSocket(_socket: net.Socket): void {
    this.detached = true;
    this.owner.socketDetached(this);
  }
}
