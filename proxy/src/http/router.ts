import type { Dispatcher } from 'undici';
import type { ForwardAction, RetryPolicy } from '../../../config/src/index.js';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import { Flags, type LocalReplySpec } from './response-flags.js';
import type { HeaderMap } from './headers.js';
import type { ConnectionInfo } from '../net/connection-info.js';
import { Failures, failureFromError, type UpstreamFailure } from './upstream-failure.js';
import { compileRetryPolicy, retryOnFailure, retryOnStatus, RetryState, type CompiledRetryPolicy } from './retry-state.js';
import type { SlotWaiter } from '../cluster/pending-queue.js';
import { deadlineQueue, type DeadlineEntry, type DeadlineQueue } from './deadlines.js';

/** What the router needs from the downstream side; implemented by the connection manager. */
export interface Downstream {
  /** Upstream response headers arrived and were chosen (not retried). */
  onUpstreamHeaders(status: number, headers: HeaderMap, host: Host, serviceTimeMs: number): void;
  /** Returns false when the downstream is applying back-pressure. */
  onUpstreamData(chunk: Buffer): boolean;
  /** Called once when back-pressure ends, after onUpstreamData returned false. */
  onDrain(resume: () => void): void;
  onUpstreamEnd(trailers: HeaderMap | undefined): void;
  /** Failure before any response byte went downstream: answer locally. */
  onLocalReply(spec: LocalReplySpec, flag: string, extraHeaders?: Record<string, string>): void;
  /** Failure after the response started: the downstream stream must be reset. */
  onResetAfterHeaders(flag: string): void;
  addFlag(flag: string): void;
  setUpstreamHost(host: Host): void;
}

/** Also the options handed to the dispatcher (undici's DispatchOptions: path, method, headers, body). */
export interface UpstreamRequestSpec {
  readonly method: string;
  readonly path: string;
  readonly headers: HeaderMap;
  /** A Buffer can be replayed for retries; a stream cannot. */
  readonly body: Buffer | NodeJS.ReadableStream | null;
  readonly hash: number | undefined;
  /** The downstream connection (ORIGINAL_DST clusters route to its original destination). */
  readonly connection?: ConnectionInfo | undefined;
  /** include_request_attempt_count: each attempt carries x-envoy-attempt-count (1, 2, ...). */
  readonly attemptCountHeader?: boolean;
  /** The proxy's random source (retry back-off jitter); Math.random when absent. */
  readonly random?: () => number;
  /** Another pool for a host (the raw HTTP/1.1 path's); undefined, or undefined for a host: the cluster's undici pool. */
  readonly dispatcher?: ((cluster: ClusterRuntime, host: Host) => Pick<Dispatcher, 'dispatch'> | undefined) | undefined;
}

const OVERLOADED: Record<string, string> = { 'x-envoy-overloaded': 'true' };

/**
 * The load balancer's context, one for every pick of every request: a pick is synchronous
 * and keeps nothing of it, so one object of one shape keeps the balancer's hot path
 * monomorphic and allocates nothing (it was one object per request).
 */
const pickContext: { hash: number; exclude: Host | undefined; connection: ConnectionInfo | undefined; headers: HeaderMap | undefined } = { hash: Number.NaN, exclude: undefined, connection: undefined, headers: undefined };
const CANCELLED_BEFORE_START = new Error('cancelled before it was sent');

/**
 * One attempt's undici dispatch handler. Each attempt gets its own, so callbacks of an
 * abandoned attempt (aborted for a retry or a timeout) can never be mistaken for those
 * of the current one. It is also the attempt's place in the cluster's pending queue and
 * its connection slot: the slot is held from dispatch until undici is done with the
 * request (response end, error, or an abort, which closes the HTTP/1.1 connection).
 */
class Attempt implements Dispatcher.DispatchHandler, SlotWaiter {
  controller: Dispatcher.DispatchController | undefined;
  dead = false;
  /** Holds one of the cluster's connection slots (HTTP/1.1 upstreams). */
  holdsSlot = false;
  /** Handed to undici (not waiting in the pending queue any more). */
  sent = false;
  /** A per-try timeout was already reported to outlier detection (Envoy's outlierDetectionTimeoutRecorded). */
  timeoutReported = false;
  start = 0;
  slotPrev: SlotWaiter | undefined = undefined;
  slotNext: SlotWaiter | undefined = undefined;
  slotQueued = false;
  constructor(readonly owner: UpstreamRequest, readonly host: Host) {}

