import { ENUMS } from './enums.js';
import type {
  ClusterSpecifier, DataSource, DirectResponseAction, ForwardAction, HashPolicy, HeaderMatcher, HeaderMutations,
  HeaderValueOption, HedgePolicy, PathMatch, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
  RouteConfiguration, RouteMatch, StringMatcher, UpgradeConfig, VirtualHost, WeightedCluster,
} from './model.js';
import { decodeUpgradeConfig } from './upgrade.js';
import { ObjectReader } from './reader.js';
import { compileFullMatch, compileRe2 } from './regex.js';
import { decodeTypedMap } from './typed.js';
import type { Diagnostics } from './validation.js';

export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

export function decodeRouteConfiguration(json: unknown, diag: Diagnostics, path: string): RouteConfiguration | undefined {
  const r = ObjectReader.of(json, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const name = r.string('name', '');
  const virtualHosts = r.objects('virtual_hosts').map(decodeVirtualHost).filter((v): v is VirtualHost => v !== undefined);
  const mutations = decodeHeaderMutations(r);
  const validateClusters = r.bool('validate_clusters', false);
  const ignorePortInHostMatching = r.bool('ignore_port_in_host_matching', false);
  // most_specific_header_mutations_wins, request_mirror_policies, ...: reported by finish().
  r.finish();
  checkDuplicateDomains(virtualHosts, diag, path);
  if (diag.errors.length > before) return undefined;
  return { name, virtualHosts, validateClusters, ...mutations, ...(ignorePortInHostMatching ? { ignorePortInHostMatching } : {}) };
}

function checkDuplicateDomains(vhosts: readonly VirtualHost[], diag: Diagnostics, path: string): void {
  const seen = new Map<string, string>();
  vhosts.forEach((vh, i) => {
    for (const d of vh.domains) {
      const key = d.toLowerCase();
      const prev = seen.get(key);
      if (prev !== undefined) diag.error(`${path}.virtual_hosts[${i}].domains`, `domain "${d}" is already used by virtual host "${prev}"`);
      else seen.set(key, vh.name);
    }
  });
}

function decodeVirtualHost(r: ObjectReader): VirtualHost | undefined {
  const name = r.requiredString('name') ?? '';
  const domains = r.strings('domains');
  if (domains.length === 0) r.diag.error(r.child('domains'), 'at least one domain is required');
  domains.forEach((d, i) => {
    const stars = d.split('*').length - 1;
    if (stars > 1 || (stars === 1 && d !== '*' && !d.startsWith('*') && !d.endsWith('*'))) {
      r.diag.error(`${r.child('domains')}[${i}]`, `"${d}": a wildcard may only be "*", a leading "*" or a trailing "*"`);
    }
  });
  const routes = r.objects('routes').map(decodeRoute).filter((x): x is Route => x !== undefined);
  const requireTls = r.enumOf('require_tls', ENUMS['route.VirtualHost.TlsRequirementType'], 'NONE');
  const rp = r.object('retry_policy');
  const retryPolicy = rp ? decodeRetryPolicy(rp) : undefined;
  const hp = r.object('hedge_policy');
  const hedgePolicy = hp ? decodeHedgePolicy(hp) : undefined;
  const typedPerFilterConfig = decodeTypedMap(r, 'typed_per_filter_config');
  const mutations = decodeHeaderMutations(r);
  const includeRequestAttemptCount = r.bool('include_request_attempt_count', false);
  r.finish();
  return {
    name, domains, routes, requireTls, ...(retryPolicy ? { retryPolicy } : {}), ...(hedgePolicy ? { hedgePolicy } : {}), typedPerFilterConfig, ...mutations,
    ...(includeRequestAttemptCount ? { includeRequestAttemptCount } : {}),
  };
}

function decodeRoute(r: ObjectReader): Route | undefined {
  const before = r.diag.errors.length;
  const name = r.string('name', '');
  const m = r.object('match');
  if (!m) r.diag.error(r.child('match'), 'is required');
  const match = m ? decodeRouteMatch(m) : undefined;
  const which = r.oneof(['route', 'redirect', 'direct_response', 'filter_action', 'non_forwarding_action'], true, 'an action,');
  let action: Route['action'] | undefined;
  if (which === 'route') {
    const a = r.object('route');
    action = a ? decodeForwardAction(a) : undefined;
  } else if (which === 'redirect') {
    const a = r.object('redirect');
    action = a ? decodeRedirect(a) : undefined;
  } else if (which === 'direct_response') {
    const a = r.object('direct_response');
    action = a ? decodeDirectResponse(a) : undefined;
  } else if (which !== undefined) {
    r.accept(which);
    r.diag.error(r.child(which), 'this route action is not supported by pilotfish');
  }
  const typedPerFilterConfig = decodeTypedMap(r, 'typed_per_filter_config');
  const mutations = decodeHeaderMutations(r);
  // Accepted without effect (safe): route metadata is opaque to the data path.
  r.accept('metadata');
  if (r.has('decorator')) {
    r.accept('decorator');
    r.diag.warn(r.child('decorator'), 'ignored: pilotfish names spans after the route, not decorator.operation, and sends no x-envoy-decorator-operation');
  }
  r.finish();
  if (!match || !action || r.diag.errors.length > before) return undefined;
  return { name, match, action, typedPerFilterConfig, ...mutations };
}

export function decodeRouteMatch(r: ObjectReader): RouteMatch {
  const which = r.oneof(['prefix', 'path', 'safe_regex', 'path_separated_prefix', 'connect_matcher', 'path_match_policy'], true, 'a path specifier,');
  let path: PathMatch = { kind: 'prefix', value: '/' };
  if (which === 'prefix' || which === 'path' || which === 'path_separated_prefix') {
    const value = r.string(which, '');
    if (which !== 'prefix' && !value.startsWith('/')) r.diag.error(r.child(which), `must start with "/", got "${value}"`);
    if (which === 'path_separated_prefix' && (value.endsWith('/') || /[?#]/.test(value))) {
      r.diag.error(r.child(which), 'must not end with "/" or contain "?" or "#"');
    }
    path = { kind: which, value };
  } else if (which === 'safe_regex') {
    const re = r.object('safe_regex');
    const regex = re ? decodeRegexMatcher(re) : undefined;
    path = { kind: 'safe_regex', regex: regex ?? '' };
  } else if (which === 'connect_matcher') {
    // An empty message: matches CONNECT requests (and only them).
    r.object('connect_matcher')?.finish();
    path = { kind: 'connect_matcher' };
  } else if (which !== undefined) {
    r.accept(which);
    r.diag.error(r.child(which), 'not supported by pilotfish');
  }
  const caseSensitive = r.bool('case_sensitive', true);
  const headers = r.objects('headers').map(decodeHeaderMatcher).filter((h): h is HeaderMatcher => h !== undefined);
  const queryParameters = r.objects('query_parameters').map(decodeQueryMatcher).filter((q): q is QueryParameterMatcher => q !== undefined);
  const grpc = r.has('grpc');
  r.accept('grpc');
  let runtimeFraction: number | undefined;
  const rf = r.object('runtime_fraction');
  if (rf) {
    const dv = rf.object('default_value');
    runtimeFraction = dv ? decodeFractionalPercent(dv) : 1;
    // Accepted without effect (safe): pilotfish has no runtime layer, so default_value applies,
    // which is exactly Envoy's behaviour while the runtime key is unset.
    rf.accept('runtime_key');
    rf.finish();
  }
  r.finish();
  return { path, caseSensitive, headers, queryParameters, grpc, ...(runtimeFraction !== undefined ? { runtimeFraction } : {}) };
}

/** envoy.type.v3.FractionalPercent -> fraction in [0, 1]. */
export function decodeFractionalPercent(r: ObjectReader): number {
  const numerator = r.int('numerator', 0);
  const denom = r.enumOf('denominator', ENUMS['type.FractionalPercent.DenominatorType'], 'HUNDRED');
  r.finish();
  const d = denom === 'HUNDRED' ? 100 : denom === 'TEN_THOUSAND' ? 10_000 : 1_000_000;
  return Math.min(1, numerator / d);
}

function decodeRegexMatcher(r: ObjectReader): string | undefined {
  const regex = r.requiredString('regex');
  // Accepted without effect (safe): google_re2 is deprecated and only carries a program-size limit; RE2 is always used.
  r.accept('google_re2');
  r.finish();
  if (regex === undefined) return undefined;
  const compiled = compileFullMatch(regex);
  if (typeof compiled === 'string') {
    r.diag.error(r.child('regex'), `invalid RE2 regular expression: ${compiled}`);
    return undefined;
  }
  return regex;
}

export function decodeStringMatcher(r: ObjectReader): StringMatcher | undefined {
  const which = r.oneof(['exact', 'prefix', 'suffix', 'contains', 'safe_regex'], true, 'a match,');
  const ignoreCase = r.bool('ignore_case', false);
  let out: StringMatcher | undefined;
  if (which === 'safe_regex') {
    const re = r.object('safe_regex');
    const regex = re ? decodeRegexMatcher(re) : undefined;
    if (ignoreCase) r.diag.error(r.child('ignore_case'), 'cannot be combined with safe_regex');
    if (regex !== undefined) out = { kind: 'safe_regex', regex, ignoreCase: false };
  } else if (which !== undefined) {
    const value = r.string(which, '');
    if (which !== 'exact' && value === '') r.diag.error(r.child(which), 'must not be empty');
    out = { kind: which as 'exact' | 'prefix' | 'suffix' | 'contains', value, ignoreCase };
  }
  r.finish();
  return out;
}

export function decodeHeaderMatcher(r: ObjectReader): HeaderMatcher | undefined {
  const rawName = r.requiredString('name');
  const name = (rawName ?? '').toLowerCase();
  const invert = r.bool('invert_match', false);
  const treatMissingAsEmpty = r.bool('treat_missing_header_as_empty', false);
  const which = r.oneof(['exact_match', 'safe_regex_match', 'range_match', 'present_match', 'prefix_match', 'suffix_match', 'contains_match', 'string_match'], false);
  let match: HeaderMatcher['match'];
  switch (which) {
    case undefined:
      match = { kind: 'present', present: true };
      break;
    case 'present_match':
      match = { kind: 'present', present: r.bool('present_match', true) };
      break;
    case 'range_match': {
      const rr = r.object('range_match');
      const start = rr ? rr.int('start', 0, Number.MIN_SAFE_INTEGER) : 0;
      const end = rr ? rr.int('end', 0, Number.MIN_SAFE_INTEGER) : 0;
      rr?.finish();
      if (end <= start) r.diag.error(r.child('range_match'), 'end must be greater than start');
      match = { kind: 'range', start, end };
      break;
    }
    case 'string_match': {
      const sm = r.object('string_match');
      const m = sm ? decodeStringMatcher(sm) : undefined;
      match = m ? { kind: 'string', matcher: m } : { kind: 'present', present: true };
      break;
    }
    case 'safe_regex_match': {
      const re = r.object('safe_regex_match');
      const regex = re ? decodeRegexMatcher(re) : undefined;
      match = { kind: 'string', matcher: { kind: 'safe_regex', regex: regex ?? '', ignoreCase: false } };
      break;
    }
    default: {
      const kind = which.replace('_match', '') as 'exact' | 'prefix' | 'suffix' | 'contains';
      match = { kind: 'string', matcher: { kind, value: r.string(which, ''), ignoreCase: false } };
    }
  }
  r.finish();
  if (rawName === undefined) return undefined;
  return { name, match, invert, treatMissingAsEmpty };
}

function decodeQueryMatcher(r: ObjectReader): QueryParameterMatcher | undefined {
  const name = r.requiredString('name');
  const which = r.oneof(['string_match', 'present_match'], false);
  let out: QueryParameterMatcher | undefined;
  if (which === 'string_match') {
    const sm = r.object('string_match');
    const matcher = sm ? decodeStringMatcher(sm) : undefined;
    if (name !== undefined && matcher) out = { name, matcher };
  } else if (name !== undefined) {
    out = { name, presentMatch: which === 'present_match' ? r.bool('present_match', true) : true };
  }
  r.finish();
  return out;
}

function decodeForwardAction(r: ObjectReader): ForwardAction | undefined {
  const before = r.diag.errors.length;
  const cluster = decodeClusterSpecifier(r, true);
  const prefixRewrite = r.string('prefix_rewrite');
  let regexRewrite: ForwardAction['regexRewrite'];
  const rr = r.object('regex_rewrite');
  if (rr) {
    const pat = rr.object('pattern');
    const regex = pat ? decodeRegexMatcher(pat) : undefined;
    const substitution = rr.string('substitution', '');
    rr.finish();
    if (regex !== undefined) {
      if (typeof compileRe2(regex) === 'string') r.diag.error(rr.child('pattern'), 'invalid regex');
      regexRewrite = { regex, substitution };
    }
  }
  if (prefixRewrite !== undefined && regexRewrite) r.diag.error(r.path, 'only one of prefix_rewrite, regex_rewrite may be set');
  const hostWhich = r.oneof(['host_rewrite_literal', 'auto_host_rewrite', 'host_rewrite_header', 'host_rewrite_path_regex'], false);
  const hostRewriteLiteral = hostWhich === 'host_rewrite_literal' ? r.string('host_rewrite_literal') : undefined;
  const autoHostRewrite = hostWhich === 'auto_host_rewrite' ? r.bool('auto_host_rewrite', false) : false;
  if (hostWhich === 'host_rewrite_header' || hostWhich === 'host_rewrite_path_regex') {
    r.accept(hostWhich);
    r.diag.warn(r.child(hostWhich), 'not supported by pilotfish; ignored');
  }
  const timeout = r.duration('timeout', DEFAULT_ROUTE_TIMEOUT_MS);
  const idleTimeout = r.duration('idle_timeout');
  const rp = r.object('retry_policy');
  const retryPolicy = rp ? decodeRetryPolicy(rp) : undefined;
  const hp = r.object('hedge_policy');
  const hedgePolicy = hp ? decodeHedgePolicy(hp) : undefined;
  const hashPolicy = r.objects('hash_policy').map(decodeHashPolicy).filter((h): h is HashPolicy => h !== undefined);
  const priority = r.enumOf('priority', ENUMS['core.RoutingPriority'], 'DEFAULT');
  const upgradeConfigs = r.objects('upgrade_configs').map((u) => decodeUpgradeConfig(u, true)).filter((u): u is UpgradeConfig => u !== undefined);
  const maxGrpcTimeout = r.duration('max_grpc_timeout');
  const grpcTimeoutOffset = r.duration('grpc_timeout_offset');
  let maxStreamDuration: number | undefined;
  let grpcTimeoutHeaderMax: number | undefined;
  const msd = r.object('max_stream_duration');
  if (msd) {
    maxStreamDuration = msd.duration('max_stream_duration');
    grpcTimeoutHeaderMax = msd.duration('grpc_timeout_header_max');
    // grpc_timeout_header_offset: reported by finish().
    msd.finish();
  }
  r.finish();
  if (!cluster || r.diag.errors.length > before) return undefined;
  return {
    kind: 'route', cluster, autoHostRewrite, timeout, hashPolicy, priority, upgradeConfigs,
    ...(maxStreamDuration !== undefined ? { maxStreamDuration } : {}),
    ...(grpcTimeoutHeaderMax !== undefined ? { grpcTimeoutHeaderMax } : {}),
    ...(maxGrpcTimeout !== undefined ? { maxGrpcTimeout } : {}),
    ...(grpcTimeoutOffset !== undefined && grpcTimeoutOffset > 0 ? { grpcTimeoutOffset } : {}),
    ...(prefixRewrite !== undefined ? { prefixRewrite } : {}),
    ...(regexRewrite ? { regexRewrite } : {}),
    ...(hostRewriteLiteral !== undefined ? { hostRewriteLiteral } : {}),
    ...(idleTimeout !== undefined ? { idleTimeout } : {}),
    ...(retryPolicy ? { retryPolicy } : {}),
    ...(hedgePolicy ? { hedgePolicy } : {}),
  };
}

/** hedge_policy: hedge_on_per_try_timeout; initial_requests must stay 1, additional_request_chance is not supported. */
export function decodeHedgePolicy(r: ObjectReader): HedgePolicy {
  const hedgeOnPerTryTimeout = r.bool('hedge_on_per_try_timeout', false);
  if (r.int('initial_requests', 1, 1) !== 1) r.diag.warn(r.child('initial_requests'), 'only 1 is supported by pilotfish; 1 is used');
  if (r.has('additional_request_chance')) {
    r.accept('additional_request_chance');
    r.diag.warn(r.child('additional_request_chance'), 'not supported by pilotfish; ignored');
  }
  r.finish();
  return { hedgeOnPerTryTimeout };
}

/** cluster | cluster_header | weighted_clusters, shared by routes and tcp_proxy. */
export function decodeClusterSpecifier(r: ObjectReader, allowHeader: boolean): ClusterSpecifier | undefined {
  const names = allowHeader ? ['cluster', 'cluster_header', 'weighted_clusters'] : ['cluster', 'weighted_clusters'];
  const which = r.oneof(names, true, 'a cluster,');
  if (which === 'cluster') {
    const name = r.requiredString('cluster');
    return name ? { kind: 'cluster', name } : undefined;
  }
  if (which === 'cluster_header') {
    const header = r.requiredString('cluster_header');
    return header ? { kind: 'cluster_header', header: header.toLowerCase() } : undefined;
  }
  if (which === 'weighted_clusters') {
    const w = r.object('weighted_clusters');
    if (!w) return undefined;
    const clusters: WeightedCluster[] = [];
    for (const c of w.objects('clusters')) {
      const name = c.requiredString('name');
      const weight = c.int('weight', 0, 0, 0xffffffff);
      const mutations = decodeHeaderMutations(c);
      // typed_per_filter_config, metadata_match (subsets), host_rewrite_literal: reported by finish().
      c.finish();
      if (name) clusters.push({ name, weight, ...mutations });
    }
    const declaredTotal = w.optionalInt('total_weight', 1);
    // Accepted without effect (safe): no runtime layer, so the configured weights apply, as in Envoy without overrides.
    w.accept('runtime_key_prefix');
    w.finish();
    if (clusters.length === 0) {
      w.diag.error(w.child('clusters'), 'at least one cluster is required');
      return undefined;
    }
    const sum = clusters.reduce((a, c) => a + c.weight, 0);
    if (sum === 0) w.diag.error(w.child('clusters'), 'the sum of weights must be greater than 0');
    if (declaredTotal !== undefined && declaredTotal !== sum) {
      w.diag.error(w.child('total_weight'), `is ${declaredTotal} but the weights add up to ${sum}`);
    }
    return { kind: 'weighted', clusters, totalWeight: sum };
  }
  return undefined;
}

const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

export function decodeRetryPolicy(r: ObjectReader): RetryPolicy {
  const retryOnText = r.string('retry_on', '');
  const retryOn = new Set<string>();
  for (const raw of retryOnText.split(',')) {
    const c = raw.trim();
    if (c === '') continue;
    if (!RETRY_ON.has(c)) r.diag.error(r.child('retry_on'), `unknown retry condition "${c}"`);
    else retryOn.add(c);
  }
  const numRetries = r.int('num_retries', 1, 0, 100);
  const perTryTimeout = r.duration('per_try_timeout');
  const perTryIdleTimeout = r.duration('per_try_idle_timeout');
  let baseInterval = 25;
  let maxInterval = 250;
  const bo = r.object('retry_back_off');
  if (bo) {
    const base = bo.duration('base_interval');
    if (base === undefined) bo.diag.error(bo.child('base_interval'), 'is required');
    else if (base <= 0) bo.diag.error(bo.child('base_interval'), 'must be greater than 0');
    else baseInterval = base;
    maxInterval = bo.duration('max_interval', baseInterval * 10);
    if (maxInterval < baseInterval) bo.diag.error(bo.child('max_interval'), 'must not be less than base_interval');
    bo.finish();
  }
  const retriableStatusCodes: number[] = [];
  for (const { value, path } of r.array('retriable_status_codes')) {
    if (typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599) retriableStatusCodes.push(value);
    else r.diag.error(path, `expected an HTTP status code, got ${String(value)}`);
  }
  const hostSelectionRetryMaxAttempts = r.int('host_selection_retry_max_attempts', 1, 1, 100);
  const retryHostPredicates = r.objects('retry_host_predicate').map((p) => {
    const n = p.string('name', '');
    // Accepted without effect (safe): the supported predicates (previous_hosts...) have empty configs.
    p.accept('typed_config');
    p.finish();
    return n;
  });
  r.finish();
  return {
    retryOn, numRetries, backoff: { baseInterval, maxInterval }, retriableStatusCodes, hostSelectionRetryMaxAttempts, retryHostPredicates,
    ...(perTryTimeout !== undefined ? { perTryTimeout } : {}),
    ...(perTryIdleTimeout !== undefined ? { perTryIdleTimeout } : {}),
  };
}

function decodeHashPolicy(r: ObjectReader): HashPolicy | undefined {
  const terminal = r.bool('terminal', false);
  const which = r.oneof(['header', 'cookie', 'connection_properties', 'query_parameter', 'filter_state'], true, 'a hash source,');
  let out: HashPolicy | undefined;
  if (which === 'header') {
    const h = r.object('header');
    const name = h?.requiredString('header_name');
    // regex_rewrite: reported by finish().
    h?.finish();
    if (name) out = { kind: 'header', name: name.toLowerCase(), terminal };
  } else if (which === 'cookie') {
    const c = r.object('cookie');
    const name = c?.requiredString('name');
    const ttl = c?.duration('ttl');
    const path = c?.string('path');
    // attributes: reported by finish().
    c?.finish();
    if (name) out = { kind: 'cookie', name, terminal, ...(ttl !== undefined ? { ttl } : {}), ...(path !== undefined ? { path } : {}) };
  } else if (which === 'connection_properties') {
    const c = r.object('connection_properties');
    const sourceIp = c?.bool('source_ip', false) ?? false;
    c?.finish();
    if (sourceIp) out = { kind: 'source_ip', terminal };
  } else if (which === 'query_parameter') {
    const q = r.object('query_parameter');
    const name = q?.requiredString('name');
    q?.finish();
    if (name) out = { kind: 'query_parameter', name, terminal };
  } else if (which === 'filter_state') {
    r.accept('filter_state');
    r.diag.warn(r.child('filter_state'), 'not supported by pilotfish; ignored');
  }
  r.finish();
  return out;
}

const REDIRECT_CODES = ENUMS['route.RedirectAction.RedirectResponseCode'];
const REDIRECT_STATUS = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 } as const;

function decodeRedirect(r: ObjectReader): RedirectAction {
  const schemeWhich = r.oneof(['https_redirect', 'scheme_redirect'], false);
  const httpsRedirect = schemeWhich === 'https_redirect' ? r.bool('https_redirect', false) : false;
  const schemeRedirect = schemeWhich === 'scheme_redirect' ? r.string('scheme_redirect') : undefined;
  const hostRedirect = r.string('host_redirect');
  const portRedirect = r.optionalInt('port_redirect', 0, 65535);
  const pathWhich = r.oneof(['path_redirect', 'prefix_rewrite', 'regex_rewrite'], false);
  const pathRedirect = pathWhich === 'path_redirect' ? r.string('path_redirect') : undefined;
  const prefixRewrite = pathWhich === 'prefix_rewrite' ? r.string('prefix_rewrite') : undefined;
  if (pathWhich === 'regex_rewrite') {
    r.accept('regex_rewrite');
    r.diag.warn(r.child('regex_rewrite'), 'not supported by pilotfish for redirects; ignored');
  }
  const code = r.enumOf('response_code', REDIRECT_CODES, 'MOVED_PERMANENTLY');
  const stripQuery = r.bool('strip_query', false);
  r.finish();
  return {
    kind: 'redirect', httpsRedirect, responseCode: REDIRECT_STATUS[code], stripQuery,
    ...(schemeRedirect !== undefined ? { schemeRedirect } : {}),
    ...(hostRedirect !== undefined ? { hostRedirect } : {}),
    ...(portRedirect !== undefined ? { portRedirect } : {}),
    ...(pathRedirect !== undefined ? { pathRedirect } : {}),
    ...(prefixRewrite !== undefined ? { prefixRewrite } : {}),
  };
}

function decodeDirectResponse(r: ObjectReader): DirectResponseAction {
  const status = r.int('status', 200, 200, 599);
  if (!r.has('status')) r.diag.error(r.child('status'), 'is required');
  const b = r.object('body');
  const bodySource = b ? decodeDataSource(b) : undefined;
  r.finish();
  // Inline text needs no I/O, so it is ready now; files and variables are read by resolveRouteDataSources.
  const body = bodySource?.kind === 'inline' ? bodySource.bytes.toString('utf8') : undefined;
  return { kind: 'direct_response', status, ...(bodySource ? { bodySource } : {}), ...(body !== undefined ? { body } : {}) };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * envoy.config.core.v3.DataSource as a reference (file, inline bytes, environment variable). No I/O
 * here: a file that does not exist decodes fine and is reported by the step that reads it.
 */
export function decodeDataSource(r: ObjectReader): DataSource | undefined {
  const which = r.oneof(['inline_string', 'inline_bytes', 'filename', 'environment_variable'], true, 'a source,');
  r.accept('watched_directory'); // files are watched by their own path (certs/ re-reads on change)
  let out: DataSource | undefined;
  if (which === 'inline_string') {
    out = { kind: 'inline', bytes: Buffer.from(r.string('inline_string', ''), 'utf8') };
  } else if (which === 'inline_bytes') {
    // proto3-JSON bytes are base64, standard or URL-safe.
    const b = r.string('inline_bytes', '').replace(/\s+/g, '');
    if (BASE64.test(b)) out = { kind: 'inline', bytes: Buffer.from(b, 'base64') };
    else r.diag.error(r.child('inline_bytes'), 'is not valid base64');
  } else if (which === 'filename') {
    const f = r.string('filename');
    if (f === '') r.diag.error(r.child('filename'), 'must not be empty');
    else if (f !== undefined) out = { kind: 'file', path: f, field: r.path };
  } else if (which === 'environment_variable') {
    const v = r.string('environment_variable');
    if (v !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(v)) r.diag.error(r.child('environment_variable'), 'is not a valid variable name');
    else if (v !== undefined) out = { kind: 'env', name: v, field: r.path };
  }
  r.finish();
  return out;
}

const APPEND_ACTIONS = ENUMS['core.HeaderValueOption.HeaderAppendAction'];

export function decodeHeaderValueOption(r: ObjectReader): HeaderValueOption | undefined {
  const h = r.object('header');
  if (!h) r.diag.error(r.child('header'), 'is required');
  const key = h?.requiredString('key');
  // raw_value (bytes, base64 in JSON) wins over value, as in Envoy.
  const value = h?.has('raw_value') ? Buffer.from(h.string('raw_value', ''), 'base64').toString('utf8') : h?.string('value', '') ?? '';
  h?.accept('value');
  h?.finish();
  let appendAction: HeaderValueOption['appendAction'] = r.enumOf('append_action', APPEND_ACTIONS, 'APPEND_IF_EXISTS_OR_ADD');
  if (r.has('append')) {
    // Deprecated BoolValue: false means overwrite.
    appendAction = r.bool('append', true) ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD';
  }
  // keep_empty_value: reported by finish().
  r.finish();
  if (!key) return undefined;
  const lower = key.toLowerCase();
  if (!/^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(lower)) {
    r.diag.error(`${r.child('header')}.key`, `"${key}" is not a valid header name`);
    return undefined;
  }
  if (/[\r\n\0]/.test(value)) {
    r.diag.error(`${r.child('header')}.value`, 'must not contain CR, LF or NUL');
    return undefined;
  }
  return { key: lower, value, appendAction };
}

export function decodeHeaderMutations(r: ObjectReader): HeaderMutations {
  const opts = (name: string) =>
    r.objects(name).map(decodeHeaderValueOption).filter((h): h is HeaderValueOption => h !== undefined);
  return {
    requestHeadersToAdd: opts('request_headers_to_add'),
    requestHeadersToRemove: r.strings('request_headers_to_remove').map((s) => s.toLowerCase()),
    responseHeadersToAdd: opts('response_headers_to_add'),
    responseHeadersToRemove: r.strings('response_headers_to_remove').map((s) => s.toLowerCase()),
  };
}
