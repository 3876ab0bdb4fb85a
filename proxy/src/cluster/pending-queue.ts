import type { Counter, Gauge } from '../stats/stats.js';

/**
 * A request attempt waiting for (or holding) one of the cluster's connection slots. The
 * queue links waiters through these fields, so enqueueing and cancelling allocate nothing
 * and cancelling is O(1) wherever the waiter sits in the queue.
 */
export interface SlotWaiter {
  /** The slot is granted: the waiter now holds it and must call `release()` exactly once. */
  onSlot(): void;
  slotPrev: SlotWaiter | undefined;
  slotNext: SlotWaiter | undefined;
  slotQueued: boolean;
}

export type SlotResult = 'ready' | 'pending' | 'overflow';

export interface SlotStats {
  readonly upstream_rq_pending_active: Gauge;
  readonly upstream_rq_pending_total: Counter;
  readonly upstream_rq_pending_overflow: Counter;
  readonly upstream_cx_overflow: Counter;
}

/**
 * Envoy's HTTP/1.1 connection pool admission for one cluster priority: at most
 * max_connections attempts hold an upstream connection; the next ones wait here, FIFO,
 * up to max_pending_requests, and beyond that are refused (upstream_rq_pending_overflow).
 *
 * Why this queue exists instead of undici's own: undici gives no handle on a request
 * until it is written to a connection, so a request whose client went away could not
 * leave undici's queue; it stayed there, and when its turn came, aborting it destroyed
 * the connection it had just been given. After a stall (clients timing out and
 * reconnecting) the live requests then queued behind hundreds of dead ones and every
 * freed connection was torn down and reopened: the pending queue drained at connect
 * speed while new requests overflowed. Here a cancelled waiter simply leaves the list,
 * and upstream_rq_pending_active is exactly the number of attempts waiting.
 */
export class PendingQueue {
  /** Attempts holding a connection slot (dispatched to undici, not yet finished there). */
  active = 0;
  private length = 0;
  private head: SlotWaiter | undefined;
  private tail: SlotWaiter | undefined;
  private drainScheduled = false;
  /** `drain` bound, made on the first drain: a closure per queue is ~100 bytes in every cluster. */
  private drainFn: (() => void) | undefined;

  constructor(
    private maxConnections: number,
    private maxPending: number,
    private readonly stats: SlotStats,
  ) {}

  /** New limits (a CDS update): waiters and slot holders are kept; freed room is used at once. */
  setLimits(maxConnections: number, maxPending: number): void {
    this.maxConnections = maxConnections;
    this.maxPending = maxPending;
    this.scheduleDrain();
  }

  /** Attempts waiting for a slot. */
  get pending(): number {
    return this.length;
  }

  /**
   * 'ready': the caller holds a slot now. 'pending': `w.onSlot()` is called later (unless
   * cancelled). 'overflow': refused. Waiters already queued go first, so a request arriving
   * just after a slot freed cannot overtake them.
   */
  acquire(w: SlotWaiter): SlotResult {
    if (this.active < this.maxConnections && this.length === 0) {
      this.active++;
      return 'ready';
    }
    // Envoy counts a connection it may not open (max_connections) for every request that cannot get one.
    this.stats.upstream_cx_overflow.inc();
    if (this.length >= this.maxPending) {
      this.stats.upstream_rq_pending_overflow.inc();
      return 'overflow';
    }
    w.slotQueued = true;
    w.slotNext = undefined;
    w.slotPrev = this.tail;
    if (this.tail !== undefined) this.tail.slotNext = w;
    else this.head = w;
    this.tail = w;
    this.length++;
    this.stats.upstream_rq_pending_total.inc();
    this.stats.upstream_rq_pending_active.inc();
    // A slot may be free with only this waiter queued (limits raised, a drain pending).
    this.scheduleDrain();
    return 'pending';
  }

  /** A queued waiter gives up (its client went away, a timeout): it leaves the queue. */
  cancel(w: SlotWaiter): void {
    if (!w.slotQueued) return;
    this.unlink(w);
  }

  /** A slot holder is done with its connection. */
  release(): void {
    this.active--;
    if (this.length > 0) this.scheduleDrain();
  }

  private unlink(w: SlotWaiter): void {
    const { slotPrev: p, slotNext: n } = w;
    if (p !== undefined) p.slotNext = n;
    else this.head = n;
    if (n !== undefined) n.slotPrev = p;
    else this.tail = p;
    w.slotPrev = undefined;
    w.slotNext = undefined;
    w.slotQueued = false;
    this.length--;
    this.stats.upstream_rq_pending_active.dec();
  }

  /**
   * Grants freed slots on a microtask: a slot is released from inside undici's callbacks,
   * and dispatching the next request from there would re-enter undici mid-callback.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask((this.drainFn ??= () => this.drain()));
  }

  private drain(): void {
    this.drainScheduled = false;
    while (this.active < this.maxConnections && this.head !== undefined) {
      const w = this.head;
      this.unlink(w);
      this.active++;
      w.onSlot();
    }
  }
}
