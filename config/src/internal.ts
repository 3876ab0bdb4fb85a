/**
 * Decoders for Envoy's internal listeners and tunnelling, the constructs istiod builds a
 * waypoint from (connect_terminate -> main_internal -> connect_originate):
 *
 *   envoy_internal_address            an endpoint that is a listener of this proxy, by name
 *   Listener.internal_listener        a listener with no socket, reached only that way
 *   internal_upstream transport       the cluster-side socket to it; passes endpoint /
 *                                     cluster metadata on to the internal connection
 *   bootstrap internal_listener       Envoy's switch for the feature (buffer size)
 *   tcp_proxy tunneling_config        carry the TCP stream in an HTTP/2 CONNECT (HBONE)
 */
import type { Diagnostics } from './validation.js';
import { ObjectReader } from './reader.js';
import type { HeaderValueOption, TypedExtension } from './model.js';
import { decodeHeaderValueOption } from './route.js';

export const INTERNAL_UPSTREAM_TYPE = 'envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport';
export const INTERNAL_LISTENER_BOOTSTRAP_TYPE = 'envoy.extensions.bootstrap.internal_listener.v3.InternalListener';
const RAW_BUFFER = 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

/** envoy.config.core.v3.EnvoyInternalAddress. */
export interface InternalAddress {
  readonly serverListenerName: string;
  /** Distinguishes endpoints that reach the same listener (Istio: the pod's "ip:port"). */
  readonly endpointId: string;
}

/** Which metadata an internal_upstream socket hands to the internal connection. */
export interface PassthroughMetadata {
  readonly kind: 'host' | 'cluster';
  /** The filter_metadata namespace, e.g. "envoy.filters.listener.original_dst" or "tunnel". */
  readonly name: string;
}

export interface InternalUpstream {
  readonly passthroughMetadata: readonly PassthroughMetadata[];
  /** The wrapped transport socket; only raw_buffer is supported (double HBONE would need TLS here). */
  readonly transportSocket?: TypedExtension;
}

/** tcp_proxy TunnelingConfig: the TCP payload rides in an HTTP CONNECT (or POST) stream. */
export interface TunnelingConfig {
  /** The :authority, in Envoy's format language (Istio: "%DOWNSTREAM_LOCAL_ADDRESS%"). */
  readonly hostname: string;
  readonly usePost: boolean;
  readonly postPath: string;
  readonly headersToAdd: readonly HeaderValueOption[];
  readonly propagateResponseHeaders: boolean;
}

function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

export function isInternalUpstreamType(typeUrl: string): boolean {
  return typeName(typeUrl) === INTERNAL_UPSTREAM_TYPE;
}

export function isInternalListenerBootstrap(ext: TypedExtension): boolean {
  return typeName(ext.typeUrl) === INTERNAL_LISTENER_BOOTSTRAP_TYPE;
}

/** The body of `envoy_internal_address`. */
export function decodeInternalAddress(r: ObjectReader): InternalAddress | undefined {
  const serverListenerName = r.requiredString('server_listener_name');
  const endpointId = r.string('endpoint_id', '') ?? '';
  r.finish();
  if (serverListenerName === undefined) return undefined;
  if (serverListenerName === '') {
    r.diag.error(r.child('server_listener_name'), 'must not be empty');
    return undefined;
  }
  return { serverListenerName, endpointId };
}

/**
 * The `internal_listener` field of a Listener (InternalListenerConfig). It has no fields
 * Envoy reads today besides the deprecated buffer size; an unknown one is reported.
 */
export function decodeInternalListenerConfig(r: ObjectReader): true {
  r.finish();
  return true;
}

/** The internal_upstream transport socket's typed_config. */
export function decodeInternalUpstream(config: Record<string, unknown>, diag: Diagnostics, path: string): InternalUpstream | undefined {
  const r = ObjectReader.of(config, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const passthroughMetadata: PassthroughMetadata[] = [];
  for (const m of r.objects('passthrough_metadata')) {
    const name = m.requiredString('name');
    const k = m.object('kind');
    let kind: 'host' | 'cluster' | undefined;
    if (!k) diag.error(m.child('kind'), 'is required');
    else {
      const which = k.oneof(['host', 'cluster', 'route', 'request'], true, 'a metadata kind,');
      if (which === 'host' || which === 'cluster') {
        kind = which;
        k.accept(which);
      } else if (which !== undefined) {
        k.accept(which);
        diag.error(k.child(which), 'only host and cluster metadata can be passed to an internal listener');
      }
      k.finish();
    }
    m.finish();
    if (name !== undefined && kind !== undefined) passthroughMetadata.push({ kind, name });
  }
  let transportSocket: TypedExtension | undefined;
  const ts = r.object('transport_socket');
  if (ts) {
    const name = ts.string('name', '') ?? '';
    const tc = ts.object('typed_config');
    const t = tc ? tc.string('@type', '') ?? '' : '';
    tc?.accept(...Object.keys(tc.raw));
    ts.finish();
    const innerType = t !== '' ? typeName(t) : name === 'envoy.transport_sockets.raw_buffer' || name === 'raw_buffer' ? RAW_BUFFER : name;
    if (innerType !== RAW_BUFFER) {
      diag.error(ts.child('typed_config'), `${innerType || 'this transport socket'} inside internal_upstream is not supported by pilotfish (raw_buffer only; TLS here is double HBONE, out of scope)`);
    }
  }
  r.finish();
  if (diag.errors.length > before) return undefined;
  return { passthroughMetadata, ...(transportSocket ? { transportSocket } : {}) };
}

/**
 * tcp_proxy `tunneling_config`. Envoy's format language in `hostname` and header values
 * is checked when the chain is built (the proxy knows the operators).
 */
export function decodeTunnelingConfig(r: ObjectReader): TunnelingConfig | undefined {
  const before = r.diag.errors.length;
  const hostname = r.requiredString('hostname');
  const usePost = r.bool('use_post', false);
  const postPath = r.string('post_path', '') ?? '';
  if (postPath !== '' && !usePost) r.diag.error(r.child('post_path'), 'requires use_post');
  if (postPath !== '' && !postPath.startsWith('/')) r.diag.error(r.child('post_path'), 'must start with "/"');
  const headersToAdd = r.objects('headers_to_add').map(decodeHeaderValueOption).filter((h): h is HeaderValueOption => h !== undefined);
  const propagateResponseHeaders = r.bool('propagate_response_headers', false);
  // Trailers of a CONNECT stream carry nothing the TCP side could use; request_id_extension is not used by pilotfish.
  r.accept('propagate_response_trailers');
  r.finish();
  if (hostname === undefined || r.diag.errors.length > before) return undefined;
  if (hostname === '') {
    r.diag.error(r.child('hostname'), 'must not be empty');
    return undefined;
  }
  return { hostname, usePost, postPath: postPath || '/', headersToAdd, propagateResponseHeaders };
}

/**
 * The SocketAddress of an internal address: `address` is "envoy://<listener>/<id>" (never
 * an IP, a host name or a socket path, so nothing mistakes it for one), port 0.
 */
export function internalSocketAddress(internal: InternalAddress): { address: string; port: number; protocol: 'TCP'; internal: InternalAddress } {
  return { address: `envoy://${internal.serverListenerName}/${internal.endpointId}`, port: 0, protocol: 'TCP', internal };
}
