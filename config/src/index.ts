export type * from './model.js';
export type { ConfigSink } from './sink.js';
export { Diagnostics, DecodeError, formatProblem, type Problem, type Validation } from './validation.js';
export { decodeBootstrap } from './bootstrap.js';
export { decodeListener, decodeHttpConnectionManager, decodeTcpProxy, HCM_TYPE, TCP_PROXY_TYPE, ECDS_FILTER_TYPE } from './listener.js';
export { decodeCluster, decodeClusterLoadAssignment, decodeLbEndpoint, isPrime } from './cluster.js';
export { decodeRouteConfiguration, decodeHeaderMatcher, decodeHeaderValueOption, decodeStringMatcher, decodeFractionalPercent, decodeDataSource, DEFAULT_ROUTE_TIMEOUT_MS } from './route.js';
export { dataSourceField, readDataSource, resolveRouteDataSources } from './data-source.js';
export { decodeAny, decodeTypedExtension, typeName, TYPE_PREFIX } from './typed.js';
export { ObjectReader, parseDuration, enumValue, describe, snakeToCamel } from './reader.js';
export { ENUMS } from './enums.js';
export { wellKnownType, wellKnownNames, type ExtensionSlot } from './well-known.js';
export {
  NETWORK_FILTER_TYPES, NETWORK_RBAC_TYPE, NETWORK_SET_FILTER_STATE_TYPE, ISTIO_STATS_TYPE, ISTIO_NETWORK_AUTHN_TYPE, ISTIO_TCP_METADATA_EXCHANGE_TYPE,
} from './well-known.js';
export { decodeCidrRange, classifyHost } from './address.js';
export { generatedListenerName } from './listener.js';
export { decodeListenerFilterPredicate, listenerFilterPredicateMatches } from './listener-filter-predicate.js';
export { compileRe2, compileFullMatch, type Re2 } from './regex.js';
export { loadBootstrapFile, parseConfigText } from './load.js';
export * from './endpoints.js';
export { compileHeaderMatcher, compileQueryMatcher, compileStringMatcher, type HeaderLookup, type StringTest } from './matchers.js';
export * from './internal.js';
