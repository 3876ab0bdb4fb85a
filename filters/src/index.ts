/**
 * filters/: HTTP filter chains for the proxy's request path. The only file other modules
 * import. Importing it registers the built-in filter factories.
 */
import './builtin/router.js';
import './builtin/header-mutation.js';
import './builtin/rbac.js';
import './builtin/local-ratelimit.js';
import './builtin/fault.js';
import './builtin/cors.js';
import './builtin/buffer.js';
import './user/factory.js';

export type {
  HeaderMap, RequestHeadersView, ResponseHeadersView, LocalReply, FilterResult, DataResult,
  StreamInfo, HttpFilterChain, RouterOptions, FailurePolicy, HttpFilter, Clock, RandomSource,
} from './api.js';
export { FILTER_DISABLED, systemClock } from './api.js';
export { StreamSlot } from './stream-slot.js';
export { buildHttpFilterChain, decodePerFilterConfig, isLocalReply, type BuildOptions } from './chain.js';
export { FilterStats, FilterCounters } from './stats.js';
export { registerHttpFilter, registeredTypeUrls, type HttpFilterFactory, type FactoryContext } from './registry.js';
export { ROUTER_TYPE_URL } from './builtin/router.js';
export { compileRbac, compileRbacRules, evaluateRbac, type RbacEngine, type RbacSubject, type RbacAction } from './builtin/rbac-engine.js';
export type { DownstreamConnectionView, FilterHost } from './api.js';
export { UserFilterManager, type UserFilterManagerOptions, type AppliedVersion, type VersionState } from './user/manager.js';
export { FILTER_API_VERSION, USER_FILTER_TYPE_URL, sha256Hex, decodeUserFilterSpec } from './user/config.js';
export { handleUserFilterAdmin, type AdminAnswer } from './user/admin.js';
