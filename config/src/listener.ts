import { ENUMS } from './enums.js';
import type {
  ConnectionLimit, FilterChain, FilterChainMatch, FilterChainMatcherNode, HttpConnectionManager, Listener, ListenerFilter, NetworkFilterConfig, SocketAddress,
  TcpProxy, TypedExtension,
} from './model.js';
import { decodeAddress } from './address.js';
import { decodeListenerFilterPredicate } from './listener-filter-predicate.js';
import { decodeInternalListenerConfig, decodeTunnelingConfig, internalSocketAddress } from './internal.js';
import { decodeFilterChainMatch, decodeFilterChainMatcher } from './chain-match.js';
import { decodeAccessLogs, decodeHttpConnectionManager } from './hcm.js';
import { ObjectReader } from './reader.js';
import { decodeClusterSpecifier } from './route.js';
import { TYPE_PREFIX, typeName } from './typed.js';
import type { Diagnostics } from './validation.js';
import { decodeTransportSocketExt, HTTP_INSPECTOR_TYPE, NETWORK_FILTER_TYPES, ORIGINAL_DST_TYPE, resolveExtension, TLS_INSPECTOR_TYPE } from './well-known.js';

export { decodeHttpConnectionManager, ECDS_FILTER_TYPE } from './hcm.js';

export const HCM_TYPE = TYPE_PREFIX + 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const CONNECTION_LIMIT_TYPE = TYPE_PREFIX + 'envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit';
export const TCP_PROXY_TYPE = TYPE_PREFIX + 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** Listener filters pilotfish implements (inspection feeds filter-chain matching; original_dst restores the destination). */
const KNOWN_LISTENER_FILTERS = new Set([TLS_INSPECTOR_TYPE, HTTP_INSPECTOR_TYPE, ORIGINAL_DST_TYPE]);
const TRAFFIC_DIRECTIONS = ENUMS['core.TrafficDirection'];

/** Envoy's name for an unnamed listener; pilotfish: "<address>_<port>", or the pipe path. */
export function generatedListenerName(a: SocketAddress): string {
  return a.pipe ? a.pipe.path : `${a.address}_${a.port}`;
}

/**
 * Listener fields accepted without effect, and why that is safe:
 *  - metadata: opaque to the data path (Istio labels listeners with it); kept by nobody, read by nobody.
 * Everything else is decoded into the model or reported by finish().
 */
