/**
 * Every proto enum the decoders read, in one place, each listed in proto number order so that
 * the number form (proto3 JSON allows `lb_policy: 3`) maps to the right name. `null` marks a
 * number Envoy retired or never used: it is neither accepted nor offered in error texts.
 * Names match case-insensitively (see ObjectReader.enumOf).
 */
export const ENUMS = {
  'core.SocketAddress.Protocol': ['TCP', 'UDP'],
  'core.ApiConfigSource.ApiType': [null, 'REST', 'GRPC', 'DELTA_GRPC', null, 'AGGREGATED_GRPC', 'AGGREGATED_DELTA_GRPC'],
  'core.ApiVersion': ['AUTO', 'V2', 'V3'],
  'core.RoutingPriority': ['DEFAULT', 'HIGH'],
  'core.HealthStatus': ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'],
  'core.HeaderValueOption.HeaderAppendAction': ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'],
  'core.TrafficDirection': ['UNSPECIFIED', 'INBOUND', 'OUTBOUND'],
  'listener.FilterChainMatch.ConnectionSourceType': ['ANY', 'SAME_IP_OR_LOOPBACK', 'EXTERNAL'],
  'cluster.Cluster.DiscoveryType': ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'],
  'cluster.Cluster.LbPolicy': ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', null, 'MAGLEV', 'CLUSTER_PROVIDED', 'LOAD_BALANCING_POLICY_CONFIG'],
  'cluster.Cluster.DnsLookupFamily': ['AUTO', 'V4_ONLY', 'V6_ONLY', 'V4_PREFERRED', 'ALL'],
  'cluster.Cluster.RingHashLbConfig.HashFunction': ['XX_HASH', 'MURMUR_HASH_2'],
  'hcm.CodecType': ['AUTO', 'HTTP1', 'HTTP2', 'HTTP3'],
  'hcm.ServerHeaderTransformation': ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH'],
  'hcm.PathWithEscapedSlashesAction': ['IMPLEMENTATION_SPECIFIC_DEFAULT', 'KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD'],
  'hcm.ForwardClientCertDetails': ['SANITIZE', 'FORWARD_ONLY', 'APPEND_FORWARD', 'SANITIZE_SET', 'ALWAYS_FORWARD_ONLY'],
  'route.VirtualHost.TlsRequirementType': ['NONE', 'EXTERNAL_ONLY', 'ALL'],
  'route.RedirectAction.RedirectResponseCode': ['MOVED_PERMANENTLY', 'FOUND', 'SEE_OTHER', 'TEMPORARY_REDIRECT', 'PERMANENT_REDIRECT'],
  'type.FractionalPercent.DenominatorType': ['HUNDRED', 'TEN_THOUSAND', 'MILLION'],
} as const;

export type EnumName = keyof typeof ENUMS;
