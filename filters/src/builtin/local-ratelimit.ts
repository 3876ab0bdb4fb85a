import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import type { HttpFilter, LocalReply } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import type { FilterCounters } from '../stats.js';
import { isObj, raw, readRuntimeFraction, type Obj } from '../util/fields.js';
import { applyHeaderOps, applyHeaderOpsToRecord, readHeaderValueOption, type HeaderOp } from '../util/headers.js';

/** envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit (also its per-route form). */
export const LOCAL_RATELIMIT_TYPE_URL = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/**
 * Token bucket refilled lazily on use, in whole fill intervals, so it behaves like
 * Envoy's timer-driven bucket without a timer per bucket. Time is whatever the caller's
 * clock says (monotonic ms); the bucket starts full at its first use, so decoding config
 * needs no clock.
 */
export class TokenBucket {
  private tokens: number;
  private lastFill: number | undefined;

  constructor(readonly maxTokens: number, readonly tokensPerFill: number, readonly fillIntervalMs: number) {
    this.tokens = maxTokens;
  }

  private refill(now: number): void {
    if (this.lastFill === undefined) {
      this.lastFill = now;
      return;
    }
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
    this.refill(now);
    return Math.max(0, Math.ceil((this.lastFill! + this.fillIntervalMs - now) / 1000));
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

const X_RATELIMIT_OPTIONS = ['OFF', 'DRAFT_VERSION_03'] as const;

function decodeLimiter(c: Obj, diag: Diagnostics, path: string): Limiter | undefined {
  const before = diag.errors.length;
  const r = ObjectReader.of(c, path, diag);
  if (!r) return undefined;
  r.requiredString('stat_prefix');
  const tb = r.object('token_bucket');
  let bucket: TokenBucket | undefined;
  if (tb === undefined) {
    if (!r.has('token_bucket')) diag.error(r.child('token_bucket'), 'is required');
  } else {
    const max = tb.optionalInt('max_tokens', 1, 0xffff_ffff);
    const perFill = tb.optionalInt('tokens_per_fill', 1, 0xffff_ffff) ?? 1;
    const interval = tb.duration('fill_interval');
    tb.finish();
    if (max === undefined) diag.error(tb.child('max_tokens'), 'is required');
    if (interval === undefined || interval <= 0) diag.error(tb.child('fill_interval'), 'is required and must be positive');
    if (max !== undefined && interval !== undefined && interval > 0) bucket = new TokenBucket(max, perFill, interval);
  }
  const statusObj = r.object('status');
  const status = statusObj?.int('code', 429, 400, 599) ?? 429;
  statusObj?.finish();
  const ops = (field: string): HeaderOp[] => r.objects(field).map(readHeaderValueOption).filter((x): x is HeaderOp => x !== undefined);
  if (r.array('descriptors').length > 0) diag.warn(r.child('descriptors'), 'descriptor-based limits are not supported by pilotfish: ignored');
  const xrl = r.enumOf('enable_x_ratelimit_headers', X_RATELIMIT_OPTIONS, 'OFF');
  const limiter: Limiter = {
    bucket: bucket!,
    // Envoy: both default to 0%, i.e. a filter with neither set does nothing.
    enabled: readRuntimeFraction(r, 'filter_enabled') ?? 0,
    enforced: readRuntimeFraction(r, 'filter_enforced') ?? 0,
    status,
    responseHeaders: ops('response_headers_to_add'),
    notEnforcedHeaders: ops('request_headers_to_add_when_not_enforced'),
    xRateLimitHeaders: xrl === 'DRAFT_VERSION_03',
  };
  r.finish();
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
  create(cfg, diag, path, ctx): HttpFilter | undefined {
    // Envoy allows a filter-level config without a bucket when routes bring their own.
    const hasBucket = isObj(raw(cfg.config, 'token_bucket'));
    const own = hasBucket ? decodeLimiter(cfg.config, diag, path) : undefined;
    if (hasBucket && own === undefined) return undefined;
    const c: FilterCounters = ctx.stats.countersFor(cfg.name);
    const { clock, random } = ctx;
    const seen = ctx.streamSlot<Seen>();
    return {
      name: cfg.name,
      typeUrl: LOCAL_RATELIMIT_TYPE_URL,
      failurePolicy: 'FAIL_OPEN',
      failureStatus: 500,
      decodeHeaders(req, info, pr): LocalReply | undefined {
        const l = (pr as Limiter | undefined) ?? own;
        if (l === undefined) return undefined;
        if (l.enabled < 1 && random() >= l.enabled) return undefined;
        c.inc('enabled');
        const now = clock.monotonicMs();
        const ok = l.bucket.tryConsume(now);
        if (l.xRateLimitHeaders) seen.set(info, { limiter: l, remaining: l.bucket.remaining(now) });
        if (ok) {
          c.inc('ok');
          return undefined;
        }
        c.inc('rate_limited');
        const enforced = l.enforced >= 1 || random() < l.enforced;
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
        res.headers['x-ratelimit-reset'] = String(s.limiter.bucket.resetSeconds(clock.monotonicMs()));
        return undefined;
      },
      streamComplete(info) {
        seen.clear(info);
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
