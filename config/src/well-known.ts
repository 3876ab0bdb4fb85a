import type { TypedExtension } from './model.js';
import type { ObjectReader } from './reader.js';
import { decodeAny, TYPE_PREFIX } from './typed.js';

/**
 * Envoy resolves an extension by its name when `typed_config` is absent (`- name:
 * envoy.filters.http.router`), using the factory's default (empty) config. This is the one
 * table of the names pilotfish implements, by where they may appear, with Envoy's
 * deprecated aliases. A name that is not here and comes without typed_config is an error
 * naming the extension: pilotfish cannot tell what it is.
 */
export type ExtensionSlot = 'http_filter' | 'network_filter' | 'listener_filter' | 'upstream_transport_socket' | 'downstream_transport_socket' | 'access_logger';

const T = (s: string) => TYPE_PREFIX + s;

export const RAW_BUFFER_TYPE = T('envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer');
export const UPSTREAM_TLS_TYPE = T('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
export const DOWNSTREAM_TLS_TYPE = T('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext');
export const TLS_INSPECTOR_TYPE = T('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector');
export const HTTP_INSPECTOR_TYPE = T('envoy.extensions.filters.listener.http_inspector.v3.HttpInspector');
export const ORIGINAL_DST_TYPE = T('envoy.extensions.filters.listener.original_dst.v3.OriginalDst');

const HTTP_FILTERS: Record<string, string> = {
  'envoy.filters.http.router': T('envoy.extensions.filters.http.router.v3.Router'),
  'envoy.router': T('envoy.extensions.filters.http.router.v3.Router'),
  'envoy.filters.http.cors': T('envoy.extensions.filters.http.cors.v3.Cors'),
  'envoy.cors': T('envoy.extensions.filters.http.cors.v3.Cors'),
  'envoy.filters.http.fault': T('envoy.extensions.filters.http.fault.v3.HTTPFault'),
  'envoy.fault': T('envoy.extensions.filters.http.fault.v3.HTTPFault'),
  'envoy.filters.http.rbac': T('envoy.extensions.filters.http.rbac.v3.RBAC'),
  'envoy.filters.http.local_ratelimit': T('envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit'),
  'envoy.filters.http.header_mutation': T('envoy.extensions.filters.http.header_mutation.v3.HeaderMutation'),
  'envoy.filters.http.buffer': T('envoy.extensions.filters.http.buffer.v3.Buffer'),
  'envoy.buffer': T('envoy.extensions.filters.http.buffer.v3.Buffer'),
};

export const NETWORK_RBAC_TYPE = T('envoy.extensions.filters.network.rbac.v3.RBAC');
export const NETWORK_SET_FILTER_STATE_TYPE = T('envoy.extensions.filters.network.set_filter_state.v3.Config');
export const ISTIO_STATS_TYPE = T('stats.PluginConfig');
export const ISTIO_NETWORK_AUTHN_TYPE = T('io.istio.network.authn.Config');
export const ISTIO_TCP_METADATA_EXCHANGE_TYPE = T('envoy.tcp.metadataexchange.config.MetadataExchange');

/**
 * The one table of non-terminal network filters the decoder accepts (by type URL, the
 * inner one of a TypedStruct): each needs a factory registered in proxy/ (Envoy's built-ins
 * there, Istio's in istio/) or the listener fails at build time with that reason. Any
 * other network filter is refused at decode time: it could be a security control.
 */
export const NETWORK_FILTER_TYPES: ReadonlyMap<string, string> = new Map([
  [NETWORK_RBAC_TYPE, 'envoy.filters.network.rbac'],
  [NETWORK_SET_FILTER_STATE_TYPE, 'envoy.filters.network.set_filter_state'],
  [ISTIO_STATS_TYPE, 'istio.stats'],
  [ISTIO_NETWORK_AUTHN_TYPE, 'istio_authn'],
  [ISTIO_TCP_METADATA_EXCHANGE_TYPE, 'istio.metadata_exchange'],
]);

const NETWORK_FILTERS: Record<string, string> = {
  'envoy.filters.network.rbac': NETWORK_RBAC_TYPE,
  'envoy.filters.network.set_filter_state': NETWORK_SET_FILTER_STATE_TYPE,
  'envoy.filters.network.http_connection_manager': T('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'),
  'envoy.http_connection_manager': T('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'),
  'envoy.filters.network.tcp_proxy': T('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy'),
  'envoy.tcp_proxy': T('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy'),
  'envoy.filters.network.connection_limit': T('envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit'),
};

const LISTENER_FILTERS: Record<string, string> = {
  'envoy.filters.listener.tls_inspector': TLS_INSPECTOR_TYPE,
  'envoy.listener.tls_inspector': TLS_INSPECTOR_TYPE,
  'envoy.filters.listener.http_inspector': HTTP_INSPECTOR_TYPE,
  'envoy.listener.http_inspector': HTTP_INSPECTOR_TYPE,
  'envoy.filters.listener.original_dst': ORIGINAL_DST_TYPE,
  'envoy.listener.original_dst': ORIGINAL_DST_TYPE,
};

const ACCESS_LOGGERS: Record<string, string> = {
  'envoy.access_loggers.stdout': T('envoy.extensions.access_loggers.stream.v3.StdoutAccessLog'),
  'envoy.access_loggers.stderr': T('envoy.extensions.access_loggers.stream.v3.StderrAccessLog'),
  'envoy.access_loggers.file': T('envoy.extensions.access_loggers.file.v3.FileAccessLog'),
  'envoy.file_access_log': T('envoy.extensions.access_loggers.file.v3.FileAccessLog'),
};

const TRANSPORT_SOCKETS = (tls: string): Record<string, string> => ({
  'envoy.transport_sockets.tls': tls,
  tls,
  'envoy.transport_sockets.raw_buffer': RAW_BUFFER_TYPE,
  raw_buffer: RAW_BUFFER_TYPE,
});

const TABLES: Record<ExtensionSlot, Record<string, string>> = {
  http_filter: HTTP_FILTERS,
  network_filter: NETWORK_FILTERS,
  listener_filter: LISTENER_FILTERS,
  upstream_transport_socket: TRANSPORT_SOCKETS(UPSTREAM_TLS_TYPE),
  downstream_transport_socket: TRANSPORT_SOCKETS(DOWNSTREAM_TLS_TYPE),
  access_logger: ACCESS_LOGGERS,
};

const WHAT: Record<ExtensionSlot, string> = {
  http_filter: 'an HTTP filter',
  network_filter: 'a network filter',
  listener_filter: 'a listener filter',
  upstream_transport_socket: 'a transport socket',
  downstream_transport_socket: 'a transport socket',
  access_logger: 'an access logger',
};

/** The type URL Envoy would resolve `name` to in `slot`, if pilotfish implements it. */
export function wellKnownType(slot: ExtensionSlot, name: string): string | undefined {
  return Object.hasOwn(TABLES[slot], name) ? TABLES[slot][name] : undefined;
}

/** Names recognised in a slot (for error texts and tests). */
export function wellKnownNames(slot: ExtensionSlot): string[] {
  return Object.keys(TABLES[slot]);
}

/**
 * The typed config of an extension at `r` (`name` + optional `typed_config`): the decoded
 * Any, or, when typed_config is absent, the well-known name's type with an empty config.
 * Reads only `name` and `typed_config`; the caller finishes `r`.
 */
export function resolveExtension(r: ObjectReader, slot: ExtensionSlot): { name: string; typeUrl: string; config: Record<string, unknown> } | undefined {
  const name = r.string('name', '');
  let tc = r.get('typed_config');
  // `typed_config: {}` (no "@type", as v2-era examples write it) names nothing: Envoy then
  // resolves the extension by its name, exactly as when typed_config is absent.
  if (tc !== null && typeof tc === 'object' && !Array.isArray(tc) && Object.keys(tc).length === 0) tc = undefined;
  if (tc !== undefined) {
    const any = decodeAny(tc, r.diag, r.child('typed_config'));
    return any ? { name: name || any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1), ...any } : undefined;
  }
  const typeUrl = wellKnownType(slot, name);
  if (typeUrl === undefined) {
    r.diag.error(r.child('typed_config'), name === ''
      ? `is required (${WHAT[slot]} without a name)`
      : `is required: "${name}" is not ${WHAT[slot]} pilotfish knows by name`);
    return undefined;
  }
  return { name, typeUrl, config: {} };
}

/** A transport socket: undefined for raw_buffer (plaintext, as no transport socket). */
export function decodeTransportSocketExt(r: ObjectReader, side: 'upstream' | 'downstream'): TypedExtension | undefined {
  const ext = resolveExtension(r, side === 'upstream' ? 'upstream_transport_socket' : 'downstream_transport_socket');
  r.finish();
  if (!ext || ext.typeUrl === RAW_BUFFER_TYPE) return undefined;
  return ext;
}