  abort(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    if (this.slotQueued) {
      // Still waiting for a connection: it just leaves the queue.
      this.owner.cancelPending(this);
      return;
    }
    const c = this.controller;
    if (c !== undefined) {
      c.abort(err);
      // The aborted request's HTTP/1.1 connection is closed: the slot is free.
      this.releaseSlot();
    }
    // Not started by undici yet (its connection is being made): onRequestStart refuses it
    // and undici's error callback releases the slot.
  }

  /** A connection slot was granted to this queued attempt. */
  onSlot(): void {
    this.holdsSlot = true;
    if (this.dead) {
      this.releaseSlot();
      return;
    }
    this.owner.send(this);
  }

  releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.owner.releaseSlot();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.dead) {
      // Cancelled while its connection was being made. Aborting now would destroy that
      // fresh connection; throwing makes undici (client-h1/-h2 write) fail just this
      // request and keep the connection for the next one. The slot is released in
      // onResponseError, which undici calls for it.
      throw CANCELLED_BEFORE_START;
    }
    // undici writes the request on a connection now: Envoy's LocalOriginConnectSuccess.
    this.owner.connected(this);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[]>): void {
    if (!this.dead && statusCode >= 200) this.owner.onHeaders(this, controller, statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.dead) this.owner.onData(controller, chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[]>): void {
    this.releaseSlot();
    if (this.dead) return;
    this.dead = true;
    this.owner.onEnd(this, trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.releaseSlot();
    if (this.dead) return;
    this.dead = true;
    this.owner.onError(this, failureFromError(err));
  }
}

/**
 * One proxied request towards a cluster: picks hosts, dispatches through undici, and
 * retries per the route's retry policy with Envoy's semantics (fully jittered
 * exponential back-off, per-try timeouts, retry circuit breaker or budget).
 */
export class UpstreamRequest implements DeadlineEntry {
  private attempts = 0;
  private current: Attempt | undefined;
  private lastHost: Host | undefined;
  private committed = false;
  private finished = false;
  private perTryTimer: NodeJS.Timeout | undefined;
  /** The route timeout: this request's place in the queue of its duration (deadlines.ts), not a timer of its own. */
  deadline = 0;
  deadlinePrev: DeadlineEntry | undefined = undefined;
  deadlineNext: DeadlineEntry | undefined = undefined;
  deadlineQueue: DeadlineQueue | undefined = undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly priority: 'DEFAULT' | 'HIGH';
  /** The route's retry policy, retry_on compiled (once per policy object). */
  private readonly retryPolicy: CompiledRetryPolicy | undefined;
  /** Created when a retry is first considered: a request that never fails allocates none. */
  private retryState: RetryState | undefined = undefined;
  /** Attempts still running after their per-try timeout (hedging); the first usable response wins. */
  private hedged: Attempt[] | undefined;
  /** Hosts of earlier attempts, kept only with the previous_hosts retry host predicate. */
  private tried: Host[] | undefined;

  constructor(
    private readonly cluster: ClusterRuntime,
    private readonly action: ForwardAction,
    private readonly spec: UpstreamRequestSpec,
    private readonly down: Downstream,
    private readonly retry: RetryPolicy | undefined,
    /** hedge_policy.hedge_on_per_try_timeout: a per-try timeout starts another attempt without cancelling this one. */
    private readonly hedgeOnPerTryTimeout = false,
  ) {
    this.priority = action.priority;
    this.retryPolicy = retry !== undefined ? compileRetryPolicy(retry) : undefined;
  }

  start(): void {
    if (!this.cluster.tryAcquireRequest(this.priority)) {
      this.cluster.stats.upstream_rq_pending_overflow.inc();
      this.finished = true;
      this.down.onLocalReply(Failures.overflow.reply, Failures.overflow.responseFlag, OVERLOADED);
      return;
    }
    this.cluster.stats.upstream_rq_active.inc();
    if (this.action.timeout > 0) deadlineQueue(this.action.timeout).add(this);
    this.dispatchAttempt();
  }

  /** The downstream went away: stop everything, release the upstream stream. */
  cancel(flag: string = Flags.DownstreamConnectionTermination): void {
    if (this.finished) return;
    this.down.addFlag(flag);
    // Envoy: a request still waiting for a connection is cancelled, one on a connection reset.
    if (this.current?.slotQueued === true) this.cluster.stats.upstream_rq_cancelled.inc();
    else this.cluster.stats.upstream_rq_tx_reset.inc();
    this.endAttempt(new Error('downstream disconnected'));
    this.finish();
  }

  /**
   * Picks a host and starts an attempt on it: at once when a connection slot is free,
   * else the attempt waits in the cluster's pending queue (max_pending_requests beyond
   * which it is refused), where a cancel simply removes it.
   */
  private dispatchAttempt(): void {
    const host = this.pickHost();
    if (!host) {
      this.fail(Failures.noHealthyUpstream);
      return;
    }
    const attempt = new Attempt(this, host);
    const slot = this.cluster.acquireSlot(this.priority, attempt);
    if (slot === 'overflow') {
      // A hedge that cannot get a connection: keep waiting for the attempts already running.
      if (this.hedged !== undefined && this.hedged.length > 0) {
        this.current = this.hedged.pop();
        return;
      }
      this.overflow();
      return;
    }
    this.lastHost = host;
    if (this.tried !== undefined) this.tried.push(host);
    else if (this.retryPolicy?.previousHosts === true) this.tried = [host];
    this.down.setUpstreamHost(host);
    this.attempts++;
    host.activeRequests++;
    this.current = attempt;
    if (slot === 'ready') {
      attempt.holdsSlot = this.cluster.slotted;
      this.send(attempt);
    }
  }

  /**
   * The load balancer's pick, avoiding the host just tried when another exists; with
   * Envoy's previous_hosts retry host predicate, a host any earlier attempt used is
   * re-picked up to host_selection_retry_max_attempts times (then the last pick is used).
   */
  private pickHost(): Host | undefined {
    const ctx = pickContext;
    ctx.hash = this.spec.hash ?? Number.NaN;
    ctx.exclude = this.lastHost;
    ctx.connection = this.spec.connection;
    ctx.headers = this.spec.headers;
    let host = this.cluster.pick(ctx);
    const tried = this.tried;
    if (host !== undefined && tried !== undefined) {
      const max = this.retryPolicy!.policy.hostSelectionRetryMaxAttempts;
      for (let i = 0; i < max && tried.includes(host); i++) {
        const next = this.cluster.pick(ctx);
        if (next === undefined) break;
        host = next;
      }
    }
    // The shared context must not keep this request's objects alive.
    ctx.exclude = undefined;
    ctx.connection = undefined;
    ctx.headers = undefined;
    return host;
  }

  /** Hands an attempt holding a connection slot (or on HTTP/2) to undici; its per-try timeout starts now, as Envoy's does on pool ready. */
  send(attempt: Attempt): void {
    attempt.sent = true;
    attempt.start = performance.now();
    this.cluster.stats.upstream_rq_total.inc();
    if (this.spec.attemptCountHeader === true) this.spec.headers['x-envoy-attempt-count'] = String(this.attempts);
    const perTry = this.retry?.perTryTimeout;
    if (perTry !== undefined && perTry > 0 && attempt === this.current) this.perTryTimer = setTimeout(() => this.onPerTryTimeout(attempt), perTry);
    try {
      // The spec is the dispatch options (no object per attempt): dispatchers read path,
      // method, headers and body; undici ignores the members it does not know.
      (this.spec.dispatcher?.(this.cluster, attempt.host) ?? this.cluster.dispatcherFor(attempt.host)).dispatch(this.spec as unknown as Dispatcher.DispatchOptions, attempt);
    } catch {
      // undici validates synchronously (e.g. a header value it refuses).
      attempt.releaseSlot();
      if (attempt !== this.current) return;
      this.endAttempt(undefined);
      this.fail(Failures.requestRejected);
    }
  }

  connected(attempt: Attempt): void {
    this.cluster.reportConnected(attempt.host);
  }

  /** An attempt leaves the pending queue (cancelled while waiting for a connection). */
  cancelPending(attempt: Attempt): void {
    this.cluster.cancelSlot(this.priority, attempt);
  }

  releaseSlot(): void {
    this.cluster.releaseSlot(this.priority);
  }

  onHeaders(attempt: Attempt, controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[]>): void {
    if (this.finished) return;
    const hedge = attempt !== this.current;
    if (hedge && (this.hedged === undefined || !this.hedged.includes(attempt))) return;
    this.recordStatus(statusCode);
    this.cluster.reportOutcome(attempt.host, statusCode);
    if (this.shouldRetryStatus(statusCode)) {
      // While hedging, a retriable answer is dropped as long as another attempt may still do better.
      if (this.hedged !== undefined && this.hedged.length > 0) {
        if (hedge) this.dropHedge(attempt, new Error('hedge retriable'));
        else this.promoteHedge(new Error('hedge retriable'));
        return;
      }
      if (this.canRetry()) {
        this.endAttempt(new Error('retrying'));
        this.scheduleRetry();
        return;
      }
    }
    if (hedge) {
      // An earlier (hedged) attempt won: it becomes the current one, the later one is cancelled.
      this.endAttempt(new Error('hedge lost'));
      this.hedged!.splice(this.hedged!.indexOf(attempt), 1);
      this.current = attempt;
    }
    this.abortHedges();
    void controller;
    if (this.attempts > 1) this.cluster.stats.upstream_rq_retry_success.inc();
    this.committed = true;
    this.clearPerTry();
    const elapsed = performance.now() - attempt.start;
    this.cluster.stats.upstream_rq_time.record(elapsed);
    this.down.onUpstreamHeaders(statusCode, headers, attempt.host, Math.round(elapsed));
  }

  onData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.finished) return;
    if (!this.down.onUpstreamData(chunk)) {
      controller.pause();
      this.down.onDrain(() => controller.resume());
    }
  }

  onEnd(attempt: Attempt, trailers: Record<string, string | string[]>): void {
    if (attempt !== this.current || this.finished) return;
    this.cluster.stats.upstream_rq_completed.inc();
    this.endAttempt(undefined);
    this.finish();
    let hasTrailers = false;
    for (const _ in trailers) { hasTrailers = true; break; }
    this.down.onUpstreamEnd(hasTrailers ? trailers : undefined);
  }

  /** An attempt ended without a (usable) response: a failure from undici, or this router's per-try timer. */
  onError(attempt: Attempt, f: UpstreamFailure): void {
    if (this.finished) return;
    if (attempt !== this.current) {
      if (this.hedged !== undefined && this.hedged.includes(attempt)) {
        this.reportFailure(attempt, f);
        this.dropHedge(attempt, undefined);
      }
      return;
    }
    this.reportFailure(attempt, f);
    if (!this.committed && this.hedged !== undefined && this.hedged.length > 0) {
      // Hedged attempts are still running: one of them may yet answer.
      this.cluster.stats.upstream_rq_rx_reset.inc();
      this.promoteHedge(undefined);
      return;
    }
    this.endAttempt(undefined);
    if (this.committed) {
      this.cluster.stats.upstream_rq_rx_reset.inc();
      this.finish();
      this.down.onResetAfterHeaders(Flags.UpstreamRemoteReset);
      return;
    }
    if (f.code === 'connect_failure') this.cluster.stats.upstream_cx_connect_fail.inc();
    if (f.code === 'per_try_timeout') this.cluster.stats.upstream_rq_per_try_timeout.inc();
    else this.cluster.stats.upstream_rq_rx_reset.inc();
    if (this.shouldRetryFailure(f) && this.canRetry()) {
      this.scheduleRetry();
      return;
    }
    if (this.attempts > 1) this.down.addFlag(Flags.UpstreamRetryLimitExceeded);
    if (f.code === 'per_try_timeout') this.cluster.stats.upstream_rq_timeout.inc();
    this.fail(f);
  }

  /**
   * Outlier detection hears of a failed attempt as Envoy's router tells it: a reset or
   * connect failure is LocalOriginConnectFailed, a per-try or route timeout
   * LocalOriginTimeout, reported once per attempt (a hedged attempt whose per-try timeout
   * was reported is not reported again at the route timeout). An attempt still waiting
   * for a connection never reached its host and is not reported.
   */
  private reportFailure(attempt: Attempt, f: UpstreamFailure): void {
    if (f.outlier === undefined || !attempt.sent) return;
    if (f.outlier === 'timeout') {
      if (attempt.timeoutReported) return;
      attempt.timeoutReported = true;
    }
    this.cluster.reportLocalOrigin(attempt.host, f.outlier);
  }

  // ---- retries ----------------------------------------------------------------

  private shouldRetryStatus(status: number): boolean {
    return this.retryPolicy !== undefined && retryOnStatus(this.retryPolicy, status);
  }

  private shouldRetryFailure(f: UpstreamFailure): boolean {
    return this.retryPolicy !== undefined && retryOnFailure(this.retryPolicy, f);
  }

  /** Another attempt allowed? (retries left, body replayable, retry breaker/budget.) */
  private canRetry(): boolean {
    const p = this.retryPolicy;
    if (p === undefined) return false;
    // A streamed body was consumed by the first attempt and cannot be replayed.
    this.retryState ??= new RetryState(p, this.cluster, this.priority, this.spec.body === null || Buffer.isBuffer(this.spec.body));
    return this.retryState.tryRetry(this.attempts);
  }

  private scheduleRetry(): void {
    this.cluster.stats.upstream_rq_retry.inc();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.finished) this.dispatchAttempt();
    }, this.retryState!.backoffMs(this.attempts, this.spec.random ?? Math.random));
  }

  // ---- timeouts -------------------------------------------------------------

  private onPerTryTimeout(attempt: Attempt): void {
    this.perTryTimer = undefined;
    if (attempt !== this.current || this.committed || this.finished) return;
    if (this.hedgeOnPerTryTimeout && this.canRetry()) {
      // Envoy's hedge_on_per_try_timeout: keep this attempt and race a new one against it.
      this.cluster.stats.upstream_rq_per_try_timeout.inc();
      this.reportFailure(attempt, Failures.perTryTimeout);
      (this.hedged ??= []).push(attempt);
      this.current = undefined;
      this.cluster.stats.upstream_rq_retry.inc();
      this.dispatchAttempt();
      return;
    }
    attempt.abort(new Error('per try timeout'));
    this.onError(attempt, Failures.perTryTimeout);
  }

  /** The route timeout (DeadlineEntry). */
  onDeadline(): void {
    this.onGlobalTimeout();
  }

  private onGlobalTimeout(): void {
    if (this.finished) return;
    this.cluster.stats.upstream_rq_timeout.inc();
    // Envoy's onResponseTimeout: every attempt still awaiting headers was a timeout on its host.
    if (!this.committed) {
      if (this.current !== undefined) this.reportFailure(this.current, Failures.routeTimeout);
      if (this.hedged !== undefined) for (const h of this.hedged) this.reportFailure(h, Failures.routeTimeout);
    }
    this.endAttempt(new Error('route timeout'));
    if (this.committed) {
      this.finish();
      this.down.onResetAfterHeaders(Flags.UpstreamRequestTimeout);
    } else this.fail(Failures.routeTimeout);
  }

  // ---- bookkeeping ----------------------------------------------------------

  private recordStatus(status: number): void {
    const s = this.cluster.stats;
    if (status < 300) s.upstream_rq_2xx.inc();
    else if (status < 400) s.upstream_rq_3xx.inc();
    else if (status < 500) s.upstream_rq_4xx.inc();
    else s.upstream_rq_5xx.inc();
  }

  private clearPerTry(): void {
    if (this.perTryTimer) {
      clearTimeout(this.perTryTimer);
      this.perTryTimer = undefined;
    }
  }

  /** Ends the current attempt: aborts it when `abortWith` is given, releases its host. */
  private endAttempt(abortWith: Error | undefined): void {
    this.clearPerTry();
    const a = this.current;
    if (!a) return;
    this.current = undefined;
    a.host.activeRequests--;
    if (abortWith) a.abort(abortWith);
    else a.dead = true;
  }

  /** 503 UO with x-envoy-overloaded: no connection and no room in the pending queue. */
  private overflow(): void {
    this.finish();
    this.down.onLocalReply(Failures.overflow.reply, Failures.overflow.responseFlag, OVERLOADED);
  }

  /** Ends a hedged attempt that is not the current one. */
  private dropHedge(a: Attempt, abortWith: Error | undefined): void {
    const i = this.hedged!.indexOf(a);
    if (i < 0) return;
    this.hedged!.splice(i, 1);
    a.host.activeRequests--;
    if (abortWith) a.abort(abortWith);
    else a.dead = true;
  }

  /** The current attempt failed while hedges run: the latest hedge becomes current. */
  private promoteHedge(abortWith: Error | undefined): void {
    this.endAttempt(abortWith);
    this.current = this.hedged!.pop();
  }

  private abortHedges(): void {
    const h = this.hedged;
    if (h === undefined) return;
    while (h.length > 0) this.dropHedge(h[h.length - 1]!, new Error('hedge lost'));
  }

  private fail(f: UpstreamFailure): void {
    this.finish();
    this.down.onLocalReply(f.reply, f.responseFlag);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.abortHedges();
    this.deadlineQueue?.remove(this);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.clearPerTry();
    this.retryState?.release();
    this.cluster.releaseRequest(this.priority);
    this.cluster.stats.upstream_rq_active.dec();
  }
}
