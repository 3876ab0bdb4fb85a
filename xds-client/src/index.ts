export { XdsClient, type XdsClientOptions, type ResourceTypeRegistration, type ConfigDump, type ConfigDumpEntry, type XdsLog } from './client.js';
export type { ApiType, ServerAddress } from './transport.js';
export { xdsOptionsFromBootstrap, type FromBootstrapExtras } from './bootstrap.js';
export { TYPE_URLS, nameMatches, collectionOf, type ResourceType, type ResourceEntry, type ResourceChanges } from './resource-type.js';
export {
  listenerType,
  routeConfigurationType,
  clusterType,
  loadAssignmentType,
  lbEndpointType,
  secretType,
  extensionConfigType,
} from './resource-types.js';
export { sotwInitial, sotwOnResponse, sotwOnStreamStart, sotwSetNames, sotwRequest, type SotwState, type SotwOutcome } from './sotw-state.js';
export { deltaInitial, deltaOnResponse, deltaOnStreamStart, deltaSetNames, WILDCARD, type DeltaState, type DeltaOutcome } from './delta-state.js';
export { ConfigAssembler, routeNames, secretNames, edsName } from './assembler.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
export {
  codecs,
  encodeJson,
  decodeResourceJson,
  envoyRoot,
  loadExtraProtos,
  SOTW_METHOD,
  DELTA_METHOD,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type WireAny,
  type WireNode,
  type WireResource,
} from './protos.js';
