import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import type { HttpFilter, LocalReply, RandomSource } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { headerValue, readRuntimeFraction, type Obj } from '../util/fields.js';
import { compileStringMatcher, type StringTest } from '../util/matchers.js';

/**
 * envoy.extensions.filters.http.cors.v3.Cors (an empty message) with the policy from the
 * route's or virtual host's typed_per_filter_config: envoy.extensions.filters.http.cors.v3.CorsPolicy.
 * Without a policy the filter does nothing.
 */
export const CORS_TYPE_URL = 'envoy.extensions.filters.http.cors.v3.Cors';
export const CORS_POLICY_TYPE_URL = 'envoy.extensions.filters.http.cors.v3.CorsPolicy';

interface CorsPolicy {
  readonly origins: readonly StringTest[];
  readonly allowMethods?: string;
  readonly allowHeaders?: string;
  readonly exposeHeaders?: string;
  readonly maxAge?: string;
  readonly allowCredentials: boolean;
  readonly allowPrivateNetworkAccess: boolean;
  readonly enabled: number;
  readonly shadow: number;
  readonly forwardNotMatchingPreflights: boolean;
}

function decodePolicy(c: Obj, diag: Diagnostics, path: string): CorsPolicy {
  const r = ObjectReader.of(c, path, diag)!; // the chain builder hands over an object
  const origins = r.array('allow_origin_string_match')
    .map(({ value, path: p }) => compileStringMatcher(value, diag, p))
    .filter((x): x is StringTest => x !== undefined);
  const maxAge = r.string('max_age');
  if (maxAge !== undefined && !/^\d+$/.test(maxAge)) diag.error(r.child('max_age'), 'must be a number of seconds');
  // Envoy's CorsFilter::isOriginAllowed: a matcher that matches the literal "*" (Envoy's
  // example writes `safe_regex: "\\*"`) allows every origin.
  if (origins.some((test) => test('*'))) origins.splice(0, origins.length, () => true);
  const policy: CorsPolicy = {
    origins,
    allowMethods: r.string('allow_methods'),
    allowHeaders: r.string('allow_headers'),
    exposeHeaders: r.string('expose_headers'),
    maxAge,
    allowCredentials: r.bool('allow_credentials', false),
    allowPrivateNetworkAccess: r.bool('allow_private_network_access', false),
    // Envoy: filter_enabled defaults to 100%, shadow_enabled to 0%.
    enabled: readRuntimeFraction(r, 'filter_enabled') ?? 1,
    shadow: readRuntimeFraction(r, 'shadow_enabled') ?? 0,
    forwardNotMatchingPreflights: r.bool('forward_not_matching_preflights', true),
  };
  r.finish();
  return policy;
}

function on(fraction: number, random: RandomSource): boolean {
  return fraction >= 1 || (fraction > 0 && random() < fraction);
}

registerHttpFilter({
  kind: 'cors',
  typeUrl: CORS_TYPE_URL,
  perRouteTypeUrls: [CORS_POLICY_TYPE_URL],
  create(cfg, _diag, _path, ctx): HttpFilter {
    const c = ctx.stats.countersFor(cfg.name);
    const random = ctx.random;
    /** Set on streams whose Origin matched: the response gets the CORS headers. */
    const allowed = ctx.streamSlot<{ origin: string; policy: CorsPolicy }>();
    return {
      name: cfg.name,
      typeUrl: CORS_TYPE_URL,
      failurePolicy: 'FAIL_OPEN',
      failureStatus: 500,
      decodeHeaders(req, info, pr): LocalReply | undefined {
        const p = pr as CorsPolicy | undefined;
        if (p === undefined) return undefined;
        const origin = headerValue(req.headers.origin);
        if (origin === undefined) return undefined;
        const enforce = on(p.enabled, random);
        if (!enforce && !on(p.shadow, random)) return undefined;
        const ok = p.origins.some((t) => t(origin));
        c.inc(ok ? 'origin_valid' : 'origin_invalid');
        if (!enforce) return undefined; // shadow: stats only
        const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
        if (!ok) {
          if (preflight && !p.forwardNotMatchingPreflights) return { status: 403, details: 'cors_origin_not_allowed' };
          return undefined;
        }
        if (!preflight) {
          allowed.set(info, { origin, policy: p });
          return undefined;
        }
        const headers: Record<string, string> = { 'access-control-allow-origin': origin };
        if (p.allowMethods) headers['access-control-allow-methods'] = p.allowMethods;
        if (p.allowHeaders) headers['access-control-allow-headers'] = p.allowHeaders;
        if (p.maxAge) headers['access-control-max-age'] = p.maxAge;
        if (p.allowCredentials) headers['access-control-allow-credentials'] = 'true';
        if (p.allowPrivateNetworkAccess && req.headers['access-control-request-private-network'] === 'true') {
          headers['access-control-allow-private-network'] = 'true';
        }
        return { status: 200, headers, details: 'cors_response' };
      },
      encodeHeaders(res, info): undefined {
        const a = allowed.get(info);
        if (a === undefined) return undefined;
        res.headers['access-control-allow-origin'] = a.origin;
        if (a.policy.allowCredentials) res.headers['access-control-allow-credentials'] = 'true';
        if (a.policy.exposeHeaders) res.headers['access-control-expose-headers'] = a.policy.exposeHeaders;
        return undefined;
      },
      streamComplete(info) {
        allowed.clear(info);
      },
      describe: () => ({ kind: 'cors' }),
    };
  },
  decodePerRoute(_t, config, diag, path) {
    return decodePolicy(config, diag, path);
  },
});
