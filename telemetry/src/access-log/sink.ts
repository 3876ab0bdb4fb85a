/**
 * A buffered, non-blocking line writer: the request path appends a string to an array;
 * a write is issued at most once per tick (one fs.write in flight at a time, like
 * sonic-boom). When the disk or the pipe cannot keep up and the backlog passes its bound,
 * lines are dropped and counted instead of growing memory or stalling requests.
 */
import { closeSync, openSync, write, writeSync } from 'node:fs';

export interface SinkStats {
  written: number;
  dropped: number;
  writeErrors: number;
}

export class LineSink {
  readonly stats: SinkStats = { written: 0, dropped: 0, writeErrors: 0 };
  private pending: string[] = [];
  private pendingBytes = 0;
  private inFlight = false;
  private scheduled = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  private constructor(
    readonly target: string,
    private readonly fd: number,
    private readonly ownsFd: boolean,
    private readonly maxBufferedBytes: number,
  ) {}

  static stdout(maxBufferedBytes = 4 << 20): LineSink {
    return new LineSink('/dev/stdout', 1, false, maxBufferedBytes);
  }

  /** Opens for append; throws (at config time) when the file cannot be opened. */
  static file(path: string, maxBufferedBytes = 4 << 20): LineSink {
    if (path === '/dev/stdout') return LineSink.stdout(maxBufferedBytes);
    if (path === '/dev/stderr') return new LineSink(path, 2, false, maxBufferedBytes);
    return new LineSink(path, openSync(path, 'a'), true, maxBufferedBytes);
  }

  write(line: string): void {
    if (this.closed) return;
    if (this.pendingBytes + line.length > this.maxBufferedBytes) {
      this.stats.dropped++;
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.scheduled && !this.inFlight) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.inFlight) return;
    if (this.pending.length === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
      return;
    }
    const lines = this.pending.length;
    const buf = Buffer.from(this.pending.join(''));
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight = true;
    this.writeAll(buf, 0, lines);
  };

  private writeAll(buf: Buffer, offset: number, lines: number): void {
    write(this.fd, buf, offset, buf.length - offset, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeAll(buf, offset, lines), 5);
          return;
        }
        this.stats.writeErrors++;
        this.stats.dropped += lines;
      } else if (offset + n < buf.length) {
        this.writeAll(buf, offset + n, lines);
        return;
      } else {
        this.stats.written += lines;
      }
      this.inFlight = false;
      this.flush();
    });
  }

  /** Resolves once everything written so far has reached the file descriptor. */
  drain(): Promise<void> {
    if (!this.inFlight && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.race([this.drain(), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.closed = true;
    if (this.pending.length > 0) {
      try {
        writeSync(this.fd, this.pending.join(''));
        this.stats.written += this.pending.length;
      } catch {
        this.stats.dropped += this.pending.length;
      }
      this.pending = [];
    }
    if (this.ownsFd) closeSync(this.fd);
  }
}
