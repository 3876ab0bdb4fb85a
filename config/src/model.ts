/**
 * pilotfish's configuration model: plain, immutable data decoded from Envoy v3
 * resources (bootstrap, LDS, RDS, CDS, EDS). Every other module reads these types;
 * none of them ever sees raw proto3-JSON. Durations are milliseconds.
 */

export type Millis = number;

import type { InternalAddress, TunnelingConfig } from './internal.js';

export interface SocketAddress {
  /** IP literal or host name; for a pipe, the socket path (Linux abstract sockets start with "@"). */
  readonly address: string;
  /** 0 for a pipe. */
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP';
  /**
   * Set when the Envoy address was `pipe` (a Unix domain socket): `address` is then its
   * path and `port` 0. Listeners listen on it, endpoints and xDS/SDS clusters connect to it.
   */
  readonly pipe?: { readonly path: string; readonly mode: number };
  /** Set for `envoy_internal_address`: a listener of this proxy (`address` is then its name, port 0). */
  readonly internal?: InternalAddress;
}

/** envoy.config.core.v3.CidrRange. */
export interface CidrRange {
  readonly addressPrefix: string;
  readonly prefixLen: number;
}

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly locality?: Locality;
}

export interface AdminConfig {
  readonly address: SocketAddress;
}

/** An extension config as written: Envoy `name` plus `typed_config` with its `@type`. */
export interface TypedExtension {
  readonly name: string;
  readonly typeUrl: string;
  /** The typed_config object without `@type` (TypedStruct already unwrapped to its `value`). */
  readonly config: Readonly<Record<string, unknown>>;
}

export interface Bootstrap {
  readonly node: NodeInfo;
  readonly admin?: AdminConfig;
  readonly staticResources: {
    readonly listeners: readonly Listener[];
    readonly clusters: readonly Cluster[];
    readonly secrets: readonly TypedExtension[];
  };
  readonly dynamicResources?: DynamicResources;
  readonly bootstrapExtensions: readonly TypedExtension[];
  readonly overloadManager?: OverloadManagerConfig;
  /** Default drain time for graceful shutdown (pilotfish: `--drain-time-s`, Envoy's flag). */
}

export interface ConfigSource {
  readonly ads: boolean;
  readonly initialFetchTimeout: Millis;
  readonly resourceApiVersion: 'V3';
}

export interface DynamicResources {
  readonly adsConfig?: {
    readonly apiType: 'GRPC' | 'DELTA_GRPC';
    readonly transportApiVersion: 'V3';
    /** Clusters (from static_resources) that reach the management server, in failover order. */
    readonly grpcServices: readonly { readonly clusterName: string; readonly timeout?: Millis; readonly initialMetadata: readonly { readonly key: string; readonly value: string }[] }[];
    readonly setNodeOnFirstMessageOnly: boolean;
  };
  readonly ldsConfig?: ConfigSource;
  readonly cdsConfig?: ConfigSource;
}

// ---------------------------------------------------------------- listeners

export interface Listener {
  /** As configured; when absent Envoy names the listener itself (pilotfish: "<address>_<port>"). */
  readonly name: string;
  readonly address: SocketAddress;
  readonly filterChains: readonly FilterChain[];
  readonly defaultFilterChain?: FilterChain;
  /** The newer `filter_chain_matcher` (a destination-port/IP, SNI, ALPN tree naming chains); replaces filter_chain_match when set. */
  readonly filterChainMatcher?: FilterChainMatcherNode;
  readonly perConnectionBufferLimitBytes: number;
  /** tls_inspector, http_inspector, original_dst (known types only; others were reported). */
  readonly listenerFilters: readonly ListenerFilter[];
  /** listener_filters_timeout, default 15 s; 0 = none. */
  readonly listenerFiltersTimeout: Millis;
  readonly continueOnListenerFiltersTimeout: boolean;
  /** Hand a connection to the listener bound to its original destination (Istio's virtualOutbound). */
  readonly useOriginalDst: boolean;
  /** false: not bound to a socket; only reachable by use_original_dst hand-off (default true). */
  readonly bindToPort: boolean;
  readonly trafficDirection: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  readonly statPrefix?: string;
  /** `internal_listener`: no socket; reached in-process through envoy_internal_address endpoints. */
  readonly internal?: true;
}

