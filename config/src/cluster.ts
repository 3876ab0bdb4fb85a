import { isIP } from 'node:net';
import { ENUMS } from './enums.js';
import type {
  CircuitBreakerThresholds, Cluster, ClusterLoadAssignment, DiscoveryType, HealthCheck, LbEndpoint, LbPolicy, LocalityLbEndpoints,
  OutlierDetection, TcpKeepalive, TransportSocketMatch,
} from './model.js';
import { decodeAddress } from './address.js';
import { ObjectReader } from './reader.js';
import { decodeConfigSource } from './source.js';
import { decodeAny, TYPE_PREFIX } from './typed.js';
import { decodeTransportSocketExt } from './well-known.js';
import type { Diagnostics } from './validation.js';

// Enum value lists indexed by their proto number (null marks numbers Envoy retired).
const DISCOVERY_TYPES = ENUMS['cluster.Cluster.DiscoveryType'];
const LB_POLICIES = ENUMS['cluster.Cluster.LbPolicy'];
const DNS_FAMILIES = ENUMS['cluster.Cluster.DnsLookupFamily'];
const HEALTH = ENUMS['core.HealthStatus'];
const HTTP_PROTOCOL_OPTIONS = TYPE_PREFIX + 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

// What a cluster that sets none of these gets: one frozen copy shared by every such
// cluster (a proxy may hold thousands; per cluster these were ~0.4 KB). The model's
// fields are readonly, and freezing makes a write anywhere fail loudly (modules are strict).
const DEFAULT_RING_HASH: Cluster['ringHash'] = Object.freeze({ minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024 });
const DEFAULT_MAGLEV: Cluster['maglev'] = Object.freeze({ tableSize: 65537 });
const DEFAULT_LEAST_REQUEST: Cluster['leastRequest'] = Object.freeze({ choiceCount: 2 });
const defaultThresholds = (priority: 'DEFAULT' | 'HIGH'): CircuitBreakerThresholds =>
  Object.freeze({ priority, maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });
