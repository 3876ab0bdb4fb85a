import type * as net from 'node:net';
import type { HeaderMap } from '../http/headers.js';
import { dateLine, headWriter, statusHasNoBody, statusLine } from './head.js';
import { holdUntilTurnEnds } from './turn-batch.js';

/**
 * The request and response of one HTTP/1.1 exchange on the raw path. They carry exactly
 * the members the shared exchange core (proxy/src/http/connection-manager.ts) and the
 * request-body steps use of node's IncomingMessage / ServerResponse, so that one core
 * serves both paths; nothing else of node's stream machinery is built per request.
 */

type Listener = (...args: unknown[]) => void;

/**
 * A minimal event source: a few named listeners, no EventEmitter per request. Listeners
 * sit in one flat array (name, function, once) — no object per listener — and an event
 * with a single listener is emitted without copying the list.
 */
class Events {
  private listeners: (string | Listener | boolean)[] | undefined;

  on(name: string, fn: Listener): this {
    (this.listeners ??= []).push(name, fn, false);
    this.listenerAdded(name);
    return this;
  }

  once(name: string, fn: Listener): this {
    (this.listeners ??= []).push(name, fn, true);
    this.listenerAdded(name);
    return this;
  }

  off(name: string, fn: Listener): this {
    const l = this.listeners;
    if (l === undefined) return this;
    for (let i = 0; i < l.length; i += 3) {
      if (l[i] === name && l[i + 1] === fn) {
        l.splice(i, 3);
        break;
      }
    }
    return this;
  }

  removeListener(name: string, fn: Listener): this {
    return this.off(name, fn);
  }

  protected listenerAdded(_name: string): void {}

  protected hasListeners(name: string): boolean {
    const l = this.listeners;
    if (l === undefined) return false;
    for (let i = 0; i < l.length; i += 3) if (l[i] === name) return true;
    return false;
  }

  emit(name: string, a?: unknown, b?: unknown): boolean {
    const l = this.listeners;
    if (l === undefined) return false;
    let first = -1;
    let count = 0;
    for (let i = 0; i < l.length; i += 3) {
      if (l[i] !== name) continue;
      if (first < 0) first = i;
      count++;
    }
    if (count === 0) return false;
    if (count === 1) {
      const fn = l[first + 1] as Listener;
      if (l[first + 2] === true) l.splice(first, 3);
      fn(a, b);
      return true;
    }
    // Several: a listener may add or remove others while this runs; each runs as registered at the emit.
    const fns: Listener[] = [];
    for (let i = 0; i < l.length; i += 3) if (l[i] === name) fns.push(l[i + 1] as Listener);
    for (const fn of fns) {
      for (let i = 0; i < l.length; i += 3) {
        if (l[i] === name && l[i + 1] === fn) {
          if (l[i + 2] === true) l.splice(i, 3);
          break;
        }
      }
      fn(a, b);
    }
    return true;
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
  /** The end arrived with nothing queued before it (a request without a body): no queue is made for it. */
  private endQueued = false;
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
    if (this.queue === undefined) this.endQueued = true;
    else this.queue.push(END);
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
    if (this.flushScheduled || (this.queue === undefined && !this.endQueued)) return;
    this.flushScheduled = true;
    process.nextTick(flush, this);
  }