/** A listener filter with its `filter_disabled` predicate, when set (the filter is skipped for connections it matches). */
export type ListenerFilter = TypedExtension & { readonly filterDisabled?: ListenerFilterPredicate };

/** envoy.config.listener.v3.ListenerFilterChainMatchPredicate, on the connection's destination port. */
export type ListenerFilterPredicate =
  | { readonly kind: 'any' }
  | { readonly kind: 'port'; readonly start: number; readonly end: number } // [start, end)
  | { readonly kind: 'not'; readonly rule: ListenerFilterPredicate }
  | { readonly kind: 'or' | 'and'; readonly rules: readonly ListenerFilterPredicate[] };

/** envoy.config.listener.v3.FilterChainMatch, every criterion of Envoy's selection order. */
export interface FilterChainMatch {
  readonly destinationPort?: number;
  readonly prefixRanges: readonly CidrRange[];
  readonly directSourcePrefixRanges: readonly CidrRange[];
  readonly sourceType: 'ANY' | 'SAME_IP_OR_LOOPBACK' | 'EXTERNAL';
  readonly sourcePrefixRanges: readonly CidrRange[];
  readonly sourcePorts: readonly number[];
  /** Lower-cased; "*.example.com" matches any name under example.com (longest suffix wins, exact names first). */
  readonly serverNames: readonly string[];
  readonly transportProtocol?: string;
  readonly applicationProtocols: readonly string[];
}

/** Inputs of `filter_chain_matcher` pilotfish evaluates (Envoy's network matching inputs). */
export type NetworkMatchInput =
  | 'destination_port' | 'destination_ip' | 'source_ip' | 'source_port' | 'direct_source_ip' | 'source_type'
  | 'server_name' | 'transport_protocol' | 'application_protocol';

/** One node of a decoded `filter_chain_matcher`: a chain by name, or a map lookup on one input. */
export type FilterChainMatcherNode =
  | { readonly kind: 'chain'; readonly name: string }
  | {
    readonly kind: 'tree';
    readonly input: NetworkMatchInput;
    /** exact_match_map: value -> node. */
    readonly exact: ReadonlyMap<string, FilterChainMatcherNode>;
    /** prefix_match_map (longest prefix wins), or for IP inputs an ip_range_match given as CIDR -> node. */
    readonly prefix: ReadonlyMap<string, FilterChainMatcherNode>;
    readonly onNoMatch?: FilterChainMatcherNode;
  };

/** Envoy's overload_manager (the supported monitors and actions; see proxy/src/overload/). */
export interface OverloadManagerConfig {
  readonly refreshInterval: Millis; // default 1s
  /** envoy.resource_monitors.global_downstream_max_connections: max_active_downstream_connections */
  readonly maxActiveDownstreamConnections?: number;
  /** envoy.resource_monitors.fixed_heap: max_heap_size_bytes */
  readonly maxHeapSizeBytes?: number;
  /** pilotfish.resource_monitors.event_loop_lag: max_lag (pressure = observed lag / max_lag) */
  readonly maxEventLoopLag?: Millis;
  readonly actions: readonly OverloadAction[];
}

export interface OverloadAction {
  /** envoy.overload_actions.stop_accepting_requests | stop_accepting_connections | disable_http_keepalive */
  readonly name: string;
  /** Monitor name -> pressure (0..1) at which the action fires (threshold.value, or scaled.scaling_threshold). */
  readonly triggers: readonly { readonly monitor: string; readonly threshold: number }[];
}

/** envoy.filters.network.connection_limit on a filter chain. */
export interface ConnectionLimit {
  readonly statPrefix: string;
  readonly maxConnections: number;
  readonly delay: Millis; // 0 = close at once
}

/**
 * A non-terminal network filter of a chain (network RBAC, set_filter_state, Istio's
 * istio_authn / metadata exchange / istio.stats), as written: only types in the decoder's
 * accepted table get here; the proxy's registered factory validates `config`.
 */
export interface NetworkFilterConfig {
  readonly name: string;
  /** With the type.googleapis.com/ prefix; the inner type when the config came in a TypedStruct. */
  readonly typeUrl: string;
  /** typed_config without `@type` (a TypedStruct already unwrapped to its `value`). */
  readonly config: Readonly<Record<string, unknown>>;
}

