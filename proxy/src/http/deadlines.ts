/**
 * Deadlines without a timer per request. A route's timeout is the same duration for every
 * request on it, so requests that start later end later: a queue per duration is sorted
 * by construction. Entries join at the tail and leave from anywhere in O(1) (the request
 * object is its own list node: nothing is allocated per request); one timer per queue is
 * armed for the head, expires whatever is due when it fires and re-arms for the next.
 * A request that completes in time — nearly all of them — only unlinks itself.
 *
 * Lateness: a deadline fires when node's timer for the head does (millisecond
 * granularity, as setTimeout's), never earlier than 1 ms before it is due.
 */

export interface DeadlineEntry {
  /** performance.now() at which onDeadline runs. */
  deadline: number;
  deadlinePrev: DeadlineEntry | undefined;
  deadlineNext: DeadlineEntry | undefined;
  /** The queue the entry is in; undefined when it is in none. */
  deadlineQueue: DeadlineQueue | undefined;
  onDeadline(): void;
}

/** Due when at most this much is left: node's timers have millisecond granularity. */
const SLACK_MS = 1;

export class DeadlineQueue {
  private head: DeadlineEntry | undefined;
  private tail: DeadlineEntry | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number, private readonly onEmpty: (q: DeadlineQueue) => void) {}

  get empty(): boolean {
    return this.head === undefined;
  }

  /** `e` runs onDeadline `ms` from now unless removed first. */
  add(e: DeadlineEntry): void {
    if (e.deadlineQueue !== undefined) e.deadlineQueue.remove(e);
    e.deadline = performance.now() + this.ms;
    e.deadlineQueue = this;
    e.deadlineNext = undefined;
    e.deadlinePrev = this.tail;
    if (this.tail !== undefined) this.tail.deadlineNext = e;
    else this.head = e;
    this.tail = e;
    if (this.timer === undefined) this.arm(this.ms);
  }

  remove(e: DeadlineEntry): void {
    if (e.deadlineQueue !== this) return;
    const p = e.deadlinePrev;
    const n = e.deadlineNext;
    if (p !== undefined) p.deadlineNext = n;
    else this.head = n;
    if (n !== undefined) n.deadlinePrev = p;
    else this.tail = p;
    e.deadlinePrev = e.deadlineNext = e.deadlineQueue = undefined;
    // The timer stays armed: when it fires it re-arms for the new head, or stops.
  }

  private arm(delay: number): void {
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(delay)));
    // Requests in flight hold their sockets (and so the process); the timer need not.
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    try {
      let e = this.head;
      while (e !== undefined && e.deadline - performance.now() <= SLACK_MS) {
        this.remove(e);
        e.onDeadline();
        e = this.head;
      }
    } finally {
      const h = this.head;
      if (h !== undefined) {
        if (this.timer === undefined) this.arm(h.deadline - performance.now());
      } else if (this.timer === undefined) this.onEmpty(this);
    }
  };
}

/** One queue per duration in use; a queue goes away when its timer finds it empty. */
const queues = new Map<number, DeadlineQueue>();

function dropQueue(q: DeadlineQueue): void {
  if (queues.get(q.ms) === q) queues.delete(q.ms);
}

/** The queue for deadlines `ms` from now. */
export function deadlineQueue(ms: number): DeadlineQueue {
  let q = queues.get(ms);
  if (q === undefined) {
    q = new DeadlineQueue(ms, dropQueue);
    queues.set(ms, q);
  }
  return q;
}
