import { decodeFractionalPercent, ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import type { HttpFilter, LocalReply, RandomSource, RequestHeadersView, StreamInfo } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { headerValue, type Obj } from '../util/fields.js';
import { compileHeaderMatcher, type HeaderTest } from '../util/matchers.js';

/** envoy.extensions.filters.http.fault.v3.HTTPFault (also accepted per route). */
export const FAULT_TYPE_URL = 'envoy.extensions.filters.http.fault.v3.HTTPFault';

const H_DELAY = 'x-envoy-fault-delay-request';
const H_DELAY_PCT = 'x-envoy-fault-delay-request-percentage';
const H_ABORT = 'x-envoy-fault-abort-request';
const H_ABORT_PCT = 'x-envoy-fault-abort-request-percentage';

interface Fault {
  readonly delay?: { readonly fixedMs?: number; readonly fromHeader: boolean; readonly fraction: number };
  readonly abort?: { readonly status?: number; readonly fromHeader: boolean; readonly fraction: number };
  readonly headers: readonly HeaderTest[];
  readonly upstreamCluster?: string;
  readonly maxActiveFaults?: number;
}

function percentageOf(r: ObjectReader): number {
  const p = r.object('percentage');
  if (!p) return 0; // Envoy: an unset percentage is 0%, so no fault (tests must set it).
  const before = r.diag.errors.length;
  const f = decodeFractionalPercent(p);
  return r.diag.errors.length > before ? 0 : f;
}

function decodeFault(c: Obj, diag: Diagnostics, path: string): Fault {
  const r = ObjectReader.of(c, path, diag)!; // the chain builder hands over an object
  const d = r.object('delay');
  const a = r.object('abort');
  let delay: Fault['delay'];
  let abort: Fault['abort'];
  if (d) {
    const fixedMs = d.duration('fixed_delay');
    const fromHeader = d.has('header_delay');
    d.accept('header_delay');
    if ((fixedMs === undefined) === !fromHeader) diag.error(d.path, 'needs exactly one of fixed_delay, header_delay');
    delay = { fixedMs, fromHeader, fraction: percentageOf(d) };
    d.finish();
  }
  if (a) {
    const status = a.optionalInt('http_status', 200, 599);
    const fromHeader = a.has('header_abort');
    a.accept('header_abort');
    if (a.has('grpc_status')) {
      a.accept('grpc_status');
      diag.error(a.child('grpc_status'), 'gRPC aborts are not supported by pilotfish');
    } else if ((status === undefined) === !fromHeader) diag.error(a.path, 'needs exactly one of http_status, header_abort');
    abort = { status, fromHeader, fraction: percentageOf(a) };
    a.finish();
  }
  // response_rate_limit, downstream_nodes and the runtime keys: reported by finish() as not supported.
  const headers = r.array('headers')
    .map(({ value, path: hp }) => compileHeaderMatcher(value, diag, hp))
    .filter((x): x is HeaderTest => x !== undefined);
  const maxActiveFaults = r.optionalInt('max_active_faults', 0, 0xffff_ffff);
  const upstreamCluster = r.string('upstream_cluster');
  r.finish();
  return { delay, abort, headers, upstreamCluster, maxActiveFaults };
}

/** Header-requested percentage can only lower the configured one (Envoy). */
function headerFraction(req: RequestHeadersView, name: string, configured: number): number {
  const v = headerValue(req.headers[name]);
  if (v === undefined || !/^\d+$/.test(v)) return configured;
  return Math.min(configured, Number(v) / 100);
}

function hit(fraction: number, random: RandomSource): boolean {
  return fraction >= 1 || (fraction > 0 && random() < fraction);
}

registerHttpFilter({
  kind: 'fault',
  typeUrl: FAULT_TYPE_URL,
  perRouteTypeUrls: [FAULT_TYPE_URL],
  create(cfg, diag, path, ctx): HttpFilter {
    const own = decodeFault(cfg.config, diag, path);
    const c = ctx.stats.countersFor(cfg.name);
    const random = ctx.random;
    let active = 0;

    const abortReply = (f: Fault, req: RequestHeadersView): LocalReply | undefined => {
      if (!f.abort) return undefined;
      let status = f.abort.status;
      if (f.abort.fromHeader) {
        const h = headerValue(req.headers[H_ABORT]);
        const n = h === undefined ? NaN : Number(h);
        if (!Number.isInteger(n) || n < 200 || n >= 600) return undefined;
        status = n;
      }
      if (status === undefined || !hit(headerFraction(req, H_ABORT_PCT, f.abort.fraction), random)) return undefined;
      c.inc('aborts_injected');
      return { status, headers: { 'content-type': 'text/plain' }, body: 'fault filter abort', details: 'fault_filter_abort' };
    };

    return {
      name: cfg.name,
      typeUrl: FAULT_TYPE_URL,
      failurePolicy: 'FAIL_OPEN',
      failureStatus: 500,
      decodeHeaders(req, info: StreamInfo, pr) {
        const f = (pr as Fault | undefined) ?? own;
        if (f.upstreamCluster !== undefined && info.clusterName !== f.upstreamCluster) return undefined;
        if (f.headers.length > 0) {
          const get = (n: string): string | undefined => (n === ':method' ? req.method : n === ':path' ? req.path : headerValue(req.headers[n]));
          if (!f.headers.every((t) => t(get))) return undefined;
        }
        if (f.maxActiveFaults !== undefined && active >= f.maxActiveFaults) {
          c.inc('faults_overflow');
          return undefined;
        }
        let delayMs: number | undefined;
        if (f.delay) {
          if (f.delay.fromHeader) {
            const h = headerValue(req.headers[H_DELAY]);
            if (h !== undefined && /^\d+$/.test(h)) delayMs = Number(h);
          } else {
            delayMs = f.delay.fixedMs;
          }
          if (delayMs !== undefined && !hit(headerFraction(req, H_DELAY_PCT, f.delay.fraction), random)) delayMs = undefined;
        }
        if (delayMs === undefined || delayMs <= 0) return abortReply(f, req);
        c.inc('delays_injected');
        active++;
        return new Promise<LocalReply | undefined>((resolve) => {
          setTimeout(() => {
            active--;
            resolve(abortReply(f, req));
          }, delayMs);
        });
      },
      describe: () => ({
        kind: 'fault',
        delay: own.delay && { fixed_delay_ms: own.delay.fixedMs, header: own.delay.fromHeader, percent: own.delay.fraction * 100 },
        abort: own.abort && { http_status: own.abort.status, header: own.abort.fromHeader, percent: own.abort.fraction * 100 },
        active_faults: active,
      }),
    };
  },
  decodePerRoute(_t, config, diag, path) {
    return decodeFault(config, diag, path);
  },
});
