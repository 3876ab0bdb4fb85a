import type * as http2 from 'node:http2';

/**
 * The timeouts of a chain's HTTP/2 sessions and streams on one unref'd periodic sweep, as
 * the raw HTTP/1.1 path runs its own (http1/raw-chain.ts): no node timer per stream or
 * session. node's timers (stream.setTimeout, session.setTimeout) cost a Timeout object
 * and a bound function per stream, and a refresh of both the stream's and the session's
 * timer on every read and write of every stream. Here a read or write only sets a flag
 * on the stream's response (messages.ts); the sweep turns the flag into a timestamp.
 *
 * The sweep runs every eighth of the shortest limit (10 ms .. 1 s). Activity is seen at
 * the first pass after it (at most one period late) and a due stream at the first pass
 * after its deadline, so a limit fires at most two periods (25%, or 2 s) late, never
 * early.
 */

/**
 * A stream whose stream_idle_timeout is armed (an H2Response, messages.ts). The sweep
 * keeps them in an intrusive list (no Set: no identity hash, no allocation per stream).
 */
export interface IdleWatched {
  /** performance.now() of the stream's last activity the sweep knows of. */
  lastActivity: number;
  /** Set on every read or write (a plain store); the sweep turns it into lastActivity. */
  active: boolean;
  idlePrev: IdleWatched | undefined;
  idleNext: IdleWatched | undefined;
  /** The stream is due since `now`: fire (or refresh when it still makes progress). */
  idleCheck(now: number): void;
}

/** What the sweep keeps of one session (attached to it, see sessionState). */
export class H2SessionState {
  /** Streams handed to the exchange core and not yet closed. */
  open = 0;
  /** performance.now() since when the session has had no open stream; -1: it just became idle, the next pass stamps it. */
  idleSince: number;

  constructor(readonly session: http2.Http2Session, readonly sweep: H2Sweep) {
    this.idleSince = performance.now();
  }

  streamOpened(): void {
    this.open++;
  }

  streamClosed(): void {
    if (--this.open === 0) this.idleSince = -1;
  }
}

const kState = Symbol('pilotfish.h2SessionState');

/** The sweep state of the session a stream belongs to (undefined: a session the sweep does not know). */
export function sessionState(session: http2.Http2Session): H2SessionState | undefined {
  return (session as unknown as Record<symbol, H2SessionState | undefined>)[kState];
}

/** The limits the sweep enforces, read at every pass (a listener update takes effect). */
export interface H2SweepLimits {
  /** idle_timeout in ms (0 = off): a session without open streams this long gets GOAWAY. */
  readonly idleTimeout: number;
  /** stream_idle_timeout in ms (0 = off): only decides how often the sweep runs. */
  readonly streamIdleTimeout: number;
}

export class H2Sweep {
  private readonly sessions = new Set<H2SessionState>();
  /** Armed streams (intrusive doubly linked list). */
  private head: IdleWatched | undefined;
  private watchedCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private period = 0;

  constructor(private readonly limits: () => H2SweepLimits) {}

  /** A new session: its idle_timeout (no open stream for that long: GOAWAY, as Envoy's) is swept from now on. */
  addSession(session: http2.Http2Session): H2SessionState {
    const s = new H2SessionState(session, this);
    (session as unknown as Record<symbol, H2SessionState>)[kState] = s;
    this.sessions.add(s);
    session.once('close', () => {
      this.sessions.delete(s);
      this.maybeStop();
    });
    this.ensureRunning();
    return s;
  }

  /** Arms a stream's idle timer (its lastActivity is the start); not twice. */
  watch(w: IdleWatched): void {
    const head = this.head;
    w.idlePrev = undefined;
    w.idleNext = head;
    if (head !== undefined) head.idlePrev = w;
    this.head = w;
    this.watchedCount++;
    this.ensureRunning();
  }

  /** Disarms a stream watched now. */
  unwatch(w: IdleWatched): void {
    const prev = w.idlePrev, next = w.idleNext;
    if (prev !== undefined) prev.idleNext = next;
    else if (this.head === w) this.head = next;
    else return; // not in the list
    if (next !== undefined) next.idlePrev = prev;
    w.idlePrev = w.idleNext = undefined;
    this.watchedCount--;
  }

  /** One pass (the interval's; tests call it to skip the wait). */
  sweep(now = performance.now()): void {
    const idle = this.limits().idleTimeout;
    if (idle > 0) {
      for (const s of this.sessions) {
        if (s.open !== 0) continue;
        if (s.idleSince < 0) s.idleSince = now;
        else if (now - s.idleSince >= idle && !s.session.closed) s.session.close();
      }
    }
    for (let w = this.head; w !== undefined;) {
      const next = w.idleNext; // idleCheck may unwatch w
      if (w.active) {
        w.active = false;
        w.lastActivity = now;
      } else w.idleCheck(now);
      w = next;
    }
    // A limit may have changed (listener update): the period follows.
    if (this.periodFor() !== this.period) this.restart();
  }

  /** Stops the sweep (the chain is destroyed). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private periodFor(): number {
    const l = this.limits();
    let shortest = Infinity;
    for (const v of [l.idleTimeout, l.streamIdleTimeout]) if (v > 0 && v < shortest) shortest = v;
    return Math.max(10, Math.min(1000, Math.floor(shortest / 8)));
  }

  private ensureRunning(): void {
    if (this.timer === undefined) this.restart();
  }

  private restart(): void {
    this.stop();
    this.period = this.periodFor();
    this.timer = setInterval(() => this.sweep(), this.period);
    this.timer.unref();
  }

  private maybeStop(): void {
    if (this.sessions.size === 0 && this.watchedCount === 0) this.stop();
  }
}
