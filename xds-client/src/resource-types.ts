/**
 * The built-in resource types. Each is a type URL plus a decoder from config/; other
 * modules add their own (the proxy an SDS decoder from certs/, filters an ECDS type).
 */
import {
  decodeCluster,
  decodeClusterLoadAssignment,
  decodeLbEndpoint,
  decodeListener,
  decodeRouteConfiguration,
  decodeAny,
  ObjectReader,
  type Cluster,
  type ClusterLoadAssignment,
  type Diagnostics,
  type LbEndpoint,
  type Listener,
  type RouteConfiguration,
  type TypedExtension,
} from '../../config/src/index.js';
import { TYPE_URLS, type ResourceType } from './resource-type.js';

const byField = (field: string) => (json: Readonly<Record<string, unknown>>): string | undefined => {
  const v = json[field];
  return typeof v === 'string' ? v : undefined;
};

export const listenerType: ResourceType<Listener> = {
  typeUrl: TYPE_URLS.listener,
  statName: 'lds',
  allResourcesRequired: true,
  name: byField('name'),
  decode: (json, diag, path) => decodeListener(json, diag, path),
};

export const routeConfigurationType: ResourceType<RouteConfiguration> = {
  typeUrl: TYPE_URLS.route,
  statName: 'rds',
  allResourcesRequired: false,
  name: byField('name'),
  decode: (json, diag, path) => decodeRouteConfiguration(json, diag, path),
};

export const clusterType: ResourceType<Cluster> = {
  typeUrl: TYPE_URLS.cluster,
  statName: 'cds',
  allResourcesRequired: true,
  name: byField('name'),
  decode: (json, diag, path) => decodeCluster(json, diag, path),
};

export const loadAssignmentType: ResourceType<ClusterLoadAssignment> = {
  typeUrl: TYPE_URLS.endpoint,
  statName: 'eds',
  allResourcesRequired: false,
  name: byField('cluster_name'),
  decode: (json, diag, path) => decodeClusterLoadAssignment(json, diag, path),
  keepDecoded: false,
};

/** LEDS: one `LbEndpoint` per resource, named inside an xdstp collection (delta only). */
export const lbEndpointType: ResourceType<LbEndpoint> = {
  typeUrl: TYPE_URLS.lbEndpoint,
  statName: 'leds',
  allResourcesRequired: false,
  // LbEndpoint carries no name; LEDS resources are named by the delta Resource wrapper.
  name: () => undefined,
  decode: (json, diag, path) => {
    const r = ObjectReader.of(json, path, diag);
    return r ? decodeLbEndpoint(r, false) : undefined;
  },
};

/**
 * SDS passthrough: the Secret as a TypedExtension whose config is the Secret's JSON.
 * The proxy replaces this with certs/' decoder via `secretType(decode)`.
 */
export function secretType(
  decode: (json: Readonly<Record<string, unknown>>, diag: Diagnostics, path: string) => TypedExtension | undefined = passthroughSecret,
): ResourceType<TypedExtension> {
  return { typeUrl: TYPE_URLS.secret, statName: 'sds', allResourcesRequired: false, name: byField('name'), decode };
}

function passthroughSecret(json: Readonly<Record<string, unknown>>, diag: Diagnostics, path: string): TypedExtension | undefined {
  const name = json.name;
  if (typeof name !== 'string' || name === '') {
    diag.error(`${path}.name`, 'is required');
    return undefined;
  }
  const { '@type': _t, ...config } = json;
  return { name, typeUrl: TYPE_URLS.secret, config };
}

/**
 * ECDS (`TypedExtensionConfig`): name + typed_config. The filters module registers a
 * type built from this with its own validation of the inner config.
 */
export function extensionConfigType(
  validate?: (ext: TypedExtension, diag: Diagnostics, path: string) => void,
): ResourceType<TypedExtension> {
  return {
    typeUrl: TYPE_URLS.extensionConfig,
    statName: 'ecds',
    allResourcesRequired: false,
    name: byField('name'),
    decode: (json, diag, path) => {
      const name = json.name;
      if (typeof name !== 'string' || name === '') {
        diag.error(`${path}.name`, 'is required');
        return undefined;
      }
      const any = decodeAny(json.typed_config, diag, `${path}.typed_config`);
      if (!any) return undefined;
      const ext = { name, typeUrl: any.typeUrl, config: any.config };
      validate?.(ext, diag, path);
      return ext;
    },
  };
}
