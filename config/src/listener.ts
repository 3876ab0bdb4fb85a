import type {
  AccessLogConfig,
  ConnectionLimit,
  FilterChain, FilterChainMatch, HttpConnectionManager, HttpFilterConfig, HttpProtocolLimits, Listener,
  TcpProxy, TypedExtension,
} from './model.js';
import { decodeAddress } from './address.js';
import { ObjectReader } from './reader.js';
import { decodeClusterSpecifier, decodeRouteConfiguration } from './route.js';
import { decodeConfigSource } from './source.js';
import { decodeAny, decodeTypedExtension, TYPE_PREFIX } from './typed.js';
import type { Diagnostics } from './validation.js';

export const HCM_TYPE = TYPE_PREFIX + 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const CONNECTION_LIMIT_TYPE = TYPE_PREFIX + 'envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit';
export const TCP_PROXY_TYPE = TYPE_PREFIX + 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
/** HttpFilterConfig.typeUrl of a filter whose config comes from ECDS; `config` holds type_urls and default_config. */
export const ECDS_FILTER_TYPE = 'pilotfish.internal.ExtensionConfigDiscovery';

/** Listener filters pilotfish understands (they only inform filter-chain matching, which it does natively). */
const KNOWN_LISTENER_FILTERS = new Set([
  TYPE_PREFIX + 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  TYPE_PREFIX + 'envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
]);

