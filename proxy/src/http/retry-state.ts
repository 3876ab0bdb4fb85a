import type { RetryPolicy } from '../../../config/src/index.js';
import type { UpstreamFailure } from './upstream-failure.js';

/**
 * Envoy's router retry state (router/retry_state_impl.cc) in two parts: the route's
 * retry_on compiled to bits once per policy, and the per-request state (retries left,
 * the retry breaker/budget slot it holds, back-off). The per-request part is created only
 * when a retry is first considered, so a request that never fails allocates nothing here.
 */

const RETRY_5XX = 1;
const GATEWAY_ERROR = 2;
const RESET = 4;
const CONNECT_FAILURE = 8;
const RETRIABLE_4XX = 16;
const REFUSED_STREAM = 32;
const RETRIABLE_STATUS_CODES = 64;
const RESET_BEFORE_REQUEST = 128;

const BITS: Readonly<Record<string, number>> = {
  '5xx': RETRY_5XX, 'gateway-error': GATEWAY_ERROR, reset: RESET, 'connect-failure': CONNECT_FAILURE,
  'retriable-4xx': RETRIABLE_4XX, 'refused-stream': REFUSED_STREAM, 'retriable-status-codes': RETRIABLE_STATUS_CODES,
  'reset-before-request': RESET_BEFORE_REQUEST,
};

/** A route's retry policy, retry_on parsed once. */
export interface CompiledRetryPolicy {
  readonly policy: RetryPolicy;
  readonly retryOn: number;
  /** retry_host_predicate names envoy.retry_host_predicates.previous_hosts: avoid every host already tried. */
  readonly previousHosts: boolean;
}

const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';

const compiled = new WeakMap<RetryPolicy, CompiledRetryPolicy>();

/** Compiled once per policy object (route tables compile at build time; this caches the rest). */
export function compileRetryPolicy(policy: RetryPolicy): CompiledRetryPolicy {
  let c = compiled.get(policy);
  if (c === undefined) {
    let bits = 0;
    for (const on of policy.retryOn) bits |= BITS[on] ?? 0;
    c = { policy, retryOn: bits, previousHosts: policy.retryHostPredicates.includes(PREVIOUS_HOSTS) };
    compiled.set(policy, c);
  }
  return c;
}

/** retry_on for an upstream answer (Envoy's wouldRetryFromHeaders, status part). */
export function retryOnStatus(p: CompiledRetryPolicy, status: number): boolean {
  const on = p.retryOn;
  if (on === 0) return false;
  if (on & RETRY_5XX && status >= 500) return true;
  if (on & GATEWAY_ERROR && (status === 502 || status === 503 || status === 504)) return true;
  if (on & RETRIABLE_4XX && status === 409) return true;
  if (on & RETRIABLE_STATUS_CODES && p.policy.retriableStatusCodes.includes(status)) return true;
  return false;
}

/** retry_on for a failure without an answer (Envoy's wouldRetryFromReset). */
export function retryOnFailure(p: CompiledRetryPolicy, f: UpstreamFailure): boolean {
  if (!f.retryable) return false;
  const on = p.retryOn;
  if (on & RETRY_5XX) return true; // 5xx covers connect failures, resets and timeouts
  switch (f.code) {
    case 'connect_failure': return (on & (CONNECT_FAILURE | RESET | GATEWAY_ERROR | RESET_BEFORE_REQUEST)) !== 0;
    case 'per_try_timeout': return (on & (GATEWAY_ERROR | RESET)) !== 0;
    case 'refused_stream': return (on & (REFUSED_STREAM | RESET)) !== 0;
    default: return (on & RESET) !== 0;
  }
}

/** What the retry state needs of the cluster: its retry breaker (or budget) and stats. */
export interface RetryCluster {
  tryAcquireRetry(priority: 'DEFAULT' | 'HIGH'): boolean;
  releaseRetry(priority: 'DEFAULT' | 'HIGH'): void;
  readonly stats: { readonly upstream_rq_retry_limit_exceeded: { inc(): void }; readonly upstream_rq_retry_overflow: { inc(): void } };
}

/** One request's retries. */
export class RetryState {
  private holdsRetry = false;

  constructor(
    readonly policy: CompiledRetryPolicy,
    private readonly cluster: RetryCluster,
    private readonly priority: 'DEFAULT' | 'HIGH',
    /** False once a streamed body was consumed by the first attempt: it cannot be replayed. */
    private readonly replayable: boolean,
  ) {}

  /** Whether retry_on names this answer or failure. */
  shouldRetry(outcome: UpstreamFailure | number): boolean {
    return typeof outcome === 'number' ? retryOnStatus(this.policy, outcome) : retryOnFailure(this.policy, outcome);
  }

  /** Retries left after `attempts` attempts. */
  remaining(attempts: number): number {
    return Math.max(0, this.policy.policy.numRetries - (attempts - 1));
  }

  /**
   * May another attempt start after `attempts`? Checks the retry limit, replayability and
   * the cluster's retry breaker or budget (one slot held for the rest of the request).
   */
  tryRetry(attempts: number): boolean {
    const n = this.policy.policy.numRetries;
    if (attempts > n) {
      if (n > 0) this.cluster.stats.upstream_rq_retry_limit_exceeded.inc();
      return false;
    }
    if (!this.replayable) return false;
    if (!this.holdsRetry) {
      if (!this.cluster.tryAcquireRetry(this.priority)) {
        this.cluster.stats.upstream_rq_retry_overflow.inc();
        return false;
      }
      this.holdsRetry = true;
    }
    return true;
  }

  /** Envoy's fully jittered exponential back-off before retry number `attempts`: [0, base * 2^(n-1)) capped at max. */
  backoffMs(attempts: number, random: () => number): number {
    const { baseInterval, maxInterval } = this.policy.policy.backoff;
    return random() * Math.min(maxInterval, baseInterval * 2 ** (attempts - 1));
  }

  /** The request is over: give back the breaker slot. */
  release(): void {
    if (this.holdsRetry) {
      this.holdsRetry = false;
      this.cluster.releaseRetry(this.priority);
    }
  }
}
