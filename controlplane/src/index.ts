export { runControlPlaneCommand } from './cli.js';
export { ControlPlane } from './controlplane.js';
export { XdsServer, type AckEvent, type NackEvent, type XdsServerOptions } from './server.js';
export { ResourceStore, type StoredResource, type TypeChange } from './snapshot.js';
export { parseMesh, parseMeshText, parseEndpoint, MeshError, listenerTransportSocket, clusterTransportSocket, type MeshTls, type Mesh, type MeshService, type MeshListener, type MeshRoute, type MeshEndpoint } from './mesh.js';
export {
  compileMesh,
  clusterJson,
  listenerJson,
  routeConfigurationJson,
  loadAssignmentJson,
  ledsResources,
  ledsCollection,
  ledsResourceName,
  lbEndpointJson,
  healthStatus,
  HCM_TYPE,
  ROUTER_TYPE,
} from './compile.js';
export {
  EndpointSliceWatcher, endpointsFromSlices, loadKubernetesClient, defaultKubeConfig, KubernetesClientMissing,
  type SliceTarget, type EndpointSink, type WatcherOptions,
} from './kubernetes.js';