  /** @internal */
  flushQueue(): void {
    this.flushScheduled = false;
    const q = this.queue;
    if (q !== undefined) {
      while (q.length > 0 && this.flowing === true) {
        const c = q.shift()!;
        if (c === END) this.emit('end');
        else this.emit('data', c);
      }
      if (q.length === 0 && this.queue === q) this.queue = undefined;
    }
    if (this.endQueued && this.flowing === true && this.queue === undefined) {
      this.endQueued = false;
      this.emit('end');
    }
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

const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
/** Bodies up to this size leave in the same write as the head (one copy, one send); larger ones follow it. */
const COALESCE_MAX = 16 * 1024;

/**
 * The response written by the exchange core. The head is serialised by writeHead (so an
 * invalid header throws there, where the core expects it) and kept until the first body
 * write or the end, so head and body leave in one send. Framing: the upstream's (or local
 * reply's) content-length as is, else chunked to an HTTP/1.1 client, else the connection
 * closes after the body (HTTP/1.0), as node's ServerResponse frames.
 */
export class RawResponse extends Events {
  headersSent = false;
  shouldKeepAlive: boolean;
  finished = false;
  private head: Buffer | undefined;
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
    const w = headWriter.start().text(statusLine(status)).headers(h);
    if (h.date === undefined) w.text(dateLine());
    this.noBody = statusHasNoBody(status, this.requestMethod);
    if (!this.noBody && h['content-length'] === undefined) {
      if (this.http10) this.shouldKeepAlive = false;
      else {
        this.chunked = true;
        w.text('transfer-encoding: chunked\r\n');
      }
    }
    if (!this.shouldKeepAlive) w.text('connection: close\r\n');
    else if (this.http10) w.text('connection: keep-alive\r\n');
    this.head = w.text('\r\n').take();
    this.headersSent = true;
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.finished || this.detached) return true;
    if (!this.headersSent) this.writeHead(200, {});
    const socket = this.owner.socket;
    holdUntilTurnEnds(socket);
    const head = this.head;
    this.head = undefined;
    const body = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const len = this.noBody ? 0 : body.length;
    if (len === 0) return head !== undefined ? socket.write(head) : true;
    if (!this.chunked && head === undefined) return socket.write(body);
    if (len > COALESCE_MAX) {
      socket.cork();
      if (head !== undefined) socket.write(head);
      if (this.chunked) socket.write(`${len.toString(16)}\r\n`, 'latin1');
      let ok = socket.write(body);
      if (this.chunked) ok = socket.write('\r\n', 'latin1');
      socket.uncork();
      return ok;
    }
    // One buffer: [head] [chunk-size line] body [CRLF].
    const size = this.chunked ? `${len.toString(16)}\r\n` : undefined;
    const headLen = head !== undefined ? head.length : 0;
    const out = Buffer.allocUnsafe(headLen + (size !== undefined ? size.length + 2 : 0) + len);
    let p = 0;
    if (head !== undefined) p = head.copy(out, 0);
    if (size !== undefined) p += out.write(size, p, 'latin1');
    p += body.copy(out, p);
    if (size !== undefined) {
      out[p] = 13;
      out[p + 1] = 10;
    }
    return socket.write(out);
  }

  addTrailers(t: Record<string, string>): void {
    this.trailers = t;
  }

  end(body?: Buffer | string): this {
    if (this.finished || this.detached) return this;
    if (!this.headersSent) this.writeHead(200, {});
    const socket = this.owner.socket;
    holdUntilTurnEnds(socket);
    const hasBody = body !== undefined && (typeof body !== 'string' || body.length > 0);
    if (!this.chunked) {
      if (hasBody) this.write(body);
      else if (this.head !== undefined) {
        socket.write(this.head);
        this.head = undefined;
      }
    } else {
      const last = this.lastChunk();
      socket.cork();
      if (hasBody) this.write(body);
      else if (this.head !== undefined) {
        socket.write(this.head);
        this.head = undefined;
      }
      socket.write(last);
      socket.uncork();
    }
    this.finished = true;
    this.owner.responseDone(this);
    this.emit('finish');
    return this;
  }

  /** The last chunk, with the trailers when there are any a head can carry (others are dropped, as on the node path). */
  private lastChunk(): Buffer {
    if (this.trailers === undefined) return LAST_CHUNK;
    try {
      return headWriter.start().text('0\r\n').headers(this.trailers).text('\r\n').take();
    } catch {
      return LAST_CHUNK;
    }
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
