import { ENUMS } from './enums.js';
import type {
  AccessLogConfig, CidrRange, ClientCertDetails, HeaderValueOption, HttpConnectionManager, HttpFilterConfig,
  HttpProtocolLimits, LocalReplyConfig, LocalReplyMapper, SubstitutionFormat, UpgradeConfig,
} from './model.js';
import { decodeCidrRange } from './address.js';
import { ObjectReader } from './reader.js';
import { decodeHeaderValueOption, decodeRouteConfiguration } from './route.js';
import { decodeConfigSource } from './source.js';
import { decodeUpgradeConfig } from './upgrade.js';
import { decodeAny } from './typed.js';
import { resolveExtension } from './well-known.js';

/** HttpFilterConfig.typeUrl of a filter whose config comes from ECDS; `config` holds type_urls and default_config. */
export const ECDS_FILTER_TYPE = 'pilotfish.internal.ExtensionConfigDiscovery';

const CODECS = ENUMS['hcm.CodecType'];
const SERVER_HEADER = ENUMS['hcm.ServerHeaderTransformation'];
const ESCAPED_SLASHES = ENUMS['hcm.PathWithEscapedSlashesAction'];
const XFCC = ENUMS['hcm.ForwardClientCertDetails'];

/**
 * Fields of the HCM that pilotfish accepts without acting on them, and why that is safe:
 *  - (none today) every other field is decoded or reported by finish().
 */
/** `access_log` entries (HCM, tcp_proxy): the logger extension plus its AccessLog.filter, raw. */
export function decodeAccessLogs(r: ObjectReader): AccessLogConfig[] {
  const accessLog: AccessLogConfig[] = [];
  for (const al of r.objects('access_log')) {
    // AccessLog.filter stays raw: telemetry/ compiles it (and reports its problems by path).
    const filter = al.get('filter');
    const ext = resolveExtension(al, 'access_logger');
    al.finish();
    if (ext) accessLog.push(filter === undefined ? ext : { ...ext, filter });
  }
  return accessLog;
}

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

  const httpFilters = decodeHttpFilters(r);

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
    // headers_with_underscores_action, max_requests_per_connection: reported by finish().
    common.finish();
  }
  let maxConcurrentStreams = 2147483647;
  let http2AllowConnect = false;
  const h2 = r.object('http2_protocol_options');
  if (h2) {
    maxConcurrentStreams = h2.int('max_concurrent_streams', maxConcurrentStreams, 1, 2147483647);
    http2AllowConnect = h2.bool('allow_connect', false);
    // Window sizes, frame-flood limits and keepalive are node:http2 internals pilotfish does not
    // set; finish() reports each one given.
    h2.finish();
  }
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
  const accessLog = decodeAccessLogs(r);
  const tracingRaw = r.get('tracing');

  const pathWithEscapedSlashes = r.enumOf('path_with_escaped_slashes_action', ESCAPED_SLASHES, 'IMPLEMENTATION_SPECIFIC_DEFAULT');
  const stripMatching = r.bool('strip_matching_host_port', false);
  const stripAny = r.bool('strip_any_host_port', false);
  if (stripMatching && stripAny) r.diag.error(r.path, 'only one of strip_matching_host_port, strip_any_host_port may be set');
  const lrc = r.object('local_reply_config');
  const localReplyConfig = lrc ? decodeLocalReplyConfig(lrc) : undefined;
  const via = r.string('via');
  const upgradeConfigs = r.objects('upgrade_configs').map((u) => decodeUpgradeConfig(u, false)).filter((u): u is UpgradeConfig => u !== undefined);
  const internalAddressCidrs: CidrRange[] = [];
  const iac = r.object('internal_address_config');
  if (iac) {
    for (const c of iac.objects('cidr_ranges')) {
      const range = decodeCidrRange(c);
      if (range) internalAddressCidrs.push(range);
    }
    // unix_sockets: reported by finish().
    iac.finish();
  }
  const sccd = r.object('set_current_client_cert_details');
  const setCurrentClientCertDetails = sccd ? decodeClientCertDetails(sccd) : { subject: false, cert: false, chain: false, dns: false, uri: false };

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
    normalizePath: r.bool('normalize_path', false),
    mergeSlashes: r.bool('merge_slashes', false),
    // Envoy's IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED (absent its runtime override).
    pathWithEscapedSlashesAction: pathWithEscapedSlashes === 'IMPLEMENTATION_SPECIFIC_DEFAULT' ? 'KEEP_UNCHANGED' : pathWithEscapedSlashes,
    stripPortMode: stripAny ? 'ANY' : stripMatching ? 'MATCHING' : 'NONE',
    forwardClientCertDetails: r.enumOf('forward_client_cert_details', XFCC, 'SANITIZE'),
    setCurrentClientCertDetails,
    upgradeConfigs, http2AllowConnect, internalAddressCidrs,
    ...(localReplyConfig ? { localReplyConfig } : {}),
    ...(via !== undefined && via !== '' ? { via } : {}),
    ...(tracingRaw && typeof tracingRaw === 'object' ? { tracing: tracingRaw as Record<string, unknown> } : {}),
  };
  // request_id_extension: the UUID extension is what pilotfish does anyway (x-request-id
  // generated as a v4 UUID); its pack_trace_reason / use_request_id_for_trace_sampling tune
  // sampling from the ID, which pilotfish's tracer does not do: said once, not per field.
  const rid = r.object('request_id_extension');
  if (rid) {
    const tc = rid.get('typed_config') as Record<string, unknown> | undefined;
    const t = typeof tc?.['@type'] === 'string' ? tc['@type'] : '';
    rid.accept('typed_config');
    rid.finish();
    if (!t.endsWith('.UuidRequestIdConfig')) r.diag.warn(r.child('request_id_extension'), `${t || 'this extension'} is not supported by pilotfish; ignored (x-request-id is a v4 UUID)`);
  }
  // delayed_close_timeout, add_user_agent, http_protocol_options, ...:
  // not implemented, so finish() reports each one given.
  r.finish();
  if (r.diag.errors.length > before) return undefined;
  return out;
}