export interface FilterChain {
  readonly name: string;
  readonly connectionLimit?: ConnectionLimit;
  /** The non-terminal network filters in configuration order (connection_limit excepted: see connectionLimit). */
  readonly networkFilters: readonly NetworkFilterConfig[];
  readonly match?: FilterChainMatch;
  /** `envoy.transport_sockets.tls` DownstreamTlsContext, kept raw for certs/ to decode. */
  readonly transportSocket?: TypedExtension;
  readonly network: HttpConnectionManager | TcpProxy;
}

export type CodecType = 'AUTO' | 'HTTP1' | 'HTTP2';

export interface HttpFilterConfig {
  readonly name: string;
  readonly typeUrl: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly disabled: boolean;
  readonly isOptional: boolean;
}

export type RouteSource =
  | { readonly kind: 'inline'; readonly config: RouteConfiguration }
  | { readonly kind: 'rds'; readonly routeConfigName: string; readonly configSource: ConfigSource };

export interface HttpProtocolLimits {
  readonly idleTimeout: Millis; // common_http_protocol_options.idle_timeout, default 1h
  readonly maxConnectionDuration?: Millis;
  readonly maxHeadersCount: number; // default 100
  readonly maxStreamDuration?: Millis;
  readonly maxRequestHeadersKb: number; // default 60
  readonly streamIdleTimeout: Millis; // default 5 min
  readonly requestTimeout: Millis; // 0 = disabled
  readonly requestHeadersTimeout: Millis; // 0 = disabled
  readonly drainTimeout: Millis; // default 5s
  readonly maxConcurrentStreams: number; // http2_protocol_options, default 2147483647
}

/** forward_client_cert_details (XFCC handling). */
export type ForwardClientCertDetails = 'SANITIZE' | 'FORWARD_ONLY' | 'APPEND_FORWARD' | 'SANITIZE_SET' | 'ALWAYS_FORWARD_ONLY';

/** set_current_client_cert_details: which fields of the peer certificate go into XFCC (By and Hash always). */
export interface ClientCertDetails {
  readonly subject: boolean;
  readonly cert: boolean;
  readonly chain: boolean;
  readonly dns: boolean;
  readonly uri: boolean;
}

/** local_reply_config: mappers (first match rewrites status/body/headers) and a body format. */
export interface LocalReplyConfig {
  readonly mappers: readonly LocalReplyMapper[];
  /** SubstitutionFormatString: text_format / json_format, raw (telemetry/ compiles it with the access-log formatter). */
  readonly bodyFormat?: SubstitutionFormat;
}

export interface LocalReplyMapper {
  /** AccessLogFilter, raw (telemetry/ compiles it). */
  readonly filter: unknown;
  readonly statusCode?: number;
  readonly body?: string;
  readonly bodyFormatOverride?: SubstitutionFormat;
  readonly headersToAdd: readonly HeaderValueOption[];
}

export interface SubstitutionFormat {
  readonly text?: string;
  readonly json?: Readonly<Record<string, unknown>>;
  readonly contentType?: string;
  readonly omitEmptyValues: boolean;
}

/** upgrade_configs entry (HCM or route level). */
export interface UpgradeConfig {
  /** Lower-cased: "websocket", "connect", ... */
  readonly upgradeType: string;
  readonly enabled: boolean;
  /** Route level only: connect_config present (terminate CONNECT and proxy the payload as TCP). */
  readonly connectConfig?: { readonly allowPost: boolean };
}

