/**
 * Istio's HTTP filters, registered by type URL:
 *  - `istio.stats` (stats.PluginConfig): the standard request metrics, reported when the
 *    request is complete, with the peer learned by metadata exchange;
 *  - `io.istio.http.peer_metadata.Config` (istiod names it `istio.metadata_exchange`):
 *    discovers the peer from `x-envoy-peer-metadata` / `-id` (or W3C baggage) and
 *    propagates this workload's own;
 *  - `istio.alpn`: validated and accepted (see alpnFactory for why it needs no action).
 */
import type { Diagnostics, HttpFilterConfig } from '../../config/src/index.js';
import { ObjectReader } from '../../config/src/index.js';
import type { FactoryContext, HttpFilter, HttpFilterFactory, RequestHeadersView, ResponseHeadersView, StreamInfo } from '../../filters/src/index.js';
import type { ExprContext } from './expr.js';
import { FS, serviceOfCluster, type IstioHost } from './host.js';
import { HTTP_TAGS, IstioMetrics, peerTags, recordBuild, securityPolicy, type LocalSide, type Reporter } from './metrics.js';
import { decodePeerHeader, encodePeerHeader, PEER_ID_HEADER, PEER_METADATA_HEADER, parseBaggage, toBaggage } from './peer-header.js';
import { decodeStatsPluginConfig, type StatsPluginConfig } from './plugin-config.js';
import { workloadFromStruct, type WorkloadMetadata } from './workload.js';

export const STATS_TYPE = 'stats.PluginConfig';
export const PEER_METADATA_TYPE = 'io.istio.http.peer_metadata.Config';
export const ALPN_TYPE = 'istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig';

/** What the proxy's request object offers beyond StreamInfo's required fields, once the request is over. */
interface RequestFacts {
  readonly responseCode?: number;
  readonly responseFlags?: string;
  readonly bytesReceived?: number;
  readonly bytesSent?: number;
  readonly protocol?: string;
  readonly method?: string;
  readonly responseTrailers?: Record<string, string | string[] | undefined>;
  /** Upstream TLS: the server certificate's URI SAN, when the router recorded it. */
  readonly upstreamPeerPrincipal?: string;
  /** Upstream TLS: our own certificate's URI SAN on that connection. */
  readonly upstreamLocalPrincipal?: string;
}

function hostOf(ctx: FactoryContext): IstioHost | undefined {
  return ctx.host;
}

export function reporterFor(direction: IstioHost['trafficDirection'], config: StatsPluginConfig): Reporter {
  if (config.reporter === 'SERVER_GATEWAY') return 'waypoint';
  return direction === 'INBOUND' ? 'destination' : 'source';
}

