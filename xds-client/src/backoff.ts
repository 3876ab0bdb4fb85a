/** Jittered exponential backoff ("full jitter"): pure, the random source is injected. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 30_000 };

/** Delay before retry number `attempt` (0-based). Never below 10% of the capped step. */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(step * (0.1 + 0.9 * random()));
}