export function decodeListener(json: unknown, diag: Diagnostics, path: string): Listener | undefined {
  const r = ObjectReader.of(json, path, diag);
  if (!r) return undefined;
  if (isUdpListener(r)) {
    // One root cause: UDP listeners have no filter chains, so every other complaint would mislead.
    diag.error(r.path, 'UDP listeners are not supported by pilotfish');
    return undefined;
  }
  const before = diag.errors.length;
  const configuredName = r.string('name');
  if (configuredName === '') diag.error(r.child('name'), 'must not be empty');
  // internal_listener: no socket, no address; reached by name (config/src/internal.ts).
  const il = r.object('internal_listener');
  const internal = il ? decodeInternalListenerConfig(il) : undefined;
  const a = r.object('address');
  if (!a && !internal) diag.error(r.child('address'), 'is required');
  if (internal && configuredName === undefined) diag.error(r.child('name'), 'is required for an internal listener (endpoints reach it by name)');
  let address = a ? decodeAddress(a, false) : undefined;
  if (address?.internal) {
    diag.error(r.child('address'), 'an internal listener has internal_listener set and no address');
    address = undefined;
  }
  if (internal && !a) address = internalSocketAddress({ serverListenerName: configuredName ?? '', endpointId: '' });
  const rawChains = r.get('filter_chains');
  const chainCount = Array.isArray(rawChains) ? rawChains.length : 0;
  const filterChains = r.objects('filter_chains').map(decodeFilterChain).filter((c): c is FilterChain => c !== undefined);
  const dfc = r.object('default_filter_chain');
  const defaultFilterChain = dfc ? decodeFilterChain(dfc) : undefined;
  if (chainCount === 0 && !dfc) diag.error(r.child('filter_chains'), 'at least one filter chain is required');

  let filterChainMatcher: FilterChainMatcherNode | undefined;
  const fcm = r.object('filter_chain_matcher');
  if (fcm) {
    // Names as written, so that a chain refused for its own reasons is not reported again as missing.
    const names = new Set<string>();
    const raws = Array.isArray(rawChains) ? rawChains : [];
    raws.forEach((c, i) => {
      const n = c !== null && typeof c === 'object' ? (c as Record<string, unknown>)['name'] : undefined;
      if (typeof n !== 'string' || n === '') return;
      if (names.has(n)) diag.error(`${r.child('filter_chains')}[${i}].name`, `duplicate filter chain name "${n}"`);
      names.add(n);
    });
    const dn = dfc?.raw['name'];
    if (typeof dn === 'string' && dn !== '') names.add(dn);
    filterChainMatcher = decodeFilterChainMatcher(fcm, names);
    // With a matcher, Envoy selects chains by name only and ignores filter_chain_match: say so.
    if (Array.isArray(rawChains)) {
      rawChains.forEach((c, i) => {
        if (c && typeof c === 'object' && ('filter_chain_match' in c || 'filterChainMatch' in c)) {
          diag.warn(`${r.child('filter_chains')}[${i}].filter_chain_match`, 'ignored: filter_chain_matcher selects the chain');
        }
      });
    }
  }

  const listenerFilters = decodeListenerFilters(r);
  const perConnectionBufferLimitBytes = r.int('per_connection_buffer_limit_bytes', 1024 * 1024, 1, 0xffffffff);
  const listenerFiltersTimeout = r.duration('listener_filters_timeout', 15_000);
  const continueOnListenerFiltersTimeout = r.bool('continue_on_listener_filters_timeout', false);
  const useOriginalDst = r.bool('use_original_dst', false);
  // An internal listener never binds a socket.
  const bindToPort = r.bool('bind_to_port', true) && !internal;
  const trafficDirection = r.enumOf('traffic_direction', TRAFFIC_DIRECTIONS, 'UNSPECIFIED');
  const statPrefix = r.string('stat_prefix');
  r.accept('metadata');
  r.finish();
  if (!address || diag.errors.length > before) return undefined;
  return {
    name: configuredName ?? generatedListenerName(address),
    address, filterChains, perConnectionBufferLimitBytes, listenerFilters,
    listenerFiltersTimeout, continueOnListenerFiltersTimeout, useOriginalDst, bindToPort, trafficDirection,
    ...(statPrefix !== undefined && statPrefix !== '' ? { statPrefix } : {}),
    ...(internal ? { internal } : {}),
    ...(filterChainMatcher ? { filterChainMatcher } : {}),
    ...(defaultFilterChain ? { defaultFilterChain } : {}),
  };
}

/** A UDP listener: a UDP socket address, udp_listener_config, or a UDP listener filter (udp_proxy). */
function isUdpListener(r: ObjectReader): boolean {
  const raw = r.raw;
  if (raw['udp_listener_config'] !== undefined || raw['udpListenerConfig'] !== undefined) return true;
  const addr = raw['address'] as Record<string, unknown> | undefined;
  const sa = (addr?.['socket_address'] ?? addr?.['socketAddress']) as Record<string, unknown> | undefined;
  const proto = sa?.['protocol'];
  if (proto === 1 || (typeof proto === 'string' && proto.toUpperCase() === 'UDP')) return true;
  const lfs = raw['listener_filters'] ?? raw['listenerFilters'];
  return Array.isArray(lfs) && lfs.some((f) => {
    const o = f as Record<string, unknown> | null;
    const name = typeof o?.['name'] === 'string' ? o['name'] : '';
    const tc = (o?.['typed_config'] ?? o?.['typedConfig']) as Record<string, unknown> | undefined;
    const type = typeof tc?.['@type'] === 'string' ? tc['@type'] : '';
    return name.includes('udp_proxy') || name.startsWith('envoy.filters.udp') || type.includes('.udp.') || type.includes('udp_proxy');
  });
}

function decodeListenerFilters(r: ObjectReader): ListenerFilter[] {
  const out: ListenerFilter[] = [];
  for (const lf of r.objects('listener_filters')) {
    if (lf.has('config_discovery')) {
      lf.accept('config_discovery', 'name', 'typed_config', 'filter_disabled');
      lf.diag.error(lf.child('config_discovery'), 'discovering listener filters over ECDS is not supported by pilotfish');
      continue;
    }
    // filter_disabled: the filter is skipped for connections whose destination port matches (Istio: http_inspector on ports of known protocol).
    const fd = lf.object('filter_disabled');
    const filterDisabled = fd ? decodeListenerFilterPredicate(fd) : undefined;
    const ext = resolveExtension(lf, 'listener_filter');
    lf.finish();
    if (!ext) continue;
    if (!KNOWN_LISTENER_FILTERS.has(ext.typeUrl)) {
      lf.diag.warn(lf.path, `listener filter ${typeName(ext.typeUrl)} is not supported by pilotfish; ignored`);
      continue;
    }
    const cr = ObjectReader.of(ext.config, lf.child('typed_config'), lf.diag);
    if (cr) {
      // original_dst.traffic_direction only selects the Windows redirect record; Linux reads SO_ORIGINAL_DST either way.
      if (ext.typeUrl === ORIGINAL_DST_TYPE) cr.accept('traffic_direction');
      cr.finish();
    }
    out.push({ name: ext.name, typeUrl: ext.typeUrl, config: ext.config, ...(filterDisabled ? { filterDisabled } : {}) });
  }
  return out;
}

