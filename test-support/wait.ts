/**
 * Waiting in tests: on a condition, never on the clock. One helper for every part of
 * the repo (it imports nothing from src/, so any test can use it without a cycle).
 *
 * Deadlines are generous on purpose: the suite runs two files at a time on a 2-core
 * machine that may be busy with other work, and a deadline only bounds how long a
 * real failure takes to report. A test that needs "within X" semantics asserts X on
 * its own measurement, not through this deadline.
 */

/** Default deadline for a condition to come true (ms). */
export const DEFAULT_WAIT_MS = 30_000;

export interface WaitOptions {
  /** Give up after this many ms (default DEFAULT_WAIT_MS). */
  readonly timeoutMs?: number;
  /** Poll interval in ms (default 25). */
  readonly intervalMs?: number;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class WaitTimeout extends Error {
  constructor(what: string, ms: number, last: string | undefined) {
    super(`timed out after ${ms} ms waiting for ${what}${last ? ` (last seen: ${last})` : ''}`);
  }
}

/**
 * Polls `cond` until it returns a truthy value and resolves with that value. Rejects
 * with "timed out after N ms waiting for <what>" (plus the last value of `state`, or
 * the last error `cond` threw) when the deadline passes, so the failure says what was
 * awaited. `cond` may throw while the condition is not yet reachable (e.g. a request
 * to a server that is still starting): that counts as "not yet".
 */
export async function until<T>(
  what: string,
  cond: () => T | Promise<T>,
  opts: WaitOptions & { readonly state?: () => unknown } = {},
): Promise<NonNullable<T>> {
  const ms = opts.timeoutMs ?? DEFAULT_WAIT_MS;
  const step = opts.intervalMs ?? 25;
  const end = Date.now() + ms;
  let lastError: string | undefined;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
      lastError = undefined;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() >= end) {
      let last = lastError;
      if (opts.state) {
        try {
          last = JSON.stringify(opts.state());
        } catch (e) {
          last = String(e);
        }
      }
      throw new WaitTimeout(what, ms, last);
    }
    await sleep(Math.min(step, Math.max(1, end - Date.now())));
  }
}

/**
 * Like until(), but resolves false instead of rejecting, for `t.ok(await eventually(...), what)`
 * where the test should carry on to its later assertions after a miss.
 */
export async function eventually(cond: () => unknown, opts: WaitOptions = {}): Promise<boolean> {
  try {
    await until('condition', cond, opts);
    return true;
  } catch (e) {
    if (e instanceof WaitTimeout) return false;
    throw e;
  }
}
