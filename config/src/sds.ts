import { ENUMS } from './enums.js';
import { ObjectReader } from './reader.js';
import type { Diagnostics } from './validation.js';

/**
 * SDS references in static transport sockets (`{name, sds_config}` inside a TLS context).
 * certs/ decodes TLS contexts and only reads the secret name; the config source is checked
 * here, where the static clusters are known. pilotfish fetches every SDS secret over the ADS
 * stream, so:
 *  - `ads: {}` needs dynamic_resources.ads_config (or the secret among static secrets);
 *  - an `api_config_source` must name static clusters that exist (Envoy refuses unknown
 *    ones), and is then reported as not used: the secret still comes over ADS;
 *  - file-based sources (path, path_config_source) are refused.
 */
export interface SdsContext {
  /** Every cluster name listed in static_resources (decoded or not: a refused cluster was reported already). */
  readonly listedClusters: ReadonlySet<string>;
  readonly staticSecrets: ReadonlySet<string>;
  readonly adsConfigured: boolean;
}

/** Walks the raw static_resources for transport sockets and checks each SDS reference in them. */
export function checkStaticSds(staticResources: unknown, ctx: SdsContext, diag: Diagnostics): void {
  if (!isObject(staticResources)) return;
  const sockets: { value: unknown; path: string }[] = [];
  list(staticResources, 'listeners').forEach((l, i) => {
    const lp = `static_resources.listeners[${i}]`;
    list(l, 'filter_chains').forEach((fc, j) => sockets.push({ value: field(fc, 'transport_socket'), path: `${lp}.filter_chains[${j}].transport_socket` }));
    const dfc = field(l, 'default_filter_chain');
    sockets.push({ value: field(dfc, 'transport_socket'), path: `${lp}.default_filter_chain.transport_socket` });
  });
  list(staticResources, 'clusters').forEach((c, i) => {
    const cp = `static_resources.clusters[${i}]`;
    sockets.push({ value: field(c, 'transport_socket'), path: `${cp}.transport_socket` });
    list(c, 'transport_socket_matches').forEach((m, j) => sockets.push({ value: field(m, 'transport_socket'), path: `${cp}.transport_socket_matches[${j}].transport_socket` }));
  });
  for (const s of sockets) {
    const tc = field(s.value, 'typed_config');
    if (isObject(tc)) walk(tc, `${s.path}.typed_config`, ctx, diag, 0);
  }
}

function walk(v: unknown, path: string, ctx: SdsContext, diag: Diagnostics, depth: number): void {
  if (depth > 12) return;
  if (Array.isArray(v)) {
    v.forEach((x, i) => walk(x, `${path}[${i}]`, ctx, diag, depth + 1));
    return;
  }
  if (!isObject(v)) return;
  const sds = field(v, 'sds_config');
  if (sds !== undefined) {
    const name = field(v, 'name');
    checkSource(sds, typeof name === 'string' ? name : '', `${path}.sds_config`, ctx, diag);
    return;
  }
  for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`, ctx, diag, depth + 1);
}

function checkSource(v: unknown, secret: string, path: string, ctx: SdsContext, diag: Diagnostics): void {
  const r = ObjectReader.of(v, path, diag);
  if (!r) return;
  const which = r.oneof(['ads', 'api_config_source', 'path_config_source', 'path', 'self'], true, 'a config source,');
  const version = r.enumOf('resource_api_version', ENUMS['core.ApiVersion'], 'V3');
  if (version === 'V2') r.diag.error(r.child('resource_api_version'), 'only V3 is supported');
  const fetchedOverAds = ctx.staticSecrets.has(secret) || ctx.adsConfigured;
  if (which === 'ads') {
    // initial_fetch_timeout, authorities: reported by finish() (secret warming follows the ADS
    // client's does-not-exist timer, not a per-secret timeout).
    r.accept('ads');
    if (!fetchedOverAds) diag.error(r.child('ads'), `SDS secret "${secret}" needs dynamic_resources.ads_config (or a static secret of that name)`);
  } else if (which === 'api_config_source') {
    // The whole source is reported as not used below, so its parts are not reported one by one.
    r.accept('initial_fetch_timeout', 'authorities');
    const a = r.object('api_config_source');
    const before = diag.errors.length;
    const names: string[] = [];
    for (const g of a?.objects('grpc_services') ?? []) {
      const eg = g.object('envoy_grpc');
      const cn = eg?.string('cluster_name');
      if (eg && cn !== undefined) {
        names.push(cn);
        if (!ctx.listedClusters.has(cn)) diag.error(eg.child('cluster_name'), `"${cn}" names no static cluster`);
      } else if (!eg) diag.error(g.child('envoy_grpc'), 'is required (pilotfish takes SDS from envoy_grpc clusters)');
      g.accept('google_grpc', 'timeout', 'initial_metadata', 'retry_policy');
      eg?.accept('authority', 'retry_policy', 'max_receive_message_length', 'skip_envoy_headers');
    }
    a?.accept('api_type', 'transport_api_version', 'set_node_on_first_message_only', 'refresh_delay', 'request_timeout', 'rate_limit_settings', 'cluster_names', 'config_validators');
    if (a && names.length === 0) diag.error(a.child('grpc_services'), 'at least one grpc service is required');
    if (diag.errors.length === before) {
      if (!fetchedOverAds) diag.error(r.child('api_config_source'), `SDS secret "${secret}" needs dynamic_resources.ads_config: pilotfish fetches secrets over ADS`);
      else diag.warn(r.child('api_config_source'), `not used by pilotfish: SDS secret "${secret}" is fetched over the ADS stream`);
    }
  } else if (which !== undefined) {
    r.accept(which);
    diag.error(r.child(which), 'file-based SDS is not supported by pilotfish; use ads or inline tls_certificates with watched_directory');
  }
  r.finish();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function field(o: unknown, snake: string): unknown {
  if (!isObject(o)) return undefined;
  if (Object.hasOwn(o, snake)) return o[snake];
  const camel = snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  return Object.hasOwn(o, camel) ? o[camel] : undefined;
}

function list(o: unknown, name: string): unknown[] {
  const v = field(o, name);
  return Array.isArray(v) ? v : [];
}
