import t from 'tap';
import fc from 'fast-check';
import type { RetryPolicy } from '../../../config/src/index.js';
import { compileRetryPolicy, retryOnFailure, retryOnStatus, RetryState, type RetryCluster } from '../../src/http/retry-state.js';
import { Failures } from '../../src/http/upstream-failure.js';

const policy = (retryOn: string[], x: Partial<RetryPolicy> = {}): RetryPolicy => ({
  retryOn: new Set(retryOn), numRetries: 2, backoff: { baseInterval: 25, maxInterval: 250 }, retriableStatusCodes: [418],
  hostSelectionRetryMaxAttempts: 1, retryHostPredicates: [], ...x,
} as RetryPolicy);

/** A retry breaker with `limit` slots, counting like the cluster's. */
function breaker(limit: number): RetryCluster & { held: number; limitExceeded: number; overflow: number } {
  const b = {
    held: 0, limitExceeded: 0, overflow: 0,
    tryAcquireRetry: () => (b.held < limit ? (b.held++, true) : false),
    releaseRetry: () => { b.held--; },
    stats: { upstream_rq_retry_limit_exceeded: { inc: () => { b.limitExceeded++; } }, upstream_rq_retry_overflow: { inc: () => { b.overflow++; } } },
  };
  return b;
}

t.test('retry_on is parsed once per policy object', async (t) => {
  const p = policy(['5xx']);
  t.equal(compileRetryPolicy(p), compileRetryPolicy(p), 'cached');
  t.equal(compileRetryPolicy(policy(['bogus'])).retryOn, 0, 'unknown conditions retry nothing');
});

t.test('status conditions as Envoy names them', async (t) => {
  const on = (conds: string[], s: number) => retryOnStatus(compileRetryPolicy(policy(conds)), s);
  t.ok(on(['5xx'], 500));
  t.notOk(on(['5xx'], 499));
  t.ok(on(['gateway-error'], 503));
  t.notOk(on(['gateway-error'], 500));
  t.ok(on(['retriable-4xx'], 409));
  t.ok(on(['retriable-status-codes'], 418));
  t.notOk(on(['retriable-status-codes'], 419));
  t.notOk(on(['connect-failure'], 503), 'connect-failure is not about answers');
  fc.assert(fc.property(fc.integer({ min: 100, max: 599 }), (s) => on(['5xx'], s) === s >= 500));
});

t.test('failure conditions', async (t) => {
  const on = (conds: string[], f = Failures.connectFailure) => retryOnFailure(compileRetryPolicy(policy(conds)), f);
  t.ok(on(['connect-failure']));
  t.ok(on(['reset-before-request']));
  t.notOk(on(['connect-failure'], Failures.connectionTermination), 'a reset may have reached the upstream: not a connect failure');
  t.ok(on(['reset'], Failures.connectionTermination));
  t.ok(on(['refused-stream'], Failures.refusedStream));
  t.ok(on(['gateway-error'], Failures.perTryTimeout));
  t.ok(on(['5xx'], Failures.protocolError), '5xx covers resets');
  t.notOk(on(['5xx'], Failures.overflow), 'our own limits are never retried');
});

t.test('RetryState: limit, replayability, breaker slot held once, back-off', async (t) => {
  const b = breaker(1);
  const s = new RetryState(compileRetryPolicy(policy(['5xx'])), b, 'DEFAULT', true);
  t.ok(s.shouldRetry(503));
  t.ok(s.shouldRetry(Failures.connectFailure));
  t.equal(s.remaining(1), 2);
  t.ok(s.tryRetry(1), 'first retry');
  t.equal(b.held, 1, 'one breaker slot held');
  t.ok(s.tryRetry(2), 'second retry re-uses the slot');
  t.equal(b.held, 1);
  t.notOk(s.tryRetry(3), 'num_retries reached');
  t.equal(b.limitExceeded, 1);
  s.release();
  s.release();
  t.equal(b.held, 0, 'released once');

  const other = new RetryState(compileRetryPolicy(policy(['5xx'])), b, 'DEFAULT', true);
  b.tryAcquireRetry('DEFAULT');
  t.notOk(other.tryRetry(1), 'breaker full: no retry');
  t.equal(b.overflow, 1);

  t.notOk(new RetryState(compileRetryPolicy(policy(['5xx'])), breaker(5), 'DEFAULT', false).tryRetry(1), 'a streamed body cannot be replayed');

  const st = new RetryState(compileRetryPolicy(policy(['5xx'])), breaker(5), 'DEFAULT', true);
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (n, r) => {
    const d = st.backoffMs(n, () => r);
    return d >= 0 && d < Math.min(250, 25 * 2 ** (n - 1)) + 1e-9 && (r === 0 || d > 0);
  }));
  t.equal(st.backoffMs(1, () => 0.5), 12.5, 'jittered within [0, base)');
  t.equal(st.backoffMs(10, () => 0.5), 125, 'capped at max_interval');
});
