/** From a decoded bootstrap to XdsClient options: the servers, API type and timeouts. */
import { flattenLoadAssignment, type Bootstrap, type Cluster, type ConfigSink } from '../../config/src/index.js';
import type { ResourceTypeRegistration, XdsClientOptions, XdsLog } from './client.js';
import { metadataProblem, type ServerAddress } from './transport.js';

export interface FromBootstrapExtras {
  readonly sink: ConfigSink;
  readonly resourceTypes?: readonly ResourceTypeRegistration<any>[];
  readonly log?: XdsLog;
  /**
   * Addresses of a management-server cluster. Default: the STATIC cluster's
   * load_assignment endpoints. A proxy with DNS clusters passes its resolver here.
   */
  readonly resolve?: (cluster: Cluster) => readonly ServerAddress[];
}

/**
 * Returns undefined when the bootstrap has no `dynamic_resources.ads_config`.
 * Throws (a one-line message naming the field) when a grpc_services cluster is unusable.
 */
export function xdsOptionsFromBootstrap(b: Bootstrap, extras: FromBootstrapExtras): XdsClientOptions | undefined {
  const dr = b.dynamicResources;
  const ads = dr?.adsConfig;
  if (dr === undefined || ads === undefined) return undefined;
  const resolve = extras.resolve ?? staticAddresses;
  const servers: ServerAddress[] = [];
  ads.grpcServices.forEach((g, i) => {
    const c = b.staticResources.clusters.find((x) => x.name === g.clusterName);
    if (c === undefined) {
      throw new Error(`dynamic_resources.ads_config.grpc_services[${i}].envoy_grpc.cluster_name: no static cluster "${g.clusterName}"`);
    }
    g.initialMetadata.forEach((m, j) => {
      const why = metadataProblem(m.key);
      if (why !== undefined) throw new Error(`dynamic_resources.ads_config.grpc_services[${i}].initial_metadata[${j}]: ${why}`);
    });
    servers.push(...resolve(c).map((s) => (g.initialMetadata.length > 0 ? { ...s, initialMetadata: g.initialMetadata } : s)));
  });
  if (servers.length === 0) throw new Error('dynamic_resources.ads_config.grpc_services: the management-server clusters have no endpoints');
  const timeouts = [dr.ldsConfig?.initialFetchTimeout, dr.cdsConfig?.initialFetchTimeout].filter((x): x is number => x !== undefined);
  return {
    node: b.node,
    servers,
    apiType: ads.apiType,
    sink: extras.sink,
    setNodeOnFirstMessageOnly: ads.setNodeOnFirstMessageOnly,
    initialFetchTimeoutMs: timeouts.length > 0 ? Math.max(...timeouts) : 15_000,
    listeners: dr.ldsConfig !== undefined,
    clusters: dr.cdsConfig !== undefined,
    // SDS sources (api_config_source naming a static cluster, as Istio's sds-grpc) are reached by their cluster's addresses.
    resolveCluster: (name) => {
      const c = b.staticResources.clusters.find((x) => x.name === name);
      return c === undefined ? undefined : resolve(c);
    },
    ...(extras.resourceTypes ? { resourceTypes: extras.resourceTypes } : {}),
    ...(extras.log ? { log: extras.log } : {}),
  };
}

function staticAddresses(c: Cluster): ServerAddress[] {
  if (c.loadAssignment === undefined) return [];
  return flattenLoadAssignment(c.loadAssignment).map((e) => ({ address: e.address, port: e.port }));
}
