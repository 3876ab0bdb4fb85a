/** Mesh description -> Envoy v3 resources (proto3-JSON, snake_case, Any as "@type"). */
import { TYPE_URLS } from '../../xds-client/src/index.js';
import { clusterTransportSocket, listenerTransportSocket, type Mesh, type MeshEndpoint, type MeshListener, type MeshService } from './mesh.js';

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
export const LEDS_AUTHORITY = 'pilotfish';

type Json = Record<string, unknown>;
export type ResourceSet = Map<string, Map<string, Json>>;

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

export function healthStatus(e: MeshEndpoint): string {
  // EndpointSlice conditions -> Envoy: terminating drains, not serving is unhealthy.
  if (e.terminating) return 'DRAINING';
  if (!e.serving) return 'UNHEALTHY';
  return e.ready ? 'HEALTHY' : 'DEGRADED';
}

export function lbEndpointJson(e: MeshEndpoint): Json {
  return {
    endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
    health_status: healthStatus(e),
    load_balancing_weight: e.weight,
  };
}

export function ledsCollection(service: string, zone: string): string {
  return `xdstp://${LEDS_AUTHORITY}/envoy.config.endpoint.v3.LbEndpoint/${service}/${zone || '_'}/*`;
}

export function ledsResourceName(service: string, e: MeshEndpoint): string {
  return ledsCollection(service, e.zone).slice(0, -1) + `${e.address}:${e.port}`;
}

function zones(endpoints: readonly MeshEndpoint[]): Map<string, MeshEndpoint[]> {
  const m = new Map<string, MeshEndpoint[]>();
  for (const e of endpoints) {
    let l = m.get(e.zone);
    if (l === undefined) m.set(e.zone, (l = []));
    l.push(e);
  }
  return m;
}

export function loadAssignmentJson(s: MeshService): Json {
  return {
    cluster_name: s.name,
    endpoints: [...zones(s.endpoints)].map(([zone, eps]) =>
      s.leds
        ? { locality: { zone }, load_balancing_weight: 1, leds_cluster_locality_config: { leds_config: ADS_SOURCE, leds_collection_name: ledsCollection(s.name, zone) } }
        : // gRPC clients ignore localities without a weight.
          { locality: { zone }, load_balancing_weight: 1, lb_endpoints: eps.map(lbEndpointJson) },
    ),
  };
}

export function ledsResources(s: MeshService): Map<string, Json> {
  const out = new Map<string, Json>();
  if (!s.leds) return out;
  for (const e of s.endpoints) out.set(ledsResourceName(s.name, e), lbEndpointJson(e));
  return out;
}

export function clusterJson(s: MeshService): Json {
  return {
    name: s.name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE },
    connect_timeout: s.connectTimeout,
    lb_policy: s.lb,
    ...(s.protocol === 'http2' ? { http2_protocol_options: {} } : {}),
  };
}

function hcm(l: MeshListener): Json {
  return {
    '@type': HCM_TYPE,
    stat_prefix: l.name,
    rds: { route_config_name: l.name, config_source: ADS_SOURCE },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
  };
}

export function listenerJson(l: MeshListener): Json {
  if (l.grpc) return { name: l.name, api_listener: { api_listener: hcm(l) } };
  return {
    name: l.name,
    address: { socket_address: { address: l.address, port_value: l.port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm(l) }] }],
  };
}

export function routeConfigurationJson(l: MeshListener): Json {
  return {
    name: l.name,
    virtual_hosts: [
      {
        name: l.name,
        domains: l.domains,
        routes: l.routes.map((r) => ({
          match: 'prefix' in r.match ? { prefix: r.match.prefix } : { path: r.match.path },
          route: {
            ...('service' in r.target
              ? { cluster: r.target.service }
              : { weighted_clusters: { clusters: Object.entries(r.target.split).map(([name, weight]) => ({ name, weight })) } }),
            ...(r.timeout !== undefined ? { timeout: r.timeout } : {}),
          },
        })),
      },
    ],
  };
}

export function compileMesh(mesh: Mesh): ResourceSet {
  const out: ResourceSet = new Map([
    [TYPE_URLS.listener, new Map()],
    [TYPE_URLS.route, new Map()],
    [TYPE_URLS.cluster, new Map()],
    [TYPE_URLS.endpoint, new Map()],
    [TYPE_URLS.lbEndpoint, new Map()],
  ]);
  for (const l of mesh.listeners) {
    const tls = listenerTransportSocket(mesh, l);
    const lj = listenerJson(l);
    out.get(TYPE_URLS.listener)!.set(l.name, tls ? { ...lj, filter_chains: (lj.filter_chains as Json[]).map((fc) => ({ ...fc, transport_socket: tls })) } : lj);
    out.get(TYPE_URLS.route)!.set(l.name, routeConfigurationJson(l));
  }
  for (const s of mesh.services) {
    const tls = clusterTransportSocket(mesh, s);
    out.get(TYPE_URLS.cluster)!.set(s.name, tls ? { ...clusterJson(s), transport_socket: tls } : clusterJson(s));
    out.get(TYPE_URLS.endpoint)!.set(s.name, loadAssignmentJson(s));
    for (const [n, j] of ledsResources(s)) out.get(TYPE_URLS.lbEndpoint)!.set(n, j);
  }
  return out;
}
