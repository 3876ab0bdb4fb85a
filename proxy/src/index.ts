// proxy/'s public surface: the composition root and what a caller needs around it.
export { startProxy, validateBootstrap, loadBootstrapOrThrow, type ProxyDeps, type RunningProxy } from './proxy.js';
export { ProxyServer, ConfigError, type ServerState } from './server.js';
export { Logger, isLevel, LEVELS } from './log.js';
export { OverloadManager } from './overload/overload-manager.js';
export { VERSION } from './version.js';