export function decodeListener(json: unknown, diag: Diagnostics, path: string): Listener | undefined {
  const r = ObjectReader.of(json, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const name = r.requiredString('name') ?? '';
  const a = r.object('address');
  if (!a) diag.error(r.child('address'), 'is required');
  const address = a ? decodeAddress(a, false) : undefined;
  const rawChains = r.get('filter_chains');
  const chainCount = Array.isArray(rawChains) ? rawChains.length : 0;
  const filterChains = r.objects('filter_chains').map(decodeFilterChain).filter((c): c is FilterChain => c !== undefined);
  const dfc = r.object('default_filter_chain');
  const defaultFilterChain = dfc ? decodeFilterChain(dfc) : undefined;
  if (chainCount === 0 && !dfc) diag.error(r.child('filter_chains'), 'at least one filter chain is required');
  const listenerFilters: TypedExtension[] = [];
  for (const lf of r.objects('listener_filters')) {
    const ext = decodeTypedExtension(lf, false);
    if (ext && !KNOWN_LISTENER_FILTERS.has(ext.typeUrl)) {
      diag.warn(lf.path, `listener filter ${ext.typeUrl} is not supported by pilotfish; ignored`);
    } else if (ext) listenerFilters.push(ext);
  }
  const perConnectionBufferLimitBytes = r.int('per_connection_buffer_limit_bytes', 1024 * 1024, 1, 0xffffffff);
  r.accept('traffic_direction', 'stat_prefix', 'metadata', 'listener_filters_timeout', 'continue_on_listener_filters_timeout');
  r.finish();
  if (!address || diag.errors.length > before) return undefined;
  return {
    name, address, filterChains, perConnectionBufferLimitBytes, listenerFilters,
    listenerFiltersTimeout: 15_000, continueOnListenerFiltersTimeout: false, useOriginalDst: false, bindToPort: true, trafficDirection: 'UNSPECIFIED',
    ...(defaultFilterChain ? { defaultFilterChain } : {}),
  };
}

function decodeFilterChain(r: ObjectReader): FilterChain | undefined {
  const before = r.diag.errors.length;
  const name = r.string('name', '');
  const m = r.object('filter_chain_match');
  let match: FilterChainMatch | undefined;
  if (m) {
    const destinationPort = m.optionalInt('destination_port', 1, 65535);
    const transportProtocol = m.string('transport_protocol');
    match = {
      prefixRanges: [], directSourcePrefixRanges: [], sourceType: 'ANY', sourcePrefixRanges: [], sourcePorts: [],
      serverNames: m.strings('server_names').map((s) => s.toLowerCase()),
      applicationProtocols: m.strings('application_protocols'),
      ...(transportProtocol !== undefined ? { transportProtocol } : {}),
      ...(destinationPort !== undefined ? { destinationPort } : {}),
    };
    m.finish();
  }
  const ts = r.object('transport_socket');
  const transportSocket = ts ? decodeTypedExtension(ts, true) : undefined;
  const filters = r.objects('filters');
  let network: HttpConnectionManager | TcpProxy | undefined;
  let connectionLimit: ConnectionLimit | undefined;
  filters.forEach((f, i) => {
    const fname = f.string('name', '');
    const tc = f.get('typed_config');
    f.accept('config_discovery');
    f.finish();
    const any = tc === undefined ? undefined : decodeAny(tc, r.diag, f.child('typed_config'));
    if (!any) {
      if (tc === undefined) r.diag.error(f.child('typed_config'), `is required (filter "${fname}")`);
      return;
    }
    const last = i === filters.length - 1;
    if (any.typeUrl === HCM_TYPE || any.typeUrl === TCP_PROXY_TYPE) {
      if (!last) r.diag.error(f.path, `${fname || any.typeUrl} is terminal and must be the last network filter`);
      const cr = ObjectReader.of(any.config, f.child('typed_config'), r.diag);
      if (cr) network = any.typeUrl === HCM_TYPE ? decodeHttpConnectionManager(cr) : decodeTcpProxy(cr);
    } else if (any.typeUrl === CONNECTION_LIMIT_TYPE) {
      const cr = ObjectReader.of(any.config, f.child('typed_config'), r.diag);
      if (cr) {
        const statPrefix = cr.requiredString('stat_prefix') ?? '';
        if (!cr.has('max_connections')) cr.diag.error(cr.child('max_connections'), 'is required');
        const maxConnections = cr.int('max_connections', 1, 1);
        const delay = cr.duration('delay', 0) ?? 0;
        cr.accept('runtime_enabled');
        cr.finish();
        connectionLimit = { statPrefix, maxConnections, delay };
      }
    } else {
      // A network filter we would skip could be a security control (e.g. network RBAC): refuse, do not ignore.
      r.diag.error(f.path, `network filter ${any.typeUrl} is not supported by pilotfish (supported: http_connection_manager, tcp_proxy)`);
    }
  });
  if (filters.length === 0) r.diag.error(r.child('filters'), 'a filter chain needs an http_connection_manager or tcp_proxy filter');
  r.accept('transport_socket_connect_timeout', 'metadata');
  r.finish();
  if (!network || r.diag.errors.length > before) return undefined;
  return { name, network, ...(match ? { match } : {}), ...(transportSocket ? { transportSocket } : {}), ...(connectionLimit ? { connectionLimit } : {}) };
}

const CODECS = ['AUTO', 'HTTP1', 'HTTP2', 'HTTP3'] as const;
const SERVER_HEADER = ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH'] as const;

export function decodeHttpConnectionManager(r: ObjectReader): HttpConnectionManager | undefined {
  const before = r.diag.errors.length;
  const statPrefix = r.requiredString('stat_prefix') ?? '';
  const codec = r.enumOf('codec_type', CODECS, 'AUTO');
  if (codec === 'HTTP3') r.diag.error(r.child('codec_type'), 'HTTP3 is not supported by pilotfish');
  const codecType = codec === 'HTTP3' ? 'AUTO' : codec;

  const which = r.oneof(['route_config', 'rds', 'scoped_routes'], true, 'a route source,');
  let routeSource: HttpConnectionManager['routeSource'] | undefined;
  if (which === 'route_config') {
    const rc = decodeRouteConfiguration(r.get('route_config'), r.diag, r.child('route_config'));
    if (rc) routeSource = { kind: 'inline', config: rc };
  } else if (which === 'rds') {
    const rds = r.object('rds');
    if (rds) {
      const routeConfigName = rds.requiredString('route_config_name');
      const cs = rds.object('config_source');
      const configSource = cs ? decodeConfigSource(cs) : undefined;
      if (!cs) rds.diag.error(rds.child('config_source'), 'is required');
      rds.finish();
      if (routeConfigName && configSource) routeSource = { kind: 'rds', routeConfigName, configSource };
    }
  } else if (which === 'scoped_routes') {
    r.accept('scoped_routes');
    r.diag.error(r.child('scoped_routes'), 'scoped routes are not supported by pilotfish');
  }

  const httpFilters: HttpFilterConfig[] = [];
  for (const f of r.objects('http_filters')) {
    const name = f.requiredString('name') ?? '';
    const isOptional = f.bool('is_optional', false);
    const disabled = f.bool('disabled', false);
    const cd = f.object('config_discovery');
    if (cd) {
      // ECDS: the filter's config arrives over xDS by the filter's name (TypedExtensionConfig).
      const typeUrls = cd.strings('type_urls').map((u) => u.replace(/^type\.googleapis\.com\//, ''));
      if (typeUrls.length === 0) cd.diag.error(cd.child('type_urls'), 'at least one type URL is required');
      const src = cd.object('config_source');
      if (src) decodeConfigSource(src);
      else cd.diag.error(cd.child('config_source'), 'is required');
      const dc = cd.get('default_config');
      const def = dc === undefined ? undefined : decodeAny(dc, cd.diag, cd.child('default_config'));
      cd.accept('apply_default_config_without_warming');
      cd.finish();
      if (f.has('typed_config')) f.diag.error(f.path, 'only one of typed_config, config_discovery may be set');
      f.finish();
      httpFilters.push({
        name, typeUrl: ECDS_FILTER_TYPE, disabled, isOptional,
        config: { type_urls: typeUrls, ...(def ? { default_config: { type_url: def.typeUrl, config: def.config } } : {}) },
      });
      continue;
    }
    const tc = f.get('typed_config');
    f.finish();
    if (tc === undefined) {
      f.diag.error(f.child('typed_config'), 'is required');
      continue;
    }
    const any = decodeAny(tc, f.diag, f.child('typed_config'));
    if (any) httpFilters.push({ name, typeUrl: any.typeUrl, config: any.config, disabled, isOptional });
  }
  if (httpFilters.length === 0) r.diag.error(r.child('http_filters'), 'must end with envoy.filters.http.router');

  let idleTimeout = 3_600_000;
  let maxConnectionDuration: number | undefined;
  let maxHeadersCount = 100;
  let maxStreamDuration: number | undefined;
  const common = r.object('common_http_protocol_options');
  if (common) {
    idleTimeout = common.duration('idle_timeout', idleTimeout);
    maxConnectionDuration = common.duration('max_connection_duration');
    maxHeadersCount = common.int('max_headers_count', 100, 1);
    maxStreamDuration = common.duration('max_stream_duration');
    common.accept('headers_with_underscores_action', 'max_requests_per_connection');
    common.finish();
  }
  let maxConcurrentStreams = 2147483647;
  const h2 = r.object('http2_protocol_options');
  if (h2) {
    maxConcurrentStreams = h2.int('max_concurrent_streams', maxConcurrentStreams, 1, 2147483647);
    h2.accept('initial_stream_window_size', 'initial_connection_window_size', 'max_outbound_frames',
      'max_outbound_control_frames', 'max_consecutive_inbound_frames_with_empty_payload',
      'max_inbound_priority_frames_per_stream', 'max_inbound_window_update_frames_per_data_frame_sent', 'connection_keepalive');
    h2.finish();
  }
  r.accept('http_protocol_options');
  const limits: HttpProtocolLimits = {
    idleTimeout, maxHeadersCount, maxConcurrentStreams,
    maxRequestHeadersKb: r.int('max_request_headers_kb', 60, 1, 8192),
    streamIdleTimeout: r.duration('stream_idle_timeout', 300_000),
    requestTimeout: r.duration('request_timeout', 0),
    requestHeadersTimeout: r.duration('request_headers_timeout', 0),
    drainTimeout: r.duration('drain_timeout', 5000),
    ...(maxConnectionDuration !== undefined ? { maxConnectionDuration } : {}),
    ...(maxStreamDuration !== undefined ? { maxStreamDuration } : {}),
  };
  const accessLog: AccessLogConfig[] = [];
  for (const al of r.objects('access_log')) {
    // AccessLog.filter stays raw: telemetry/ compiles it (and reports its problems by path).
    const filter = al.get('filter');
    al.accept('filter');
    const ext = decodeTypedExtension(al, true);
    if (ext) accessLog.push(filter === undefined ? ext : { ...ext, filter });
  }
  const tracingRaw = r.get('tracing');
  const out: HttpConnectionManager = {
    kind: 'http', statPrefix, codecType, routeSource: routeSource ?? { kind: 'inline', config: emptyRoutes() }, httpFilters,
    useRemoteAddress: r.bool('use_remote_address', false),
    xffNumTrustedHops: r.int('xff_num_trusted_hops', 0, 0, 64),
    skipXffAppend: r.bool('skip_xff_append', false),
    generateRequestId: r.bool('generate_request_id', true),
    preserveExternalRequestId: r.bool('preserve_external_request_id', false),
    serverName: r.string('server_name', 'pilotfish'),
    serverHeaderTransformation: r.enumOf('server_header_transformation', SERVER_HEADER, 'OVERWRITE'),
    limits, accessLog,
    normalizePath: false, mergeSlashes: false, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED', stripPortMode: 'NONE',
    forwardClientCertDetails: 'SANITIZE', setCurrentClientCertDetails: { subject: false, cert: false, chain: false, dns: false, uri: false },
    upgradeConfigs: [], http2AllowConnect: false, internalAddressCidrs: [],
    ...(tracingRaw && typeof tracingRaw === 'object' ? { tracing: tracingRaw as Record<string, unknown> } : {}),
  };
  r.accept('delayed_close_timeout', 'normalize_path', 'merge_slashes', 'path_with_escaped_slashes_action',
    'strip_matching_host_port', 'strip_any_host_port', 'add_user_agent', 'via', 'internal_address_config',
    'forward_client_cert_details', 'set_current_client_cert_details', 'local_reply_config', 'request_id_extension');
  r.finish();
  if (r.diag.errors.length > before) return undefined;
  return out;
}

function emptyRoutes() {
  return { name: '', virtualHosts: [], validateClusters: false, requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [] };
}

export function decodeTcpProxy(r: ObjectReader): TcpProxy | undefined {
  const before = r.diag.errors.length;
  const statPrefix = r.requiredString('stat_prefix') ?? '';
  const cluster = decodeClusterSpecifier(r, false);
  const idleTimeout = r.duration('idle_timeout', 3_600_000);
  const maxConnectAttempts = r.int('max_connect_attempts', 1, 1, 100);
  r.accept('access_log', 'metadata_match', 'hash_policy', 'access_log_options');
  r.finish();
  if (!cluster || r.diag.errors.length > before) return undefined;
  return { kind: 'tcp', statPrefix, cluster, idleTimeout, maxConnectAttempts };
}