export interface HttpConnectionManager {
  readonly kind: 'http';
  readonly statPrefix: string;
  readonly codecType: CodecType;
  readonly routeSource: RouteSource;
  readonly httpFilters: readonly HttpFilterConfig[];
  readonly useRemoteAddress: boolean;
  readonly xffNumTrustedHops: number;
  readonly skipXffAppend: boolean;
  readonly generateRequestId: boolean;
  readonly preserveExternalRequestId: boolean;
  readonly serverName: string;
  readonly serverHeaderTransformation: 'OVERWRITE' | 'APPEND_IF_ABSENT' | 'PASS_THROUGH';
  readonly limits: HttpProtocolLimits;
  readonly accessLog: readonly AccessLogConfig[];
  readonly tracing?: Readonly<Record<string, unknown>>;
  // Path handling before routing and RBAC, with Envoy's semantics.
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
  readonly pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' | 'REJECT_REQUEST' | 'UNESCAPE_AND_REDIRECT' | 'UNESCAPE_AND_FORWARD';
  readonly stripPortMode: 'NONE' | 'MATCHING' | 'ANY';
  readonly forwardClientCertDetails: ForwardClientCertDetails;
  readonly setCurrentClientCertDetails: ClientCertDetails;
  readonly localReplyConfig?: LocalReplyConfig;
  /** `via` header value appended to requests and responses. */
  readonly via?: string;
  readonly upgradeConfigs: readonly UpgradeConfig[];
  /** http2_protocol_options.allow_connect (extended CONNECT, RFC 8441). */
  readonly http2AllowConnect: boolean;
  /** internal_address_config CIDRs (x-envoy-internal); empty = RFC 1918 + loopback as Envoy's default. */
  readonly internalAddressCidrs: readonly CidrRange[];
}

/** An HCM access_log entry: the logger extension plus Envoy's AccessLog.filter, raw. */
export type AccessLogConfig = TypedExtension & { readonly filter?: unknown };

export interface TcpProxy {
  readonly kind: 'tcp';
  readonly statPrefix: string;
  readonly cluster: ClusterSpecifier;
  readonly idleTimeout: Millis; // default 1h
  readonly maxConnectAttempts: number;
  /** access_log: one entry per session when the connection closes. */
  readonly accessLog?: readonly AccessLogConfig[];
  /** tunneling_config: the stream goes to the upstream inside an HTTP/2 CONNECT (HBONE). */
  readonly tunneling?: TunnelingConfig;
}

// ---------------------------------------------------------------- routes

export interface HeaderValueOption {
  readonly key: string; // lower-case
  readonly value: string;
  readonly appendAction: 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';
}

export interface HeaderMutations {
  readonly requestHeadersToAdd: readonly HeaderValueOption[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderValueOption[];
  readonly responseHeadersToRemove: readonly string[];
}

export interface RouteConfiguration extends HeaderMutations {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
  /** Bodies larger than this are never buffered for retries (Envoy: per_request_buffer_limit_bytes). */
  readonly validateClusters: boolean;
  /** Match virtual hosts on the host without its port (istiod sets it on every route table). */
  readonly ignorePortInHostMatching?: boolean;
}

export interface VirtualHost extends HeaderMutations {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly Route[];
  readonly requireTls: 'NONE' | 'EXTERNAL_ONLY' | 'ALL';
  readonly retryPolicy?: RetryPolicy;
  readonly hedgePolicy?: HedgePolicy;
  readonly typedPerFilterConfig: Readonly<Record<string, TypedExtension>>;
  /** include_request_attempt_count: upstream requests carry x-envoy-attempt-count (1 for the first try). */
  readonly includeRequestAttemptCount?: boolean;
}

/** Envoy's hedge_policy (route or virtual host); only hedging on per-try timeout is supported. */
export interface HedgePolicy {
  readonly hedgeOnPerTryTimeout: boolean;
}

export type StringMatcher =
  | { readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'safe_regex'; readonly regex: string; readonly ignoreCase: false };

export type HeaderMatch =
  | { readonly kind: 'string'; readonly matcher: StringMatcher }
  | { readonly kind: 'present'; readonly present: boolean }
  | { readonly kind: 'range'; readonly start: number; readonly end: number };

export interface HeaderMatcher {
  readonly name: string; // lower-case; may be a pseudo-header like ":method"
  readonly match: HeaderMatch;
  readonly invert: boolean;
  readonly treatMissingAsEmpty: boolean;
}

export interface QueryParameterMatcher {
  readonly name: string;
  /** undefined means "present" */
  readonly matcher?: StringMatcher;
  readonly presentMatch?: boolean;
}

export type PathMatch =
  | { readonly kind: 'connect_matcher' }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'path'; readonly value: string }
  | { readonly kind: 'path_separated_prefix'; readonly value: string }
  | { readonly kind: 'safe_regex'; readonly regex: string };