/**
 * Filter-chain fields accepted without effect, and why that is safe:
 *  - metadata: opaque (Istio tags chains with it for its own telemetry filters).
 */
function decodeFilterChain(r: ObjectReader): FilterChain | undefined {
  const before = r.diag.errors.length;
  const name = r.string('name', '');
  const m = r.object('filter_chain_match');
  const match: FilterChainMatch | undefined = m ? decodeFilterChainMatch(m) : undefined;
  const ts = r.object('transport_socket');
  const transportSocket = ts ? decodeTransportSocketExt(ts, 'downstream') : undefined;
  const filters = r.objects('filters');
  let network: HttpConnectionManager | TcpProxy | undefined;
  let connectionLimit: ConnectionLimit | undefined;
  const networkFilters: NetworkFilterConfig[] = [];
  filters.forEach((f, i) => {
    if (f.has('config_discovery')) {
      f.accept('config_discovery', 'typed_config', 'name');
      f.finish();
      r.diag.error(f.child('config_discovery'), 'discovering network filters over ECDS is not supported by pilotfish');
      return;
    }
    const any = resolveExtension(f, 'network_filter');
    f.finish();
    if (!any) return;
    const fname = any.name;
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
        // runtime_enabled: reported by finish() (pilotfish has no runtime layer; the filter is always on).
        cr.finish();
        connectionLimit = { statPrefix, maxConnections, delay };
      }
    } else if (NETWORK_FILTER_TYPES.has(any.typeUrl)) {
      // Validated by the factory the proxy registered for the type (at listener build time).
      networkFilters.push({ name: fname, typeUrl: any.typeUrl, config: any.config });
    } else {
      // A network filter we would skip could be a security control (e.g. network RBAC): refuse, do not ignore.
      r.diag.error(f.path, `network filter "${fname}" (${typeName(any.typeUrl)}) is not supported by pilotfish (supported: http_connection_manager, tcp_proxy, connection_limit, ${[...NETWORK_FILTER_TYPES.values()].join(', ')})`);
    }
  });
  const errorsInFilters = r.diag.errors.length > before;
  if (filters.length === 0) r.diag.error(r.child('filters'), 'a filter chain needs an http_connection_manager or tcp_proxy filter');
  else if (!network && !errorsInFilters) r.diag.error(r.child('filters'), 'the last network filter must be http_connection_manager or tcp_proxy');
  r.accept('metadata');
  r.finish();
  if (!network || r.diag.errors.length > before) return undefined;
  return { name, network, networkFilters, ...(match ? { match } : {}), ...(transportSocket ? { transportSocket } : {}), ...(connectionLimit ? { connectionLimit } : {}) };
}

/**
 * TcpProxy. Accepted without effect (safe): none. hash_policy, metadata_match and
 * access_log_options (periodic flushes) are reported by finish().
 */
export function decodeTcpProxy(r: ObjectReader): TcpProxy | undefined {
  const before = r.diag.errors.length;
  const statPrefix = r.requiredString('stat_prefix') ?? '';
  const cluster = decodeClusterSpecifier(r, false);
  const idleTimeout = r.duration('idle_timeout', 3_600_000);
  const maxConnectAttempts = r.int('max_connect_attempts', 1, 1, 100);
  // Sessions are logged through telemetry/'s access loggers when the connection closes.
  const accessLog = decodeAccessLogs(r);
  const tc = r.object('tunneling_config');
  const tunneling = tc ? decodeTunnelingConfig(tc) : undefined;
  r.finish();
  if (!cluster || r.diag.errors.length > before) return undefined;
  return { kind: 'tcp', statPrefix, cluster, idleTimeout, maxConnectAttempts, ...(accessLog.length > 0 ? { accessLog } : {}), ...(tunneling ? { tunneling } : {}) };
}