const DEFAULT_THRESHOLDS = { DEFAULT: defaultThresholds('DEFAULT'), HIGH: defaultThresholds('HIGH') } as const;
const DEFAULT_CIRCUIT_BREAKERS: readonly CircuitBreakerThresholds[] = Object.freeze([DEFAULT_THRESHOLDS.DEFAULT, DEFAULT_THRESHOLDS.HIGH]);
const NO_HEALTH_CHECKS: readonly HealthCheck[] = Object.freeze([]);
const NO_TRANSPORT_SOCKET_MATCHES: readonly TransportSocketMatch[] = Object.freeze([]);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function decodeCluster(json: unknown, diag: Diagnostics, path: string): Cluster | undefined {
  const r = ObjectReader.of(json, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const name = r.requiredString('name') ?? '';
  if (r.has('cluster_type')) {
    r.accept('cluster_type');
    diag.error(r.child('cluster_type'), 'custom cluster types are not supported by pilotfish');
  }
  const beforeType = diag.errors.length;
  const type = r.enumOf('type', DISCOVERY_TYPES, 'STATIC');
  // A refused type must not also produce the STATIC fallback's complaints (root cause once).
  const typeKnown = diag.errors.length === beforeType && !r.has('cluster_type');
  const lbPolicy = decodeLbPolicy(r, type);
  const connectTimeout = r.duration('connect_timeout', 5000);
  if (connectTimeout <= 0) diag.error(r.child('connect_timeout'), 'must be greater than 0');

  let edsServiceName: string | undefined;
  const eds = r.object('eds_cluster_config');
  if (eds) {
    const sn = eds.string('service_name');
    if (sn) edsServiceName = sn;
    const ec = eds.object('eds_config');
    if (ec) decodeConfigSource(ec);
    eds.finish();
  }
  if (typeKnown && type === 'EDS' && !eds) diag.error(r.child('eds_cluster_config'), 'is required for an EDS cluster');

  const la = r.object('load_assignment');
  const loadAssignment = la ? decodeLoadAssignmentReader(la, type === 'STRICT_DNS' || type === 'LOGICAL_DNS') : undefined;
  // Envoy takes STATIC and STRICT_DNS clusters without endpoints (Istio's BlackHoleCluster):
  // they have no hosts and answer 503. LOGICAL_DNS needs its one host.
  if (typeKnown && type === 'LOGICAL_DNS' && !la) {
    diag.error(r.child('load_assignment'), 'is required for a LOGICAL_DNS cluster (exactly one endpoint)');
  }
  if (type === 'ORIGINAL_DST' && la) diag.error(r.child('load_assignment'), 'ORIGINAL_DST clusters must have no load assignment (hosts are the original destinations)');
  if (type === 'LOGICAL_DNS' && la) {
    // Counted as written: an endpoint refused for its own reasons must not read as "got 0".
    const n = rawEndpointCount(la.raw);
    if (n !== 1) diag.error(r.child('load_assignment'), `a LOGICAL_DNS cluster takes exactly one endpoint, got ${n}`);
  }
  const odc = r.object('original_dst_lb_config');
  const originalDst = odc ? decodeOriginalDstLbConfig(odc) : type === 'ORIGINAL_DST' ? { useHttpHeader: false, httpHeaderName: 'x-envoy-original-dst-host' } : undefined;
  if (odc && type !== 'ORIGINAL_DST') diag.error(r.child('original_dst_lb_config'), 'only applies to an ORIGINAL_DST cluster');
  const cleanupInterval = r.duration('cleanup_interval', 5000);
  if (cleanupInterval <= 0) diag.error(r.child('cleanup_interval'), 'must be greater than 0');

  const dnsRefreshRate = r.duration('dns_refresh_rate', 5000);
  const dnsLookupFamily = r.enumOf('dns_lookup_family', DNS_FAMILIES, 'AUTO');
  // respect_dns_ttl, dns_resolvers, use_tcp_for_dns_lookups, typed_dns_resolver_config,
  // alt_stat_name: reported by finish() (the system resolver refreshes at dns_refresh_rate).

  // Upstream protocol: the v3 way (typed_extension_protocol_options) or the deprecated field.
  let upstreamProtocol: Cluster['upstreamProtocol'] = 'HTTP1';
  let http2MaxConcurrentStreams = 2147483647;
  let maxRequestsPerConnection = r.optionalInt('max_requests_per_connection', 1);
  let upstreamIdleTimeout: number | undefined;
  const h2 = r.object('http2_protocol_options');
  if (h2) {
    upstreamProtocol = 'HTTP2';
    http2MaxConcurrentStreams = h2.int('max_concurrent_streams', http2MaxConcurrentStreams, 1, 2147483647);
    h2.finish();
  }
  // HTTP/1 options: each field inside is reported (an empty object selects nothing pilotfish lacks).
  r.object('http_protocol_options')?.finish();
  const tepo = r.object('typed_extension_protocol_options');
  if (tepo) {
    for (const key of Object.keys(tepo.raw)) {
      const v = tepo.get(key);
      const any = decodeAny(v, diag, tepo.child(key));
      if (!any) continue;
      if (any.typeUrl !== HTTP_PROTOCOL_OPTIONS) {
        diag.warn(tepo.child(key), `protocol options of type ${any.typeUrl} are not supported by pilotfish; ignored`);
        continue;
      }
      const o = ObjectReader.of(any.config, tepo.child(key), diag);
      if (!o) continue;
      const which = o.oneof(['explicit_http_config', 'use_downstream_protocol_config', 'auto_config'], false);
      if (which === 'explicit_http_config') {
        const e = o.object('explicit_http_config');
        const proto = e?.oneof(['http_protocol_options', 'http2_protocol_options', 'http3_protocol_options'], true, 'a protocol,');
        if (proto === 'http2_protocol_options') {
          upstreamProtocol = 'HTTP2';
          const h = e?.object('http2_protocol_options');
          if (h) {
            http2MaxConcurrentStreams = h.int('max_concurrent_streams', http2MaxConcurrentStreams, 1, 2147483647);
            h.finish();
          }
        } else if (proto === 'http3_protocol_options') {
          e?.accept('http3_protocol_options');
          diag.error(`${e?.path}.http3_protocol_options`, 'HTTP/3 upstreams are not supported by pilotfish');
        } else if (proto === 'http_protocol_options') {
          upstreamProtocol = 'HTTP1';
          e?.object('http_protocol_options')?.finish();
        }
        e?.finish();
      } else if (which === 'use_downstream_protocol_config') {
        const u = o.object('use_downstream_protocol_config');
        const h = u?.object('http2_protocol_options');
        if (h) {
          http2MaxConcurrentStreams = h.int('max_concurrent_streams', http2MaxConcurrentStreams, 1, 2147483647);
          h.finish();
        }
        u?.object('http_protocol_options')?.finish();
        u?.finish();
        upstreamProtocol = 'USE_DOWNSTREAM';
      } else if (which === 'auto_config') {
        o.accept('auto_config');
        diag.warn(o.child('auto_config'), 'ALPN auto-selection is not supported; using HTTP/1.1');
      }
      const common = o.object('common_http_protocol_options');
      if (common) {
        maxRequestsPerConnection = common.optionalInt('max_requests_per_connection', 1) ?? maxRequestsPerConnection;
        upstreamIdleTimeout = common.duration('idle_timeout') ?? upstreamIdleTimeout;
        // The rest (max_connection_duration, max_headers_count, ...): reported by finish().
        common.finish();
      }
      o.finish();
    }
    tepo.finish();
  }

  const rh = r.object('ring_hash_lb_config');
  let ringHash = DEFAULT_RING_HASH;
  if (rh) {
    ringHash = { minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024 };
    const minimumRingSize = rh.int('minimum_ring_size', 1024, 1, 8 * 1024 * 1024);
    const maximumRingSize = rh.int('maximum_ring_size', 8 * 1024 * 1024, 1, 8 * 1024 * 1024);
    ringHash = { minimumRingSize, maximumRingSize };
    if (ringHash.maximumRingSize < ringHash.minimumRingSize) diag.error(rh.child('maximum_ring_size'), 'must not be less than minimum_ring_size');
    // XX_HASH is what pilotfish hashes with; MURMUR_HASH_2 would place hosts differently.
    const hf = rh.enumOf('hash_function', ENUMS['cluster.Cluster.RingHashLbConfig.HashFunction'], 'XX_HASH');
    if (hf !== 'XX_HASH') rh.diag.warn(rh.child('hash_function'), `${hf} is not supported by pilotfish; XX_HASH is used`);
    rh.finish();
  }
  const mg = r.object('maglev_lb_config');
  let maglev = DEFAULT_MAGLEV;
  if (mg) {
    maglev = { tableSize: mg.int('table_size', 65537, 1, 5000011) };
    if (!isPrime(maglev.tableSize)) diag.error(mg.child('table_size'), `must be a prime number, got ${maglev.tableSize}`);
    mg.finish();
  }
  const lr = r.object('least_request_lb_config');
  let leastRequest = DEFAULT_LEAST_REQUEST;
  if (lr) {
    leastRequest = { choiceCount: lr.int('choice_count', 2, 2, 100) };
    // active_request_bias, slow_start_config: reported by finish().
    lr.finish();
  }
  let healthyPanicThreshold = 50;
  let localityWeightedLb = false;
  const clc = r.object('common_lb_config');
  if (clc) {
    const hpt = clc.object('healthy_panic_threshold');
    if (hpt) {
      healthyPanicThreshold = hpt.number('value', 50, 0, 100);
      hpt.finish();
    }
    if (clc.has('locality_weighted_lb_config')) {
      clc.accept('locality_weighted_lb_config');
      localityWeightedLb = true;
    }
    // zone_aware_lb_config, update_merge_window, ignore_new_hosts_until_first_hc, ...: reported by finish().
    clc.finish();
  }

  const circuitBreakers = decodeCircuitBreakers(r);
  const hcs = r.objects('health_checks').map(decodeHealthCheck).filter((h): h is HealthCheck => h !== undefined);
  const healthChecks = hcs.length > 0 ? hcs : NO_HEALTH_CHECKS;
  const od = r.object('outlier_detection');
  const outlierDetection = od ? decodeOutlierDetection(od) : undefined;
  const ts = r.object('transport_socket');
  const transportSocket = ts ? decodeTransportSocketExt(ts, 'upstream') : undefined;
  const tsms = r.objects('transport_socket_matches').map(decodeTransportSocketMatch);
  const transportSocketMatches = tsms.length > 0 ? tsms : NO_TRANSPORT_SOCKET_MATCHES;
  const perConnectionBufferLimitBytes = r.int('per_connection_buffer_limit_bytes', 1024 * 1024, 1, 0xffffffff);
  const uco = r.object('upstream_connection_options');
  const upstreamConnectionOptions = uco ? decodeUpstreamConnectionOptions(uco) : undefined;
  const ubc = r.object('upstream_bind_config');
  const upstreamBindConfig = ubc ? decodeUpstreamBindConfig(ubc) : undefined;
  // metadata is opaque to the data path; its filter_metadata is kept for filters that read
  // it (Istio's stats name the destination service from the `istio` key).
  const filterMetadata = clusterFilterMetadata(r.get('metadata'));
  if (r.has('filters')) {
    r.accept('filters');
    // Istio puts its TCP metadata exchange here; without it the peer's labels on outbound TCP stay unknown.
    r.diag.warn(r.child('filters'), 'ignored: pilotfish runs no upstream network filters (connections to this cluster carry no filter-written bytes)');
  }
  r.finish();
  if (diag.errors.length > before) return undefined;
  // A plain literal, the optional fields added after: with spreads V8 gave the object room
  // for 28 fields (248 bytes) whatever it held; this one has its 18 in the object and
  // what is set of the rest beside it.
  const out: Mutable<Cluster> = {
    name, type, lbPolicy, connectTimeout, dnsRefreshRate, dnsLookupFamily, upstreamProtocol, http2MaxConcurrentStreams,
    ringHash, maglev, leastRequest, healthyPanicThreshold, localityWeightedLb, circuitBreakers, healthChecks,
    perConnectionBufferLimitBytes, cleanupInterval, transportSocketMatches,
  };
  if (originalDst) out.originalDst = originalDst;
  if (upstreamConnectionOptions) out.upstreamConnectionOptions = upstreamConnectionOptions;
  if (upstreamBindConfig) out.upstreamBindConfig = upstreamBindConfig;
  if (loadAssignment) out.loadAssignment = loadAssignment;
  if (edsServiceName !== undefined) out.edsServiceName = edsServiceName;
  if (outlierDetection) out.outlierDetection = outlierDetection;
  if (transportSocket) out.transportSocket = transportSocket;
  if (maxRequestsPerConnection !== undefined) out.maxRequestsPerConnection = maxRequestsPerConnection;
  if (upstreamIdleTimeout !== undefined) out.upstreamIdleTimeout = upstreamIdleTimeout;
  if (filterMetadata) out.filterMetadata = filterMetadata;
  return out;
}

function clusterFilterMetadata(md: unknown): Readonly<Record<string, unknown>> | undefined {
  const fm = md !== null && typeof md === 'object' ? (md as { filter_metadata?: unknown; filterMetadata?: unknown }) : undefined;
  const v = fm?.filter_metadata ?? fm?.filterMetadata;
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * lb_policy with Envoy's pairing rules: ORIGINAL_DST takes only CLUSTER_PROVIDED (implied when
 * absent: Envoy would refuse its ROUND_ROBIN default, so nothing else could be meant), and
 * CLUSTER_PROVIDED belongs to ORIGINAL_DST only.
 */
function decodeLbPolicy(r: ObjectReader, type: DiscoveryType): LbPolicy {
  const given = r.has('lb_policy');
  const raw = r.enumOf('lb_policy', LB_POLICIES, type === 'ORIGINAL_DST' ? 'CLUSTER_PROVIDED' : 'ROUND_ROBIN');
  if (type === 'ORIGINAL_DST') {
    if (given && raw !== 'CLUSTER_PROVIDED') {
      r.diag.error(r.child('lb_policy'), `${raw} is not valid for an ORIGINAL_DST cluster; only CLUSTER_PROVIDED is allowed`);
    }
    return 'CLUSTER_PROVIDED';
  }
  if (raw === 'CLUSTER_PROVIDED') {
    r.diag.error(r.child('lb_policy'), `CLUSTER_PROVIDED is only valid for an ORIGINAL_DST cluster, not ${type}`);
    return 'ROUND_ROBIN';
  }
  if (raw === 'LOAD_BALANCING_POLICY_CONFIG') {
    r.diag.error(r.child('lb_policy'), 'LOAD_BALANCING_POLICY_CONFIG (load_balancing_policy) is not supported by pilotfish; use ROUND_ROBIN, LEAST_REQUEST, RING_HASH, MAGLEV or RANDOM');
    return 'ROUND_ROBIN';
  }
  return raw;
}

function decodeOriginalDstLbConfig(r: ObjectReader): NonNullable<Cluster['originalDst']> {
  const useHttpHeader = r.bool('use_http_header', false);
  const headerGiven = r.string('http_header_name');
  if (!useHttpHeader && headerGiven !== undefined && headerGiven !== '') {
    r.diag.error(r.child('http_header_name'), 'is set but use_http_header is false; set use_http_header to true to use it');
  }
  const upstreamPortOverride = r.optionalInt('upstream_port_override', 0, 65535);
  // metadata_key (host from dynamic metadata) is reported by finish().
  r.finish();
  return {
    useHttpHeader,
    httpHeaderName: headerGiven !== undefined && headerGiven !== '' ? headerGiven.toLowerCase() : 'x-envoy-original-dst-host',
    ...(upstreamPortOverride !== undefined ? { upstreamPortOverride } : {}),
  };
}

function decodeTransportSocketMatch(r: ObjectReader): TransportSocketMatch {
  const name = r.requiredString('name') ?? '';
  const m = r.get('match');
  let match: Record<string, unknown> = {};
  if (m !== undefined) {
    if (m !== null && typeof m === 'object' && !Array.isArray(m)) match = m as Record<string, unknown>;
    else r.diag.error(r.child('match'), 'expected an object (a Struct of metadata to match)');
  }
  const ts = r.object('transport_socket');
  const transportSocket = ts ? decodeTransportSocketExt(ts, 'upstream') : undefined;
  r.finish();
  return { name, match, ...(transportSocket ? { transportSocket } : {}) };
}

function decodeUpstreamConnectionOptions(r: ObjectReader): NonNullable<Cluster['upstreamConnectionOptions']> {
  const k = r.object('tcp_keepalive');
  let tcpKeepalive: TcpKeepalive | undefined;
  if (k) {
    // Envoy's TcpKeepalive: UInt32Values in seconds.
    const probes = k.optionalInt('keepalive_probes', 0, 0xffffffff);
    const time = k.optionalInt('keepalive_time', 0, 0x7fffffff);
    const interval = k.optionalInt('keepalive_interval', 0, 0x7fffffff);
    k.finish();
    tcpKeepalive = {
      ...(probes !== undefined ? { probes } : {}),
      ...(time !== undefined ? { time: time * 1000 } : {}),
      ...(interval !== undefined ? { interval: interval * 1000 } : {}),
    };
  }
  // set_local_interface_name_on_upstream_connections, happy_eyeballs_config: reported by finish().
  r.finish();
  return tcpKeepalive ? { tcpKeepalive } : {};
}

function rawEndpointCount(cla: Readonly<Record<string, unknown>>): number {
  const eps = cla['endpoints'];
  if (!Array.isArray(eps)) return 0;
  return eps.reduce((a: number, l: unknown) => {
    const lbe = l !== null && typeof l === 'object' ? ((l as Record<string, unknown>)['lb_endpoints'] ?? (l as Record<string, unknown>)['lbEndpoints']) : undefined;
    return a + (Array.isArray(lbe) ? lbe.length : 0);
  }, 0);
}

/** The one primality check (Maglev table sizes); fastpath/ and proxy/ use this one. */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

function decodeCircuitBreakers(r: ObjectReader): readonly CircuitBreakerThresholds[] {
  const cb = r.object('circuit_breakers');
  if (!cb) return DEFAULT_CIRCUIT_BREAKERS;
  const out: CircuitBreakerThresholds[] = [];
  for (const t of cb.objects('thresholds')) {
    const priority = t.enumOf('priority', ENUMS['core.RoutingPriority'], 'DEFAULT');
    if (out.some((o) => o.priority === priority)) t.diag.error(t.child('priority'), `thresholds for ${priority} given twice`);
    let retryBudget: CircuitBreakerThresholds['retryBudget'];
    const rb = t.object('retry_budget');
    if (rb) {
      const bp = rb.object('budget_percent');
      const budgetPercent = bp ? bp.number('value', 20, 0, 100) : 20;
      bp?.finish();
      const minRetryConcurrency = rb.int('min_retry_concurrency', 3);
      rb.finish();
      retryBudget = { budgetPercent, minRetryConcurrency };
    }
    const thresholds: Mutable<CircuitBreakerThresholds> = {
      priority,
      maxConnections: t.int('max_connections', 1024),
      maxPendingRequests: t.int('max_pending_requests', 1024),
      maxRequests: t.int('max_requests', 1024),
      maxRetries: t.int('max_retries', 3),
    };
    if (retryBudget) thresholds.retryBudget = retryBudget;
    out.push(thresholds);
    // track_remaining, max_connection_pools: reported by finish().
    t.finish();
  }
  // per_host_thresholds: reported by finish() (only cluster-wide limits are enforced).
  cb.finish();
  for (const priority of ['DEFAULT', 'HIGH'] as const) {
    if (!out.some((o) => o.priority === priority)) out.push(DEFAULT_THRESHOLDS[priority]);
  }
  return out.slice(); // sized exactly (pushes leave room for 17)
}

function decodeHealthCheck(r: ObjectReader): HealthCheck | undefined {
  const before = r.diag.errors.length;
  const timeout = r.duration('timeout');
  const interval = r.duration('interval');
  if (timeout === undefined) r.diag.error(r.child('timeout'), 'is required');
  if (interval === undefined) r.diag.error(r.child('interval'), 'is required');
  const unhealthyThreshold = r.int('unhealthy_threshold', 0, 1);
  const healthyThreshold = r.int('healthy_threshold', 0, 1);
  if (!r.has('unhealthy_threshold')) r.diag.error(r.child('unhealthy_threshold'), 'is required');
  if (!r.has('healthy_threshold')) r.diag.error(r.child('healthy_threshold'), 'is required');
  const intervalJitter = r.duration('interval_jitter', 0);
  const noTrafficInterval = r.duration('no_traffic_interval', 60_000);
  const which = r.oneof(['http_health_check', 'tcp_health_check', 'grpc_health_check', 'custom_health_check'], true, 'a health checker,');
  let kind: HealthCheck['kind'] | undefined;
  if (which === 'http_health_check') {
    const h = r.object('http_health_check');
    if (h) {
      const path = h.requiredString('path') ?? '/';
      const host = h.string('host');
      const expectedStatuses: [number, number][] = [];
      for (const s of h.objects('expected_statuses')) {
        const start = s.int('start', 200, 100, 600);
        const end = s.int('end', 201, 100, 600);
        if (end <= start) s.diag.error(s.child('end'), 'must be greater than start');
        s.finish();
        expectedStatuses.push([start, end]);
      }
      if (expectedStatuses.length === 0) expectedStatuses.push([200, 201]);
      // codec_client_type, request_headers_to_add/remove, retriable_statuses, service_name_matcher: reported by finish().
      h.finish();
      kind = { type: 'http', path, expectedStatuses, ...(host !== undefined ? { host } : {}) };
    }
  } else if (which === 'tcp_health_check') {
    const t = r.object('tcp_health_check');
    if (t && (t.has('send') || t.has('receive'))) {
      t.accept('send', 'receive');
      t.diag.warn(t.path, 'send/receive payloads are not supported; a TCP connect is the check');
    }
    t?.finish();
    kind = { type: 'tcp' };
  } else if (which !== undefined) {
    r.accept(which);
    r.diag.error(r.child(which), 'not supported by pilotfish; use http_health_check or tcp_health_check');
  }
  // event_log_path, always_log_health_check_failures, reuse_connection, initial_jitter,
  // interval_jitter_percent, ...: reported by finish().
  r.finish();
  if (!kind || timeout === undefined || interval === undefined || r.diag.errors.length > before) return undefined;
  return { timeout, interval, intervalJitter, unhealthyThreshold, healthyThreshold, noTrafficInterval, kind };
}

function decodeOutlierDetection(r: ObjectReader): OutlierDetection {
  const pct = (name: string, def: number) => r.int(name, def, 0, 100);
  const od: OutlierDetection = {
    consecutive5xx: r.int('consecutive_5xx', 5),
    consecutiveGatewayFailure: r.int('consecutive_gateway_failure', 5),
    interval: r.duration('interval', 10_000),
    baseEjectionTime: r.duration('base_ejection_time', 30_000),
    maxEjectionTime: r.duration('max_ejection_time', 300_000),
    maxEjectionPercent: pct('max_ejection_percent', 10),
    enforcingConsecutive5xx: pct('enforcing_consecutive_5xx', 100),
    enforcingConsecutiveGatewayFailure: pct('enforcing_consecutive_gateway_failure', 0),
    enforcingSuccessRate: pct('enforcing_success_rate', 100),
    successRateMinimumHosts: r.int('success_rate_minimum_hosts', 5),
    successRateRequestVolume: r.int('success_rate_request_volume', 100),
    successRateStdevFactor: r.int('success_rate_stdev_factor', 1900),
    splitExternalLocalOriginErrors: r.bool('split_external_local_origin_errors', false),
    consecutiveLocalOriginFailure: r.int('consecutive_local_origin_failure', 5),
    enforcingConsecutiveLocalOriginFailure: pct('enforcing_consecutive_local_origin_failure', 100),
  };
  // max_ejection_time_jitter, failure_percentage_*, enforcing_local_origin_success_rate, ...: reported by finish().
  r.finish();
  return od;
}

export function decodeClusterLoadAssignment(json: unknown, diag: Diagnostics, path: string): ClusterLoadAssignment | undefined {
  const r = ObjectReader.of(json, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const cla = decodeLoadAssignmentReader(r, false);
  return diag.errors.length > before ? undefined : cla;
}

function decodeLoadAssignmentReader(r: ObjectReader, allowHostnames: boolean): ClusterLoadAssignment {
  const clusterName = r.string('cluster_name', '');
  const endpoints: LocalityLbEndpoints[] = [];
  for (const l of r.objects('endpoints')) {
    const loc = l.object('locality');
    const locality = { region: loc?.string('region', '') ?? '', zone: loc?.string('zone', '') ?? '', subZone: loc?.string('sub_zone', '') ?? '' };
    loc?.finish();
    const priority = l.int('priority', 0, 0, 128);
    const lw = l.optionalInt('load_balancing_weight', 1);
    let ledsCollectionName: string | undefined;
    const leds = l.object('leds_cluster_locality_config');
    if (leds) {
      ledsCollectionName = leds.requiredString('leds_collection_name');
      const lc = leds.object('leds_config');
      if (lc) decodeConfigSource(lc);
      leds.finish();
    }
    const lbEndpoints: LbEndpoint[] = [];
    for (const e of l.objects('lb_endpoints')) {
      const ep = decodeLbEndpoint(e, allowHostnames);
      if (ep) lbEndpoints.push(ep);
    }
    // Accepted without effect (safe): locality metadata is opaque to the data path.
    // proximity: reported by finish().
    l.accept('metadata');
    l.finish();
    endpoints.push({
      locality, lbEndpoints, priority,
      ...(lw !== undefined ? { loadBalancingWeight: lw } : {}),
      ...(ledsCollectionName ? { ledsCollectionName } : {}),
    });
  }
  // Envoy requires priorities to be contiguous from 0.
  const priorities = [...new Set(endpoints.map((e) => e.priority))].sort((a, b) => a - b);
  priorities.forEach((p, i) => {
    if (p !== i) r.diag.error(r.child('endpoints'), `priorities must be contiguous from 0; priority ${i} is missing`);
  });
  let overprovisioningFactor = 140;
  const policy = r.object('policy');
  if (policy) {
    overprovisioningFactor = policy.int('overprovisioning_factor', 140, 1);
    // drop_overloads, endpoint_stale_after, weighted_priority_health: reported by finish().
    policy.finish();
  }
  // named_endpoints: reported by finish().
  r.finish();
  return { clusterName, endpoints, overprovisioningFactor };
}

/** envoy.config.endpoint.v3.LbEndpoint — also the resource type of LEDS. */
export function decodeLbEndpoint(r: ObjectReader, allowHostnames: boolean): LbEndpoint | undefined {
  const e = r.object('endpoint');
  if (!e) {
    r.diag.error(r.child('endpoint'), 'is required');
    r.accept('endpoint_name');
    r.finish();
    return undefined;
  }
  const a = e.object('address');
  if (!a) e.diag.error(e.child('address'), 'is required');
  const address = a ? decodeAddress(a, allowHostnames) : undefined;
  const hostname = e.string('hostname', '');
  // health_check_config, additional_addresses: reported by finish().
  e.finish();
  const healthStatus = r.enumOf('health_status', HEALTH, 'UNKNOWN');
  const loadBalancingWeight = r.int('load_balancing_weight', 1, 1);
  const md = r.get('metadata');
  r.finish();
  if (!address) return undefined;
  if (address.port === 0 && !address.pipe && !address.internal) {
    r.diag.error(`${a?.path}.socket_address.port_value`, 'is required and must be greater than 0');
    return undefined;
  }
  return { address, hostname, healthStatus, loadBalancingWeight, metadata: (md ?? {}) as Record<string, unknown> };
}

/**
 * upstream_bind_config (envoy.config.core.v3.BindConfig): the local address upstream
 * connections are made from. Istio's inbound clusters bind to 127.0.0.6 so that its
 * iptables rules (`-o lo -s 127.0.0.6 -j RETURN`) do not intercept them again.
 */
function decodeUpstreamBindConfig(r: ObjectReader): { sourceAddress: string; sourcePort?: number } | undefined {
  const sa = r.object('source_address');
  let out: { sourceAddress: string; sourcePort?: number } | undefined;
  if (!sa) r.diag.error(r.child('source_address'), 'is required');
  else {
    const address = sa.requiredString('address');
    const port = sa.int('port_value', 0, 0, 65535);
    sa.accept('protocol');
    sa.finish();
    if (address !== undefined && isIP(address) === 0) sa.diag.error(sa.child('address'), `expected an IP address, got "${address}"`);
    else if (address !== undefined) out = { sourceAddress: address, ...(port !== 0 ? { sourcePort: port } : {}) };
  }
  r.finish();
  return out;
}