export interface RouteMatch {
  readonly path: PathMatch;
  readonly caseSensitive: boolean; // default true
  readonly headers: readonly HeaderMatcher[];
  readonly queryParameters: readonly QueryParameterMatcher[];
  readonly grpc: boolean;
  /** runtime_fraction as a fraction in [0,1], if set. */
  readonly runtimeFraction?: number;
}

export interface RetryBackoff {
  readonly baseInterval: Millis; // default 25ms
  readonly maxInterval: Millis; // default 10x base
}

export interface RetryPolicy {
  /** Conditions as Envoy names them: 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, ... */
  readonly retryOn: ReadonlySet<string>;
  readonly numRetries: number; // default 1
  readonly perTryTimeout?: Millis;
  readonly perTryIdleTimeout?: Millis;
  readonly backoff: RetryBackoff;
  readonly retriableStatusCodes: readonly number[];
  readonly hostSelectionRetryMaxAttempts: number;
  readonly retryHostPredicates: readonly string[];
}

export type HashPolicy =
  | { readonly kind: 'header'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'cookie'; readonly name: string; readonly ttl?: Millis; readonly path?: string; readonly terminal: boolean }
  | { readonly kind: 'source_ip'; readonly terminal: boolean }
  | { readonly kind: 'query_parameter'; readonly name: string; readonly terminal: boolean };

export interface WeightedCluster extends HeaderMutations {
  readonly name: string;
  readonly weight: number;
}

export type ClusterSpecifier =
  | { readonly kind: 'cluster'; readonly name: string }
  | { readonly kind: 'weighted'; readonly clusters: readonly WeightedCluster[]; readonly totalWeight: number }
  | { readonly kind: 'cluster_header'; readonly header: string };

export interface ForwardAction {
  readonly kind: 'route';
  readonly cluster: ClusterSpecifier;
  readonly prefixRewrite?: string;
  readonly regexRewrite?: { readonly regex: string; readonly substitution: string };
  readonly hostRewriteLiteral?: string;
  readonly autoHostRewrite: boolean;
  readonly timeout: Millis; // default 15s; 0 = none
  readonly idleTimeout?: Millis;
  readonly retryPolicy?: RetryPolicy;
  readonly hedgePolicy?: HedgePolicy;
  readonly hashPolicy: readonly HashPolicy[];
  readonly priority: 'DEFAULT' | 'HIGH';
  readonly upgradeConfigs: readonly UpgradeConfig[];
  /** max_stream_duration.max_stream_duration (overrides the HCM's). */
  readonly maxStreamDuration?: Millis;
  /** max_stream_duration.grpc_timeout_header_max: honour grpc-timeout up to this (0 = unbounded). */
  readonly grpcTimeoutHeaderMax?: Millis;
  /**
   * max_grpc_timeout (deprecated in Envoy, still sent by istiod): for gRPC requests the
   * grpc-timeout header (absent: no limit) replaces `timeout`, capped by this (0 = no cap).
   */
  readonly maxGrpcTimeout?: Millis;
  /** grpc_timeout_offset: subtracted from the grpc-timeout header's value (when that stays positive). */
  readonly grpcTimeoutOffset?: Millis;
}

export interface RedirectAction {
  readonly kind: 'redirect';
  readonly schemeRedirect?: string;
  readonly httpsRedirect: boolean;
  readonly hostRedirect?: string;
  readonly portRedirect?: number;
  readonly pathRedirect?: string;
  readonly prefixRewrite?: string;
  readonly responseCode: 301 | 302 | 303 | 307 | 308;
  readonly stripQuery: boolean;
}

export interface DirectResponseAction {
  readonly kind: 'direct_response';
  readonly status: number;
  /** The body text: set by the decoder for inline sources, by resolveRouteDataSources for files and variables. */
  readonly body?: string;
  /** Where the body comes from, as configured (decoders do no I/O; see DataSource). */
  readonly bodySource?: DataSource;
}

/**
 * envoy.config.core.v3.DataSource as a decoder returns it: a reference, never the content of a file
 * or variable, because decoders do no I/O. One later step reads it (config/src/data-source.ts for
 * route bodies; certs/ for TLS material, which also watches files for rotation). `field` is the
 * config path of the DataSource object, so that step reports `<field>.filename: cannot read ...`.
 */
