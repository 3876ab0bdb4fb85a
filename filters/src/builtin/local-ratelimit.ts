import type { Diagnostics } from '../../../config/src/index.js';
import type { HttpFilter, LocalReply, StreamInfo } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { countersFor, type FilterCounters } from '../stats.js';
import { arr, duration, int, isObj, obj, raw, runtimeFraction, str, type Obj } from '../util/fields.js';
import { applyHeaderOps, applyHeaderOpsToRecord, decodeHeaderValueOption, type HeaderOp } from '../util/headers.js';

/** envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit (also its per-route form). */
export const LOCAL_RATELIMIT_TYPE_URL = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/**
 * Token bucket refilled lazily on use, in whole fill intervals, so it behaves like
 * Envoy's timer-driven bucket without a timer per bucket.
 */
export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(readonly maxTokens: number, readonly tokensPerFill: number, readonly fillIntervalMs: number, now: number) {
    this.tokens = maxTokens;
    this.lastFill = now;
  }

  private refill(now: number): void {
    const n = Math.floor((now - this.lastFill) / this.fillIntervalMs);
    if (n > 0) {
      this.tokens = Math.min(this.maxTokens, this.tokens + n * this.tokensPerFill);
      this.lastFill += n * this.fillIntervalMs;
    }
  }

  tryConsume(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  remaining(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  /** Seconds until the next fill (x-ratelimit-reset). */
  resetSeconds(now: number): number {
    return Math.max(0, Math.ceil((this.lastFill + this.fillIntervalMs - now) / 1000));
  }
}

interface Limiter {
  readonly bucket: TokenBucket;
  readonly enabled: number;
  readonly enforced: number;
  readonly status: number;
  readonly responseHeaders: readonly HeaderOp[];
  readonly notEnforcedHeaders: readonly HeaderOp[];
  readonly xRateLimitHeaders: boolean;
}

function decodeLimiter(c: Obj, diag: Diagnostics, path: string): Limiter | undefined {
  const before = diag.errors.length;
  if (str(c, 'stat_prefix', diag, path) === undefined) diag.error(`${path}.stat_prefix`, 'is required');
  const tb = obj(c, 'token_bucket', diag, path);
  let bucket: TokenBucket | undefined;
  if (tb === undefined) {
    diag.error(`${path}.token_bucket`, 'is required');
  } else {
    const tp = `${path}.token_bucket`;
    const max = int(tb, 'max_tokens', diag, tp, { min: 1 });
    const perFill = int(tb, 'tokens_per_fill', diag, tp, { min: 1 }) ?? 1;
    const interval = duration(tb, 'fill_interval', diag, tp);
    if (max === undefined) diag.error(`${tp}.max_tokens`, 'is required');
    if (interval === undefined || interval <= 0) diag.error(`${tp}.fill_interval`, 'is required and must be positive');
    if (max !== undefined && interval !== undefined && interval > 0) bucket = new TokenBucket(max, perFill, interval, performance.now());
  }
  const statusObj = obj(c, 'status', diag, path);
  const status = statusObj ? int(statusObj, 'code', diag, `${path}.status`, { min: 400, max: 599 }) ?? 429 : 429;
  const ops = (field: string): HeaderOp[] => arr(c, field, diag, path)
    .map((x, i) => decodeHeaderValueOption(x, diag, `${path}.${field}[${i}]`))
    .filter((x): x is HeaderOp => x !== undefined);
  if (arr(c, 'descriptors', diag, path).length > 0) diag.warn(`${path}.descriptors`, 'descriptor-based limits are not supported by pilotfish: ignored');
  const xrl = raw(c, 'enable_x_ratelimit_headers') ?? 'OFF';
  if (xrl !== 'OFF' && xrl !== 'DRAFT_VERSION_03') diag.error(`${path}.enable_x_ratelimit_headers`, `unknown value ${JSON.stringify(xrl)}`);
  const limiter: Limiter = {
    bucket: bucket!,
    // Envoy: both default to 0%, i.e. a filter with neither set does nothing.
    enabled: runtimeFraction(c, 'filter_enabled', diag, path) ?? 0,
    enforced: runtimeFraction(c, 'filter_enforced', diag, path) ?? 0,
    status,
    responseHeaders: ops('response_headers_to_add'),
    notEnforcedHeaders: ops('request_headers_to_add_when_not_enforced'),
    xRateLimitHeaders: xrl === 'DRAFT_VERSION_03',
  };
  return diag.errors.length > before ? undefined : limiter;
}

interface Seen {
  readonly limiter: Limiter;
  readonly remaining: number;
}

registerHttpFilter({
  kind: 'local_ratelimit',
  typeUrl: LOCAL_RATELIMIT_TYPE_URL,
  perRouteTypeUrls: [LOCAL_RATELIMIT_TYPE_URL],
  create(cfg, diag, path): HttpFilter | undefined {
    // Envoy allows a filter-level config without a bucket when routes bring their own.
    const hasBucket = isObj(raw(cfg.config, 'token_bucket'));
    const own = hasBucket ? decodeLimiter(cfg.config, diag, path) : undefined;
    if (hasBucket && own === undefined) return undefined;
    const c: FilterCounters = countersFor(cfg.name);
    const seen = new WeakMap<StreamInfo, Seen>();
    return {
      name: cfg.name,
      typeUrl: LOCAL_RATELIMIT_TYPE_URL,
      failurePolicy: 'FAIL_OPEN',
      failureStatus: 500,
      decodeHeaders(req, info, pr): LocalReply | undefined {
        const l = (pr as Limiter | undefined) ?? own;
        if (l === undefined) return undefined;
        if (l.enabled < 1 && Math.random() >= l.enabled) return undefined;
        c.inc('enabled');
        const now = performance.now();
        const ok = l.bucket.tryConsume(now);
        if (l.xRateLimitHeaders) seen.set(info, { limiter: l, remaining: l.bucket.remaining(now) });
        if (ok) {
          c.inc('ok');
          return undefined;
        }
        c.inc('rate_limited');
        const enforced = l.enforced >= 1 || Math.random() < l.enforced;
        if (!enforced) {
          applyHeaderOps(l.notEnforcedHeaders, req.headers);
          return undefined;
        }
        c.inc('enforced');
        const headers: Record<string, string> = { 'content-type': 'text/plain' };
        applyHeaderOpsToRecord(l.responseHeaders, headers);
        if (l.xRateLimitHeaders) {
          headers['x-ratelimit-limit'] = String(l.bucket.maxTokens);
          headers['x-ratelimit-remaining'] = '0';
          headers['x-ratelimit-reset'] = String(l.bucket.resetSeconds(now));
        }
        return { status: l.status, headers, body: 'local_rate_limited', details: 'local_rate_limited' };
      },
      encodeHeaders(res, info): undefined {
        const s = seen.get(info);
        if (s === undefined || res.headers['x-ratelimit-limit'] !== undefined) return undefined;
        res.headers['x-ratelimit-limit'] = String(s.limiter.bucket.maxTokens);
        res.headers['x-ratelimit-remaining'] = String(s.remaining);
        res.headers['x-ratelimit-reset'] = String(s.limiter.bucket.resetSeconds(performance.now()));
        return undefined;
      },
      streamComplete(info) {
        seen.delete(info);
      },
      describe: () => ({
        kind: 'local_ratelimit',
        max_tokens: own?.bucket.maxTokens,
        tokens_per_fill: own?.bucket.tokensPerFill,
        fill_interval_ms: own?.bucket.fillIntervalMs,
      }),
    };
  },
  decodePerRoute(_t, config, diag, path) {
    return decodeLimiter(config, diag, path);
  },
});
