// proxy/'s public surface: the composition root and what a caller needs around it.
export { startProxy, validateBootstrap, loadBootstrapOrThrow, type ProxyDeps, type RunningProxy } from './proxy.js';
export { ProxyServer, ConfigError, type ServerState } from './server.js';
export { Logger, isLevel, LEVELS } from './log.js';
export { OverloadManager } from './overload/overload-manager.js';
export { VERSION } from './version.js';
export {
  registerNetworkFilter, networkFilterFactory, registeredNetworkFilterTypes,
  type NetworkFilter, type NetworkFilterFactory, type NetworkFilterContext, type NetworkConnection,
  type ConnectionVerdict, type DataVerdict, type ConnectionSummary, type UpstreamInfo,
} from './listener/network-filter.js';
export { filterState, type ConnectionInfo } from './net/connection-info.js';
