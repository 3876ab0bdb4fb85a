/**
 * What the demo hands pilotfish: Envoy v3 bootstraps for the sidecars and the waypoint,
 * and the xDS resources the control plane serves the waypoint (the control plane's own
 * compiled mesh, with mTLS transport sockets added to the listener and clusters).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileMesh, parseMesh, type Mesh } from '../../controlplane/src/index.js';
import { TYPE_URLS } from '../../xds-client/src/index.js';
import type { DemoSpec } from './spec.js';

export const TRUST_DOMAIN = 'pilotfish.demo';
export const spiffe = (sa: string): string => `spiffe://${TRUST_DOMAIN}/ns/demo/sa/${sa}`;

/** File paths of one workload's certificate and key, and the trust bundle. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

type Json = Record<string, unknown>;

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const addr = (port: number) => ({ socket_address: { address: '127.0.0.1', port_value: port } });

function commonTls(c: CertFiles, matcher: Json): Json {
  return {
    tls_certificates: [{ certificate_chain: { filename: c.cert }, private_key: { filename: c.key } }],
    validation_context: {
      trusted_ca: { filename: c.ca },
      match_typed_subject_alt_names: [{ san_type: 'URI', matcher }],
    },
  };
}

/** mTLS server side: a client certificate from the mesh CA is required. */
export function downstreamTls(c: CertFiles): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      require_client_certificate: true,
      common_tls_context: commonTls(c, { prefix: `spiffe://${TRUST_DOMAIN}/` }),
    },
  };
}

/** mTLS client side: the server must present exactly `peer`'s SPIFFE ID. */
export function upstreamTls(c: CertFiles, peer: string): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      // proxy/src/server.ts tells upstream from downstream contexts by the presence of `sni`.
      sni: `${peer.slice(peer.lastIndexOf('/') + 1)}.demo.svc`,
      common_tls_context: commonTls(c, { exact: peer }),
    },
  };
}

function accessLog(file: string): Json[] {
  return [{
    name: 'envoy.access_loggers.file',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
      path: file,
      log_format: { text_format_source: { inline_string: '[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION%ms peer=%DOWNSTREAM_PEER_URI_SAN% upstream=%UPSTREAM_HOST% id=%REQ(X-REQUEST-ID)%\n' } },
    },
  }];
}

function listener(name: string, port: number, cluster: string, log: string, tls?: Json): Json {
  return {
    name,
    address: addr(port),
    filter_chains: [{
      ...(tls ? { transport_socket: tls } : {}),
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM,
          stat_prefix: name,
          access_log: accessLog(log),
          route_config: { virtual_hosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '15s', retry_policy: { retry_on: 'connect-failure,refused-stream,reset', num_retries: 2 } } }] }] },
          http_filters: [ROUTER],
        },
      }],
    }],
  };
}

function staticCluster(name: string, port: number, extra: Json = {}): Json {
  return { name, type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: addr(port) } }] }] }, ...extra };
}

export interface SidecarPorts {
  readonly admin: number;
  readonly inbound: number;
  readonly app: number;
  /** Frontend only: where its app sends outbound calls. */
  readonly outbound?: number;
}

/** A workload's sidecar: inbound (mTLS unless `plainInbound`) to the app, outbound to the waypoint. */
export function sidecarBootstrap(o: { id: string; service: string; ports: SidecarPorts; certs: CertFiles; logDir: string; plainInbound?: boolean; waypointPort?: number }): Json {
  const listeners = [listener('inbound', o.ports.inbound, 'local_app', join(o.logDir, `${o.id}.access.log`), o.plainInbound ? undefined : downstreamTls(o.certs))];
  const clusters = [staticCluster('local_app', o.ports.app)];
  if (o.ports.outbound !== undefined && o.waypointPort !== undefined) {
    listeners.push(listener('outbound', o.ports.outbound, 'waypoint', join(o.logDir, `${o.id}.outbound.access.log`)));
    clusters.push(staticCluster('waypoint', o.waypointPort, { transport_socket: upstreamTls(o.certs, spiffe('waypoint')) }));
  }
  return { node: { id: o.id, cluster: o.service }, admin: { address: addr(o.ports.admin) }, static_resources: { listeners, clusters } };
}

/** The waypoint: only the ADS connection is static; listener, routes, clusters, endpoints come over xDS. */
export function waypointBootstrap(o: { adminPort: number; xdsPort: number }): Json {
  return {
    node: { id: 'waypoint', cluster: 'waypoint' },
    admin: { address: addr(o.adminPort) },
    dynamic_resources: {
      ads_config: { api_type: 'DELTA_GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds' } }] },
      lds_config: { ads: {}, resource_api_version: 'V3' },
      cds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [staticCluster('xds', o.xdsPort, {
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
      })],
    },
  };
}

export function writeJson(file: string, value: unknown): string {
  writeFileSync(file, JSON.stringify(value, null, 2));
  return file;
}

/** An instance's endpoint as the control plane sees it. */
export interface EndpointState {
  readonly port: number;
  readonly terminating: boolean;
}

export const clusterName = (service: string, version: string): string => `${service}-${version}`;

/**
 * The control-plane mesh for the waypoint: one route per service (`/<service>`), a
 * weighted split over its versions with weight > 0, one cluster per version whose
 * endpoints are the running instances' sidecars.
 */
export function waypointMesh(spec: DemoSpec, waypointPort: number, endpoints: ReadonlyMap<string, readonly EndpointState[]>): Mesh {
  const routes = [...spec.services].map(([svc, versions]) => {
    const weighted = [...versions].filter(([, v]) => v.weight > 0);
    const target = weighted.length === 1 ? { service: clusterName(svc, weighted[0]![0]) } : { split: Object.fromEntries(weighted.map(([v, s]) => [clusterName(svc, v), s.weight])) };
    return { prefix: `/${svc}`, ...target };
  });
  const services = [...spec.services].flatMap(([svc, versions]) =>
    [...versions.keys()].map((v) => ({
      name: clusterName(svc, v),
      endpoints: (endpoints.get(clusterName(svc, v)) ?? []).map((e) => ({ address: '127.0.0.1', port: e.port, ready: true, serving: true, terminating: e.terminating })),
    })),
  );
  return parseMesh({ listeners: [{ name: 'waypoint', address: '127.0.0.1', port: waypointPort, routes }], services });
}

/** compileMesh plus mTLS: the waypoint listener requires mesh client certs, its clusters present the waypoint's. */
export function waypointResources(mesh: Mesh, certs: CertFiles): Map<string, Map<string, Json>> {
  const compiled = compileMesh(mesh) as Map<string, Map<string, Json>>;
  for (const [name, l] of compiled.get(TYPE_URLS.listener) ?? []) {
    const chains = (l.filter_chains as Json[]).map((fc) => ({ ...fc, transport_socket: downstreamTls(certs) }));
    compiled.get(TYPE_URLS.listener)!.set(name, { ...l, filter_chains: chains });
  }
  for (const [name, c] of compiled.get(TYPE_URLS.cluster) ?? []) {
    const service = name.slice(0, name.lastIndexOf('-'));
    compiled.get(TYPE_URLS.cluster)!.set(name, { ...c, transport_socket: upstreamTls(certs, spiffe(service)) });
  }
  return compiled;
}
