/**
 * envoy.filters.http.grpc_stats (Envoy's, which istiod puts in every sidecar HTTP chain):
 * per gRPC call, in the route's cluster's scope, `cluster.<c>.grpc.[<service>.<method>.]`
 * `total`, `success`, `failure`. Per-method names follow Envoy's rules:
 * individual_method_stats_allowlist names them, else stats_for_all_methods (default
 * false) decides; otherwise the generic `grpc.*` names. A call succeeds when its
 * grpc-status (trailers, else a trailers-only response's headers) is 0; without one, an
 * HTTP status maps as Envoy maps it (200 without a status is UNKNOWN, a failure).
 *
 * Not counted: request/response message counts (pilotfish's filters see no response body)
 * and upstream_rq_time; `emit_filter_state` is accepted and emits nothing — both named in
 * one warning when configured.
 */
import { ObjectReader, type Diagnostics, type HttpFilterConfig } from '../../config/src/index.js';
import type { FactoryContext, HttpFilter, HttpFilterFactory, StreamInfo } from '../../filters/src/index.js';

export const GRPC_STATS_TYPE = 'envoy.extensions.filters.http.grpc_stats.v3.FilterConfig';

export interface GrpcStatsConfig {
  readonly statsForAllMethods: boolean;
  /** service -> allowed methods; undefined when no allowlist is configured. */
  readonly allowlist: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  readonly replaceDots: boolean;
}

export function decodeGrpcStatsConfig(config: Readonly<Record<string, unknown>>, diag: Diagnostics, path: string): GrpcStatsConfig | undefined {
  const r = ObjectReader.of(config, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const unsupported: string[] = [];
  if (r.bool('emit_filter_state', false)) unsupported.push('emit_filter_state (no message counts to emit)');
  if (r.bool('enable_upstream_stats', false)) unsupported.push('enable_upstream_stats (upstream_rq_time)');
  const sfam = r.get('stats_for_all_methods');
  let statsForAllMethods = false;
  if (typeof sfam === 'boolean') statsForAllMethods = sfam;
  else if (sfam !== null && typeof sfam === 'object' && typeof (sfam as { value?: unknown }).value === 'boolean') statsForAllMethods = (sfam as { value: boolean }).value;
  else if (sfam !== undefined) diag.error(r.child('stats_for_all_methods'), 'expected a boolean (google.protobuf.BoolValue)');
  let allowlist: Map<string, Set<string>> | undefined;
  const al = r.object('individual_method_stats_allowlist');
  if (al) {
    allowlist = new Map();
    for (const s of al.objects('services')) {
      const name = s.requiredString('name');
      const methods = s.strings('method_names');
      s.finish();
      if (name !== undefined) allowlist.set(name, new Set(methods));
    }
    al.finish();
    if (sfam !== undefined) diag.error(r.path, 'only one of individual_method_stats_allowlist and stats_for_all_methods may be set');
  }
  const replaceDots = r.bool('replace_dots_in_grpc_service_name', false);
  r.finish();
  if (unsupported.length > 0) diag.warn(path, `not supported by pilotfish, accepted without effect: ${unsupported.join(', ')}; calls are counted (total, success, failure)`);
  return diag.errors.length > before ? undefined : { statsForAllMethods, allowlist, replaceDots };
}

/** `/pkg.Service/Method` -> [service, method], or undefined for a path that is not a gRPC method. */
export function grpcMethod(path: string): [string, string] | undefined {
  const m = /^\/([^/?]+)\/([^/?]+)$/.exec(path.split('?')[0]!);
  return m ? [m[1]!, m[2]!] : undefined;
}

/** The stat prefix under `cluster.<c>.` for one call: `grpc.` or `grpc.<service>.<method>.`. */
export function statPrefix(config: GrpcStatsConfig, path: string): string {
  const sm = grpcMethod(path);
  if (!sm) return 'grpc.';
  const [service, method] = sm;
  const named = config.allowlist ? config.allowlist.get(service)?.has(method) === true : config.statsForAllMethods;
  if (!named) return 'grpc.';
  return `grpc.${config.replaceDots ? service.replace(/\./g, '_') : service}.${method}.`;
}

/** Envoy's Grpc::Utility::httpToGrpcStatus for a response without grpc-status. */
export function grpcStatusOf(httpStatus: number, headerStatus: string | undefined, trailerStatus: string | undefined): number {
  const s = trailerStatus ?? headerStatus;
  if (s !== undefined && /^\d+$/.test(s)) return Number(s);
  switch (httpStatus) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

interface CallState {
  readonly prefix: string;
  headerStatus: string | undefined;
}
const STATE = 'envoy.filters.http.grpc_stats';

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export const grpcStatsFactory: HttpFilterFactory = {
  kind: 'grpc_stats',
  typeUrl: GRPC_STATS_TYPE,
  create(cfg: HttpFilterConfig, diag: Diagnostics, path: string, ctx: FactoryContext): HttpFilter | undefined {
    const config = decodeGrpcStatsConfig(cfg.config, diag, path);
    if (!config) return undefined;
    const counter = ctx.host?.clusterCounter;
    return {
      name: cfg.name,
      typeUrl: cfg.typeUrl,
      failurePolicy: 'FAIL_OPEN',
      failureStatus: 500,
      decodeHeaders(req, info) {
        if ((first(req.headers['content-type']) ?? '').startsWith('application/grpc')) info.metadata.set(STATE, { prefix: statPrefix(config, req.path), headerStatus: undefined } satisfies CallState);
        return undefined;
      },
      encodeHeaders(res, info) {
        const s = info.metadata.get(STATE) as CallState | undefined;
        if (s) s.headerStatus = first(res.headers['grpc-status']);
        return undefined;
      },
      streamComplete(info: StreamInfo) {
        const s = info.metadata.get(STATE) as CallState | undefined;
        const cluster = info.clusterName;
        if (!s || cluster === undefined || !counter) return;
        const facts = info as StreamInfo & { readonly responseCode?: number; readonly responseTrailers?: Record<string, string | string[] | undefined> };
        const status = grpcStatusOf(facts.responseCode ?? 0, s.headerStatus, first(facts.responseTrailers?.['grpc-status']));
        counter(cluster, `${s.prefix}total`).inc();
        counter(cluster, `${s.prefix}${status === 0 ? 'success' : 'failure'}`).inc();
      },
      describe: () => ({ kind: 'grpc_stats', stats_for_all_methods: config.statsForAllMethods, allowlist: config.allowlist ? Object.fromEntries([...config.allowlist].map(([k, v]) => [k, [...v]])) : undefined }),
    };
  },
};