export type DataSource =
  | { readonly kind: 'file'; readonly path: string; readonly field?: string }
  | { readonly kind: 'inline'; readonly bytes: Buffer }
  | { readonly kind: 'env'; readonly name: string; readonly field?: string };

export interface Route extends HeaderMutations {
  readonly name: string;
  readonly match: RouteMatch;
  readonly action: ForwardAction | RedirectAction | DirectResponseAction;
  readonly typedPerFilterConfig: Readonly<Record<string, TypedExtension>>;
}

// ---------------------------------------------------------------- clusters

export type DiscoveryType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
/** CLUSTER_PROVIDED: the ORIGINAL_DST cluster picks its own host (the original destination). */
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RING_HASH' | 'MAGLEV' | 'RANDOM' | 'CLUSTER_PROVIDED';
export type EnvoyHealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface LbEndpoint {
  readonly address: SocketAddress;
  readonly hostname: string;
  readonly healthStatus: EnvoyHealthStatus;
  readonly loadBalancingWeight: number; // default 1
  readonly metadata: Readonly<Record<string, unknown>>;
}

export interface LocalityLbEndpoints {
  readonly locality: Locality;
  readonly lbEndpoints: readonly LbEndpoint[];
  readonly loadBalancingWeight?: number;
  readonly priority: number;
  /** LEDS: the collection these endpoints come from, instead of lbEndpoints. */
  readonly ledsCollectionName?: string;
}

export interface ClusterLoadAssignment {
  readonly clusterName: string;
  readonly endpoints: readonly LocalityLbEndpoints[];
  readonly overprovisioningFactor: number; // percent, default 140
}

export interface CircuitBreakerThresholds {
  readonly priority: 'DEFAULT' | 'HIGH';
  readonly maxConnections: number; // 1024
  readonly maxPendingRequests: number; // 1024
  readonly maxRequests: number; // 1024
  readonly maxRetries: number; // 3
  readonly retryBudget?: { readonly budgetPercent: number; readonly minRetryConcurrency: number };
}

export interface HealthCheck {
  readonly timeout: Millis;
  readonly interval: Millis;
  readonly intervalJitter: Millis;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  readonly noTrafficInterval: Millis;
  readonly kind:
    | { readonly type: 'http'; readonly path: string; readonly host?: string; readonly expectedStatuses: readonly (readonly [number, number])[] }
    | { readonly type: 'tcp' };
}

export interface OutlierDetection {
  readonly consecutive5xx: number; // 5
  readonly consecutiveGatewayFailure: number; // 5
  readonly interval: Millis; // 10s
  readonly baseEjectionTime: Millis; // 30s
  readonly maxEjectionTime: Millis; // 300s
  readonly maxEjectionPercent: number; // 10
  readonly enforcingConsecutive5xx: number; // 100
  readonly enforcingConsecutiveGatewayFailure: number; // 0
  readonly enforcingSuccessRate: number; // 100
  readonly successRateMinimumHosts: number; // 5
  readonly successRateRequestVolume: number; // 100
  readonly successRateStdevFactor: number; // 1900 (=1.9)
  /** split_external_local_origin_errors: connect failures, resets and timeouts count only towards consecutiveLocalOriginFailure. */
  readonly splitExternalLocalOriginErrors?: boolean; // false
  readonly consecutiveLocalOriginFailure?: number; // 5
  readonly enforcingConsecutiveLocalOriginFailure?: number; // 100
}

