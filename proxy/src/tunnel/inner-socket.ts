import { Duplex } from 'node:stream';

/**
 * One end of an in-process connection (Envoy's user-space socket for internal
 * listeners): two Duplex objects joined back to back, no file descriptor. What one end
 * writes the other reads; a write waits (its callback is held) while the reader's buffer
 * is past its high-water mark, so back-pressure crosses the pair as it would a socket.
 *
 * It carries the few net.Socket members the HTTP servers, the TCP proxy and undici touch
 * (addresses, setNoDelay/setKeepAlive/setTimeout/ref/unref, bytesRead/bytesWritten,
 * destroySoon), so the normal chains serve it unchanged.
 */
export class InnerSocket extends Duplex {
  peer!: InnerSocket;
  /** The write callback held while the peer's read buffer is full. */
  private heldWrite: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timeoutMs = 0;
  bytesRead = 0;
  bytesWritten = 0;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteFamily = 'IPv4';
  /** Not TLS: the HTTP chain uses `encrypted` to pick the scheme. */
  readonly encrypted = false;
  readonly connecting = false;
  /**
   * What undici reads to choose HTTP/2 (set by the connector of an HTTP/2 cluster).
   * Undefined otherwise, as on a plaintext socket: node:http2's server answers 403 to a
   * socket whose alpnProtocol is false (a TLS connection that negotiated nothing).
   */
  alpnProtocol: string | undefined = undefined;

  private constructor(addr: InnerAddresses, highWaterMark: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: highWaterMark, writableHighWaterMark: highWaterMark });
    this.remoteAddress = addr.remoteAddress;
    this.remotePort = addr.remotePort;
    this.localAddress = addr.localAddress;
    this.localPort = addr.localPort;
  }

  /** A connected pair: [client end, server end]. Addresses are as each end sees them. */
  static pair(client: InnerAddresses, highWaterMark = 64 * 1024): [InnerSocket, InnerSocket] {
    const c = new InnerSocket(client, highWaterMark);
    const s = new InnerSocket({
      remoteAddress: client.localAddress, remotePort: client.localPort,
      localAddress: client.remoteAddress, localPort: client.remotePort,
    }, highWaterMark);
    c.peer = s;
    s.peer = c;
    return [c, s];
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.peer.destroyed) {
      cb(Object.assign(new Error('inner connection reset'), { code: 'ECONNRESET' }));
      return;
    }
    this.bytesWritten += chunk.length;
    this.peer.bytesRead += chunk.length;
    this.touch();
    this.peer.touch();
    // The chunk itself, no copy (as node's own duplexPair): a writer must not change a buffer
    // it wrote, which node's writers do not (node:http2 over a JSStreamSocket hands over
    // Buffer copies of nghttp2's memory). Copying here halved the waypoint's bytes per
    // CPU-second (bench/tunnel: allocation and GC of every chunk).
    // push() returns false once the peer's buffer is full: hold the callback until it reads.
    if (this.peer.push(chunk)) cb();
    else this.heldWrite = () => cb();
  }

  override _read(): void {
    // Our reader wants more: release the peer's held write.
    const held = this.peer.heldWrite;
    if (held) {
      this.peer.heldWrite = undefined;
      held();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    // Half-close: the peer reads end-of-stream.
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.heldWrite = undefined;
    const peer = this.peer;
    // A reset reaches the peer as a close, as an RST would (after what it already read).
    if (!peer.destroyed) process.nextTick(() => peer.destroy());
    cb(err);
  }

  /** net.Socket#destroySoon: end, then destroy once everything written was taken. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** net.Socket#setTimeout: 'timeout' after `ms` without reads or writes (0 turns it off). */
  setTimeout(ms: number, cb?: () => void): this {
    if (cb) {
      if (ms === 0) this.off('timeout', cb);
      else this.once('timeout', cb);
    }
    this.timeoutMs = ms;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.touch();
    return this;
  }

  address(): { address: string; family: string; port: number } {
    return { address: this.localAddress, family: 'IPv4', port: this.localPort };
  }

  /** Restarts the idle timer (reads and writes both count, as on a socket). */
  readonly touch = (): void => {
    if (this.timeoutMs <= 0 || this.destroyed) return;
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.emit('timeout');
      }, this.timeoutMs);
      this.timer.unref();
    }
  };
}

export interface InnerAddresses {
  /** As the client end sees it: its own (local) address and the listener's (remote) one. */
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}