function decodeHttpFilters(r: ObjectReader): HttpFilterConfig[] {
  const httpFilters: HttpFilterConfig[] = [];
  const listed = r.objects('http_filters');
  for (const f of listed) {
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
      // apply_default_config_without_warming: pilotfish never waits for ECDS before serving
      // (the default config, or the filter skipped, applies until the config arrives), which
      // is what `true` asks for; `false` only adds a warming delay.
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
    if (name === '') {
      f.accept('typed_config');
      f.finish();
      continue;
    }
    const ext = resolveExtension(f, 'http_filter');
    f.finish();
    if (ext) httpFilters.push({ name, typeUrl: ext.typeUrl, config: ext.config, disabled, isOptional });
  }
  // Order and terminal-filter rules need the filter registry, so filters/ checks them when it
  // builds the chain: an unknown type, "the last http filter must be the terminal router, not
  // X", and an empty list (which Envoy accepts and then never routes; pilotfish warns and
  // assumes a lone router). Checking here too would report follow-ons of those root causes.
  return httpFilters;
}

function decodeClientCertDetails(r: ObjectReader): ClientCertDetails {
  const out = {
    subject: r.bool('subject', false),
    cert: r.bool('cert', false),
    chain: r.bool('chain', false),
    dns: r.bool('dns', false),
    uri: r.bool('uri', false),
  };
  r.finish();
  return out;
}

function decodeLocalReplyConfig(r: ObjectReader): LocalReplyConfig {
  const mappers: LocalReplyMapper[] = [];
  for (const m of r.objects('mappers')) {
    const filter = m.get('filter');
    if (filter === undefined) m.diag.error(m.child('filter'), 'is required');
    const statusCode = m.has('status_code') ? m.int('status_code', 0, 200, 599) : undefined;
    const b = m.object('body');
    const body = b ? decodeInlineDataSource(b) : undefined;
    const bfo = m.object('body_format_override');
    const bodyFormatOverride = bfo ? decodeSubstitutionFormat(bfo) : undefined;
    const headersToAdd = m.objects('headers_to_add').map(decodeHeaderValueOption).filter((h): h is HeaderValueOption => h !== undefined);
    m.finish();
    mappers.push({
      filter, headersToAdd,
      ...(statusCode !== undefined && statusCode !== 0 ? { statusCode } : {}),
      ...(body !== undefined ? { body } : {}),
      ...(bodyFormatOverride ? { bodyFormatOverride } : {}),
    });
  }
  const bf = r.object('body_format');
  const bodyFormat = bf ? decodeSubstitutionFormat(bf) : undefined;
  r.finish();
  return { mappers, ...(bodyFormat ? { bodyFormat } : {}) };
}

/** envoy.config.core.v3.SubstitutionFormatString. */
export function decodeSubstitutionFormat(r: ObjectReader): SubstitutionFormat | undefined {
  const which = r.oneof(['text_format', 'json_format', 'text_format_source'], true, 'a format,');
  let text: string | undefined;
  let json: Record<string, unknown> | undefined;
  if (which === 'text_format') text = r.string('text_format', '');
  else if (which === 'text_format_source') {
    const s = r.object('text_format_source');
    text = s ? decodeInlineDataSource(s) : undefined;
  } else if (which === 'json_format') {
    const j = r.get('json_format');
    if (j !== null && typeof j === 'object' && !Array.isArray(j)) json = j as Record<string, unknown>;
    else r.diag.error(r.child('json_format'), 'expected an object');
  }
  const contentType = r.string('content_type');
  const omitEmptyValues = r.bool('omit_empty_values', false);
  // formatters (command extensions), json_format_options: reported by finish().
  r.finish();
  if (text === undefined && json === undefined) return undefined;
  return {
    omitEmptyValues,
    ...(text !== undefined ? { text } : {}),
    ...(json !== undefined ? { json } : {}),
    ...(contentType !== undefined && contentType !== '' ? { contentType } : {}),
  };
}

/** A DataSource that must be inline here (decoders do no file I/O): inline_string or inline_bytes. */
function decodeInlineDataSource(r: ObjectReader): string | undefined {
  const which = r.oneof(['inline_string', 'inline_bytes', 'filename', 'environment_variable'], true, 'a source,');
  let out: string | undefined;
  if (which === 'inline_string') out = r.string('inline_string', '');
  else if (which === 'inline_bytes') out = Buffer.from(r.string('inline_bytes', ''), 'base64').toString('utf8');
  else if (which !== undefined) {
    r.accept(which);
    r.diag.error(r.child(which), 'not supported here by pilotfish; use inline_string or inline_bytes');
  }
  r.finish();
  return out;
}

function emptyRoutes() {
  return { name: '', virtualHosts: [], validateClusters: false, requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [] };
}