export function localSide(host: IstioHost): LocalSide {
  return { workload: workloadFromStruct(host.node.metadata), nodeId: host.node.id, nodeMetadata: host.node.metadata };
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

// ------------------------------------------------------------------ istio.stats

interface StatsState {
  host: string;
  path: string;
  method: string;
  grpc: boolean;
  grpcStatus: string;
  requestHeaders: RequestHeadersView['headers'];
  responseHeaders: ResponseHeadersView['headers'] | undefined;
}

export const statsFactory: HttpFilterFactory = {
  kind: 'istio_stats',
  typeUrl: STATS_TYPE,
  create(cfg: HttpFilterConfig, diag: Diagnostics, path: string, ctx: FactoryContext): HttpFilter | undefined {
    const config = decodeStatsPluginConfig(cfg.config, diag, path);
    if (!config) return undefined;
    const host = hostOf(ctx);
    if (!host) {
      diag.warn(path, 'no proxy to report to (chain built outside a proxy): Istio metrics are not recorded');
      return { name: cfg.name, typeUrl: cfg.typeUrl, failurePolicy: 'FAIL_OPEN', failureStatus: 500, describe: () => ({ kind: 'istio_stats', recording: false }) };
    }
    const reporter = reporterFor(host.trafficDirection, config);
    const local = localSide(host);
    const metrics = new IstioMetrics(host.labeledStats, config, (m) => diag.warn(path, m));
    recordBuild(host.labeledStats, host.node.metadata.ISTIO_VERSION);
    const peerTagCache: PeerTagCache = new WeakMap();
    // Per-request state in the filter's slot (an array read), not in info.metadata's Map.
    const slot = ctx.streamSlot<StatsState>();
    return {
      name: cfg.name,
      typeUrl: cfg.typeUrl,
      failurePolicy: 'FAIL_OPEN',
      failureStatus: 500,
      decodeHeaders(req, info) {
        const ct = first(req.headers['content-type']) ?? '';
        slot.set(info, {
          host: req.authority, path: req.path, method: req.method,
          grpc: ct.startsWith('application/grpc'), grpcStatus: '',
          requestHeaders: req.headers, responseHeaders: undefined,
        });
        return undefined;
      },
      encodeHeaders(res, info) {
        const s = slot.get(info);
        if (s) {
          s.responseHeaders = res.headers;
          s.grpcStatus = first(res.headers['grpc-status']) ?? '';
        }
        return undefined;
      },
      streamComplete(info) {
        const s = slot.get(info);
        const facts = info as StreamInfo & RequestFacts;
        const { peer, request } = httpTags(reporter, local, config, host, s, info, facts, peerTagCache);
        const duration = performance.now() - info.startTime;
        metrics.reportRequestSplit(peer, request, duration, facts.bytesReceived ?? 0, facts.bytesSent ?? 0, metrics.usesExpressions ? exprContext(local, info, facts, s) : undefined);
      },
      describe: () => ({ kind: 'istio_stats', reporter, disable_host_header_fallback: config.disableHostHeaderFallback }),
    };
  },
};

/**
 * The peer tags of one (peer, principals, service) combination, computed once and kept
 * as one array (labeled families look it up by identity). Bounded per peer object; peer
 * objects come from the exchange's bounded cache, so the whole cache is bounded. A peer's
 * requests nearly always repeat its last combination: that one is checked first by its
 * four strings, sparing the joined key (a new string hashed on every request).
 */
type PeerTagCache = WeakMap<object, PeerTags>;
interface PeerTags {
  readonly byKey: Map<string, string[]>;
  lastPeerPrincipal: string;
  lastLocalPrincipal: string;
  lastServiceHost: string;
  lastServiceName: string;
  last: string[] | undefined;
}
const NO_PEER = {};

function httpTags(reporter: Reporter, local: LocalSide, config: StatsPluginConfig, host: IstioHost, s: StatsState | undefined, info: StreamInfo, facts: RequestFacts, cache: PeerTagCache): { peer: string[]; request: string[] } {
  const server = reporter !== 'source';
  const fs = info.connection?.filterState;
  const peer = (info.metadata.get(server ? FS.httpDownstreamPeer : FS.httpUpstreamPeer) ?? fs?.get(server ? FS.downstreamPeer : FS.upstreamPeer)) as WorkloadMetadata | undefined;
  let peerPrincipal = '';
  let localPrincipal = '';
  if (server) {
    peerPrincipal = str(fs?.get(FS.peerPrincipal));
    localPrincipal = str(fs?.get(FS.localPrincipal));
    if (peerPrincipal === '' && localPrincipal === '') {
      peerPrincipal = info.connection?.peerPrincipal ?? info.peerIdentity ?? '';
      localPrincipal = info.connection?.localPrincipal ?? '';
    }
  } else {
    // Envoy reads both from the upstream TLS connection; set when the router records them.
    peerPrincipal = facts.upstreamPeerPrincipal ?? '';
    localPrincipal = facts.upstreamLocalPrincipal ?? '';
  }
  // destination_service: the Host header unless disabled, then the cluster's `istio` metadata.
  let serviceHost = !config.disableHostHeaderFallback && s ? s.host : '';
  let serviceName = serviceHost;
  if (info.routeName === 'block_all') serviceName = 'BlackHoleCluster';
  else if (info.routeName === 'allow_any') serviceName = 'PassthroughCluster';
  else {
    const svc = serviceOfClusterCached(info.clusterName, info.clusterName === undefined ? undefined : host.clusterMetadata?.(info.clusterName));
    if (svc) {
      if (svc.host !== '') serviceHost = svc.host;
      serviceName = svc.name;
    }
  }
  let byPeer = cache.get(peer ?? NO_PEER);
  if (byPeer === undefined) {
    byPeer = { byKey: new Map(), lastPeerPrincipal: '', lastLocalPrincipal: '', lastServiceHost: '', lastServiceName: '', last: undefined };
    cache.set(peer ?? NO_PEER, byPeer);
  }
  let tags = byPeer.last;
  if (tags === undefined || byPeer.lastPeerPrincipal !== peerPrincipal || byPeer.lastLocalPrincipal !== localPrincipal
    || byPeer.lastServiceHost !== serviceHost || byPeer.lastServiceName !== serviceName) {
    const key = `${peerPrincipal}\u0000${localPrincipal}\u0000${serviceHost}\u0000${serviceName}`;
    tags = byPeer.byKey.get(key);
    if (tags === undefined) {
      tags = peerTags(local, { reporter, peer, peerPrincipal, localPrincipal, serviceHost, serviceName });
      if (byPeer.byKey.size < 256) byPeer.byKey.set(key, tags);
    }
    byPeer.last = tags;
    byPeer.lastPeerPrincipal = peerPrincipal;
    byPeer.lastLocalPrincipal = localPrincipal;
    byPeer.lastServiceHost = serviceHost;
    byPeer.lastServiceName = serviceName;
  }
  const grpcStatus = s?.grpc ? s.grpcStatus || grpcStatusFromTrailers(facts) : '';
  const code = facts.responseCode ?? 0;
  const request = [s?.grpc ? 'grpc' : 'http', statusText(code), grpcStatus, facts.responseFlags === undefined || facts.responseFlags === '' ? '-' : facts.responseFlags,
    securityPolicy(reporter, peerPrincipal, localPrincipal)];
  if (tags.length + request.length !== HTTP_TAGS.length) throw new Error('istio.stats: tag count mismatch');
  return { peer: tags, request };
}

/** Status codes as label text, each made on first use (String(code) was a new string per request). */
const STATUS_TEXT: string[] = [];
function statusText(code: number): string {
  if (code < 0 || code >= 600 || (code | 0) !== code) return String(code);
  return (STATUS_TEXT[code] ??= String(code));
}

function grpcStatusFromTrailers(facts: RequestFacts): string {
  return first(facts.responseTrailers?.['grpc-status']) ?? '';
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** serviceOfCluster once per cluster metadata object (a CDS update brings a new object). */
const serviceCache = new WeakMap<object, { host: string; name: string } | undefined>();
function serviceOfClusterCached(cluster: string | undefined, metadata: Readonly<Record<string, unknown>> | undefined): { host: string; name: string } | undefined {
  if (cluster === undefined || metadata === undefined) return serviceOfCluster(cluster, metadata);
  if (serviceCache.has(metadata)) return serviceCache.get(metadata);
  const svc = serviceOfCluster(cluster, metadata);
  serviceCache.set(metadata, svc);
  return svc;
}

function exprContext(local: LocalSide, info: StreamInfo, facts: RequestFacts, s: StatsState | undefined): ExprContext {
  return {
    attribute(path) {
      const [root, a, b] = path;
      switch (root) {
        case 'request':
          if (a === 'host') return s?.host;
          if (a === 'path') return s?.path;
          if (a === 'url_path') return s?.path.split('?')[0];
          if (a === 'method') return s?.method;
          if (a === 'protocol') return facts.protocol;
          if (a === 'id') return info.requestId;
          if (a === 'useragent') return first(s?.requestHeaders['user-agent']);
          if (a === 'headers' && b !== undefined) return first(s?.requestHeaders[b.toLowerCase()]);
          return undefined;
        case 'response':
          if (a === 'code') return facts.responseCode;
          if (a === 'flags') return facts.responseFlags;
          if (a === 'headers' && b !== undefined) return first(s?.responseHeaders?.[b.toLowerCase()]);
          return undefined;
        case 'source':
          if (a === 'address') return info.downstreamAddress;
          if (a === 'principal') return info.peerIdentity;
          return undefined;
        case 'destination':
          if (a === 'port') return info.downstreamLocalPort;
          return undefined;
        case 'connection':
          if (a === 'mtls') return info.peerIdentity !== undefined;
          return undefined;
        case 'xds':
          if (a === 'cluster_name') return info.clusterName;
          if (a === 'route_name') return info.routeName;
          return undefined;
        case 'node':
          if (a === 'id') return local.nodeId;
          if (a === 'metadata' && b !== undefined) return scalar(local.nodeMetadata[b]);
          return undefined;
        case 'upstream_peer':
        case 'downstream_peer': {
          const p = (info.metadata.get(root) ?? info.connection?.filterState?.get(`wasm.${root}`)) as WorkloadMetadata | undefined;
          return p === undefined || a === undefined ? undefined : peerField(p, a);
        }
        default:
          return undefined;
      }
    },
  };
}

function scalar(v: unknown): string | number | boolean | undefined {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : undefined;
}

/** Peer fields by the names Istio's CEL uses on peer metadata. */
function peerField(p: WorkloadMetadata, field: string): string | undefined {
  const m: Record<string, string> = {
    name: p.instanceName, namespace: p.namespace, workload: p.workloadName, workload_name: p.workloadName,
    cluster: p.clusterId, cluster_id: p.clusterId, app: p.appName, version: p.appVersion,
    service: p.canonicalName, revision: p.canonicalRevision,
  };
  return m[field];
}

// ------------------------------------------------------------------ peer metadata

type Discovery = 'istio_headers' | 'baggage' | 'workload_discovery';
type Propagation = { kind: 'istio_headers'; skipExternal: boolean } | { kind: 'baggage' };

export interface PeerMetadataConfig {
  readonly downstreamDiscovery: readonly Discovery[];
  readonly upstreamDiscovery: readonly Discovery[];
  readonly downstreamPropagation: readonly Propagation[];
  readonly upstreamPropagation: readonly Propagation[];
  readonly additionalLabels: readonly string[];
}

export function decodePeerMetadataConfig(config: Readonly<Record<string, unknown>>, diag: Diagnostics, path: string): PeerMetadataConfig | undefined {
  const r = ObjectReader.of(config, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const discovery = (field: string): Discovery[] =>
    r.objects(field).flatMap((m) => {
      const k = m.oneof(['istio_headers', 'baggage', 'workload_discovery'], true, 'a discovery method:');
      if (k === 'workload_discovery') diag.warn(m.child(k), 'workload discovery (WDS from ztunnel) is not available to a sidecar pilotfish; the other methods still apply');
      m.accept('istio_headers', 'baggage', 'workload_discovery');
      m.finish();
      return k === undefined ? [] : [k as Discovery];
    });
  const propagation = (field: string): Propagation[] =>
    r.objects(field).flatMap((m): Propagation[] => {
      const k = m.oneof(['istio_headers', 'baggage'], true, 'a propagation method:');
      let out: Propagation[] = [];
      if (k === 'istio_headers') {
        const ih = m.object('istio_headers');
        const skipExternal = ih?.bool('skip_external_clusters', false) ?? false;
        ih?.finish();
        out = [{ kind: 'istio_headers', skipExternal }];
      } else if (k === 'baggage') {
        m.accept('baggage');
        out = [{ kind: 'baggage' }];
      }
      m.finish();
      return out;
    });
  const cfg: PeerMetadataConfig = {
    downstreamDiscovery: discovery('downstream_discovery'),
    upstreamDiscovery: discovery('upstream_discovery'),
    downstreamPropagation: propagation('downstream_propagation'),
    upstreamPropagation: propagation('upstream_propagation'),
    additionalLabels: r.strings('additional_labels'),
  };
  // Filter state here is per request and visible to every later filter, upstream included.
  r.accept('shared_with_upstream');
  r.finish();
  return diag.errors.length > before ? undefined : cfg;
}

const PEER_CACHE_SIZE = 1024;

interface MxState {
  requestHadId: boolean;
  requestHadMetadata: boolean;
}
const MX_STATE = 'istio.peer_metadata';

export const peerMetadataFactory: HttpFilterFactory = {
  kind: 'istio_peer_metadata',
  typeUrl: PEER_METADATA_TYPE,
  create(cfg, diag, path, ctx) {
    const config = decodePeerMetadataConfig(cfg.config, diag, path);
    if (!config) return undefined;
    const host = hostOf(ctx);
    const node = host?.node ?? { id: '', metadata: {} };
    // Computed once: this workload's metadata never changes while the filter lives.
    const ownHeader = encodePeerHeader(node.metadata);
    const ownBaggage = toBaggage(workloadFromStruct(node.metadata));
    // Peers send the same header on every request: decoded once (Istio caches by peer id;
    // keyed by the value itself here, so a reused id cannot return another peer's data).
    const cache = new Map<string, WorkloadMetadata | undefined>();
    const decodeCached = (value: string): WorkloadMetadata | undefined => {
      if (cache.has(value)) return cache.get(value);
      const w = decodePeerHeader(value);
      if (cache.size >= PEER_CACHE_SIZE) {
        // Evict the oldest quarter (insertion order), as Istio's MX cache does.
        let n = PEER_CACHE_SIZE / 4;
        for (const k of cache.keys()) {
          cache.delete(k);
          if (--n <= 0) break;
        }
      }
      cache.set(value, w);
      return w;
    };
    const discover = (methods: readonly Discovery[], headers: RequestHeadersView['headers'], mx?: MxState): WorkloadMetadata | undefined => {
      let found: WorkloadMetadata | undefined;
      for (const m of methods) {
        if (m === 'istio_headers') {
          const id = first(headers[PEER_ID_HEADER]);
          const value = first(headers[PEER_METADATA_HEADER]);
          if (mx) {
            mx.requestHadId = id !== undefined;
            mx.requestHadMetadata = value !== undefined;
          }
          if (value !== undefined) found = decodeCached(value);
        } else if (m === 'baggage') {
          const b = first(headers.baggage);
          if (b !== undefined) found = parseBaggage(b);
        }
        if (found) break;
      }
      // Every method removes its headers, found or not (the app never sees them).
      if (methods.includes('istio_headers')) {
        delete headers[PEER_ID_HEADER];
        delete headers[PEER_METADATA_HEADER];
      }
      return found;
    };
    const propagate = (methods: readonly Propagation[], headers: RequestHeadersView['headers'], info: StreamInfo, downstream: boolean, mx: MxState | undefined): void => {
      for (const m of methods) {
        if (m.kind === 'baggage') headers.baggage = ownBaggage;
        else {
          if (m.skipExternal && info.clusterName === 'PassthroughCluster') continue;
          // Downstream (response): answer only with what the client sent us (Istio's rule).
          if (!downstream || mx?.requestHadId) headers[PEER_ID_HEADER] = node.id;
          if (!downstream || mx?.requestHadMetadata) headers[PEER_METADATA_HEADER] = ownHeader;
        }
      }
    };
    return {
      name: cfg.name,
      typeUrl: cfg.typeUrl,
      failurePolicy: 'FAIL_OPEN',
      failureStatus: 500,
      decodeHeaders(req, info) {
        const mx: MxState = { requestHadId: false, requestHadMetadata: false };
        info.metadata.set(MX_STATE, mx);
        const peer = discover(config.downstreamDiscovery, req.headers, mx);
        if (peer && !info.metadata.has(FS.httpDownstreamPeer)) info.metadata.set(FS.httpDownstreamPeer, peer);
        propagate(config.upstreamPropagation, req.headers, info, false, mx);
        return undefined;
      },
      encodeHeaders(res, info) {
        const peer = discover(config.upstreamDiscovery, res.headers);
        if (peer && !info.metadata.has(FS.httpUpstreamPeer)) info.metadata.set(FS.httpUpstreamPeer, peer);
        propagate(config.downstreamPropagation, res.headers, info, true, info.metadata.get(MX_STATE) as MxState | undefined);
        return undefined;
      },
      describe: () => ({ kind: 'istio_peer_metadata', ...config }),
    };
  },
};

// ------------------------------------------------------------------ istio.alpn

/**
 * istio.alpn sets the upstream TLS ALPN by the protocol the router uses upstream
 * (`istio-http/1.1`, `istio-h2`, ...), so the peer sidecar's inbound listener can pick
 * its HTTP chain. pilotfish's upstream TLS offers the cluster's configured ALPN
 * (istiod's `istio-peer-exchange`, `istio`), which the same inbound chains also match
 * (`istio` is in their application_protocols), so the override changes no chain choice;
 * the config is validated and the filter does nothing per request.
 */
export const alpnFactory: HttpFilterFactory = {
  kind: 'istio_alpn',
  typeUrl: ALPN_TYPE,
  create(cfg, diag, path) {
    const r = ObjectReader.of(cfg.config, path, diag);
    if (!r) return undefined;
    const overrides = r.objects('alpn_override').map((o) => {
      const proto = o.enumOf('upstream_protocol', ['HTTP10', 'HTTP11', 'HTTP2'] as const, 'HTTP10');
      const alpn = o.strings('alpn_override');
      o.finish();
      return { upstream_protocol: proto, alpn_override: alpn };
    });
    r.finish();
    return { name: cfg.name, typeUrl: cfg.typeUrl, failurePolicy: 'FAIL_OPEN', failureStatus: 500, describe: () => ({ kind: 'istio_alpn', alpn_override: overrides, effect: 'none (see docs/ISTIO.md)' }) };
  },
};