export interface Cluster {
  readonly name: string;
  readonly type: DiscoveryType;
  readonly lbPolicy: LbPolicy;
  readonly connectTimeout: Millis; // default 5s
  readonly loadAssignment?: ClusterLoadAssignment;
  /** EDS: the name to subscribe to (defaults to the cluster name). */
  readonly edsServiceName?: string;
  readonly dnsRefreshRate: Millis; // 5s
  readonly dnsLookupFamily: 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL';
  readonly upstreamProtocol: 'HTTP1' | 'HTTP2' | 'USE_DOWNSTREAM';
  readonly http2MaxConcurrentStreams: number;
  readonly ringHash: { readonly minimumRingSize: number; readonly maximumRingSize: number };
  readonly maglev: { readonly tableSize: number };
  readonly leastRequest: { readonly choiceCount: number };
  readonly healthyPanicThreshold: number; // percent, default 50
  readonly localityWeightedLb: boolean;
  readonly circuitBreakers: readonly CircuitBreakerThresholds[];
  readonly healthChecks: readonly HealthCheck[];
  readonly outlierDetection?: OutlierDetection;
  /** `envoy.transport_sockets.tls` UpstreamTlsContext, kept raw for certs/ to decode. */
  readonly transportSocket?: TypedExtension;
  readonly maxRequestsPerConnection?: number;
  /**
   * HttpProtocolOptions.common_http_protocol_options.idle_timeout: an upstream connection
   * with no request for this long is closed (0: never). Unset: undici's keep-alive
   * defaults (30 s, up to 60 s when the upstream announces more), not Envoy's 1 h.
   */
  readonly upstreamIdleTimeout?: Millis;
  /** metadata.filter_metadata, opaque to the data path; filters read it (Istio's `istio` key names the cluster's service). */
  readonly filterMetadata?: Readonly<Record<string, unknown>>;
  readonly perConnectionBufferLimitBytes: number;
  /** ORIGINAL_DST clusters: original_dst_lb_config. */
  readonly originalDst?: { readonly useHttpHeader: boolean; readonly httpHeaderName: string; readonly upstreamPortOverride?: number };
  /** ORIGINAL_DST: how long an unused host is kept (cleanup_interval, default 5 s). */
  readonly cleanupInterval: Millis;
  /**
   * transport_socket_matches, in order: the first whose `match` is a subset of an
   * endpoint's `envoy.transport_socket_match` metadata gives that endpoint's transport
   * socket; none matching -> `transportSocket` (Istio's tlsMode: istio selects mTLS).
   */
  readonly transportSocketMatches: readonly TransportSocketMatch[];
  readonly upstreamConnectionOptions?: { readonly tcpKeepalive?: TcpKeepalive };
  /** upstream_bind_config.source_address: connect from this local address (Istio's inbound clusters: 127.0.0.6). */
  readonly upstreamBindConfig?: { readonly sourceAddress: string; readonly sourcePort?: number };
}

export interface TransportSocketMatch {
  readonly name: string;
  readonly match: Readonly<Record<string, unknown>>;
  /** undefined = raw_buffer (plaintext). */
  readonly transportSocket?: TypedExtension;
}

export interface TcpKeepalive {
  readonly probes?: number;
  readonly time?: Millis;
  readonly interval?: Millis;
}

// ---------------------------------------------------------------- endpoint sets

/**
 * An endpoint as the data path sees it: flattened out of its locality and priority,
 * identified by `key` ("address:port", "[v6]:port") across updates, with
 * EndpointSlice-like conditions derived from Envoy's health_status.
 */
export interface Endpoint {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly hostname: string;
  readonly weight: number;
  readonly priority: number;
  /** "region/zone/subzone" */
  readonly locality: string;
  readonly localityWeight: number;
  /**
   * healthy   - ready and serving (Envoy HEALTHY/UNKNOWN)
   * degraded  - serving, used only when not enough healthy (Envoy DEGRADED)
   * unhealthy - not serving (Envoy UNHEALTHY/TIMEOUT)
   * draining  - terminating: no new requests, in-flight ones finish (Envoy DRAINING)
   */
  readonly health: 'healthy' | 'degraded' | 'unhealthy' | 'draining';
  /** metadata.filter_metadata["envoy.transport_socket_match"], for the cluster's transport_socket_matches. */
  readonly transportSocketMatch?: Readonly<Record<string, unknown>>;
  /** A Unix domain socket endpoint (Envoy `pipe`): `address` is the path, `port` 0, `key` "unix:<path>". */
  readonly pipe?: true;
  /**
   * An `envoy_internal_address` endpoint: a listener of this proxy, reached in-process,
   * with the endpoint's filter_metadata (an internal_upstream socket passes it on).
   */
  readonly internal?: InternalAddress & { readonly metadata: Readonly<Record<string, unknown>> };
}

/** An incremental change to one cluster's endpoints, keyed by Endpoint.key. */
export interface EndpointDiff {
  readonly cluster: string;
  readonly added: readonly Endpoint[];
  readonly removed: readonly string[];
  readonly changed: readonly Endpoint[];
}
