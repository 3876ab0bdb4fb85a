import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { ForwardAction, HeaderValueOption, HttpConnectionManager } from '../../../config/src/index.js';
import type { HttpFilterChain, LocalReply, RequestHeadersView, ResponseHeadersView } from '../../../filters/src/index.js';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import type { RouteTable, CompiledRoute } from '../routing/route-table.js';
import { rewritePath } from '../routing/route-table.js';
import type { Snapshot } from '../snapshot.js';
import type { Counter, Gauge, StatsStore, TimeHistogram } from '../stats/stats.js';
import { applyHeaderOptions, firstValue, newHeaderMap, stripHopByHop, stripPseudoHeaders, type HeaderMap } from './headers.js';
import { Flags, LocalReplies, type LocalReplySpec } from './response-flags.js';
import { checkHttp1Request } from './codec-guard.js';
import { CONNECTION_EXPIRED } from './listener.js';
import type { OverloadManager } from '../overload/overload-manager.js';
import { UpstreamRequest, type Downstream } from './router.js';
import { Stream } from './stream.js';
import { connectionInfo } from '../net/connection-info.js';
import { applyXfcc } from './xfcc.js';
import { LocalReplyRewriter } from './local-reply.js';
import { classifyRequest, InternalAddresses } from './internal-request.js';
import { connectTermination, responseHead, Tunnel, upgradeAllowed, type TunnelOwner } from './upgrade.js';
import type { TLSSocket } from 'node:tls';
import type { ClientCertDetails, ForwardClientCertDetails } from '../../../config/src/index.js';
import { pathOptionsActive } from './path-normalize.js';
import { authorityProblem } from './steps/authority-check.js';
import { normalizeTarget, type TargetOptions, type TargetOutcome } from './steps/request-target.js';
import { isThenable } from './steps/thenable.js';
import { newRequestId } from './steps/request-id.js';
import { applyRequestMutations, applyResponseMutations } from './steps/route-mutations.js';
import { chooseCluster } from './steps/cluster-choice.js';
import { requestHash } from './steps/request-hash.js';
import { redirectLocation } from './steps/redirect.js';
import { streamDurationTimeout } from './steps/stream-duration.js';
import { grpcRouteTimeout } from './steps/grpc-route-timeout.js';
import { appendVia, applyForwardedHeaders, applyResponseEdgeHeaders } from './steps/edge-headers.js';
import { RawRequest } from '../http1/messages.js';
import { rawDispatcherFor } from '../http1/upstream.js';
import { upstreamDispatcherOf } from '../http2/messages.js';
import { bufferForRetry, fitsRetryBuffer, readThroughFilters, requestHasBody, streamedBody } from './request-body.js';

export { parseGrpcTimeout } from './steps/stream-duration.js';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

export interface HcmStats {
  readonly downstream_rq_total: Counter;
  readonly downstream_rq_http1_total: Counter;
  readonly downstream_rq_http2_total: Counter;
  readonly downstream_rq_active: Gauge;
  readonly downstream_rq_1xx: Counter;
  readonly downstream_rq_2xx: Counter;
  readonly downstream_rq_3xx: Counter;
  readonly downstream_rq_4xx: Counter;
  readonly downstream_rq_5xx: Counter;
  readonly downstream_rq_completed: Counter;
  readonly downstream_rq_rx_reset: Counter;
  readonly downstream_rq_tx_reset: Counter;
  readonly no_route: Counter;
  readonly no_cluster: Counter;
  readonly rq_direct_response: Counter;
  readonly rq_redirect: Counter;
  readonly downstream_cx_upgrades_total: Counter;
  readonly downstream_cx_upgrades_active: Gauge;
  readonly downstream_rq_ws_on_non_ws_route: Counter;
  readonly downstream_rq_max_duration_reached: Counter;
  readonly downstream_rq_failed_path_normalization: Counter;
  readonly downstream_rq_redirected_with_normalized_path: Counter;
  readonly downstream_rq_time: TimeHistogram;
}

export function makeHcmStats(store: StatsStore, statPrefix: string): HcmStats {
  const s = store.httpScope(statPrefix);
  const c = (n: string) => s.counter(n);
  return {
    downstream_rq_total: c('downstream_rq_total'), downstream_rq_http1_total: c('downstream_rq_http1_total'),
    downstream_rq_http2_total: c('downstream_rq_http2_total'), downstream_rq_active: s.gauge('downstream_rq_active'),
    downstream_rq_1xx: c('downstream_rq_1xx'), downstream_rq_2xx: c('downstream_rq_2xx'), downstream_rq_3xx: c('downstream_rq_3xx'),
    downstream_rq_4xx: c('downstream_rq_4xx'), downstream_rq_5xx: c('downstream_rq_5xx'),
    downstream_rq_completed: c('downstream_rq_completed'), downstream_rq_rx_reset: c('downstream_rq_rx_reset'),
    downstream_rq_tx_reset: c('downstream_rq_tx_reset'), no_route: c('no_route'), no_cluster: c('no_cluster'),
    rq_direct_response: c('rq_direct_response'), rq_redirect: c('rq_redirect'), downstream_rq_time: s.histogram('downstream_rq_time'),
    downstream_rq_failed_path_normalization: c('downstream_rq_failed_path_normalization'),
    downstream_cx_upgrades_total: c('downstream_cx_upgrades_total'), downstream_cx_upgrades_active: s.gauge('downstream_cx_upgrades_active'),
    downstream_rq_ws_on_non_ws_route: c('downstream_rq_ws_on_non_ws_route'),
    downstream_rq_max_duration_reached: c('downstream_rq_max_duration_reached'),
    downstream_rq_redirected_with_normalized_path: c('downstream_rq_redirected_with_normalized_path'),
  };
}

/** What the connection manager needs from the rest of the proxy. */
export interface HcmEnvironment {
  /** This proxy's overload manager (shedding, keep-alive). */
  readonly overload: OverloadManager;
  /** Randomness for weighted cluster picks. */
  readonly random: () => number;
  /** The snapshot new requests start with. */
  snapshot(): Snapshot;
  draining(): boolean;
  /** SPIFFE ID of the TLS peer of a socket, when mTLS verified one. */
  peerIdentity(socket: unknown): string | undefined;
  /** Called once per finished request (access log, tracing). Absent = nothing built. */
  readonly onRequestDone?: (stream: Stream, req: RequestHeadersView) => void;
  /** Called once per request after header normalisation, before routing; may mutate req.headers (traceparent). */
  readonly onRequestStart?: (stream: Stream, req: RequestHeadersView) => void;
}

const OVERLOADED_REPLY: LocalReplySpec = { status: 503, body: 'envoy overloaded', details: 'overload' };
const OVERLOADED_HEADERS: Record<string, string> = { 'x-envoy-overloaded': 'true' };
const TOO_MANY_HEADERS: LocalReplySpec = { status: 431, body: 'Request Header Fields Too Large', details: 'http1.too_many_headers' };
const STREAM_IDLE_TIMEOUT: LocalReplySpec = { status: 408, body: 'stream timeout', details: 'stream_idle_timeout' };
const NO_CERT_DETAILS: ClientCertDetails = { subject: false, cert: false, chain: false, dns: false, uri: false };
const MAX_DURATION: LocalReplySpec = { status: 408, body: 'downstream duration timeout', details: 'max_duration_timeout' };
const UPGRADE_FAILED: LocalReplySpec = { status: 403, body: '', details: 'upgrade_failed' };

/** The max_stream_duration timer's callback: a method and the timer's argument, not a closure per request. */
function maxDurationReached(ex: Exchange): void {
  ex.onMaxDuration();
}

/** x-envoy-upstream-service-time values: the string of each small millisecond count is made once. */
const MS_STRINGS: string[] = [];
function msString(ms: number): string {
  return ms >= 0 && ms < 1024 ? (MS_STRINGS[ms] ??= String(ms)) : String(ms);
}

/** The Stream's protocol for an HTTP/1.x request: the usual two without a string per request. */
function httpVersionName(version: string): string {
  return version === '1.1' ? 'HTTP/1.1' : version === '1.0' ? 'HTTP/1.0' : `HTTP/${version}`;
}

/**
 * The HTTP connection manager of one filter chain: per request it normalises headers
 * the way Envoy does, matches a route on the snapshot the request starts with, runs the
 * filter chain, then answers locally or hands the request to the router. The object is
 * immutable; a listener update swaps it for new requests only.
 */
export class ConnectionManager {
  /** Weighted cluster picks (the proxy's random source). */
  readonly random: () => number;
  readonly stats: HcmStats;
  private readonly serverName: string;
  /** Path and host normalisation (steps/request-target.ts): path options, strip_*_host_port. */
  private readonly targetOptions: TargetOptions;
  /** The `via` value, or undefined. */
  readonly via: string | undefined;
  readonly xfccMode: ForwardClientCertDetails;
  readonly xfccDetails: ClientCertDetails;
  /** local_reply_config compiled; undefined when not configured (local replies then cost nothing extra). */
  readonly localReplyRewriter: LocalReplyRewriter | undefined;
  /** internal_address_config (Envoy's defaults when empty), for x-envoy-internal. */
  readonly internalAddresses: InternalAddresses;

  constructor(
    readonly config: HttpConnectionManager,
    readonly chain: HttpFilterChain,
    /** Inline route_config compiled; undefined for RDS. */
    private readonly inlineRoutes: RouteTable | undefined,
    private readonly env: HcmEnvironment,
    stats: HcmStats,
  ) {
    this.stats = stats;
    this.random = env.random;
    this.serverName = config.serverName;
    this.targetOptions = { pathOps: pathOptionsActive(config), paths: config, stripPort: config.stripPortMode ?? 'NONE' };
    this.via = config.via !== undefined && config.via !== '' ? config.via : undefined;
    this.xfccMode = config.forwardClientCertDetails ?? 'SANITIZE';
    this.xfccDetails = config.setCurrentClientCertDetails ?? NO_CERT_DETAILS;
    this.localReplyRewriter = config.localReplyConfig ? LocalReplyRewriter.compile(config.localReplyConfig) : undefined;
    this.internalAddresses = new InternalAddresses(config.internalAddressCidrs ?? []);
  }

  /**
   * http.Server 'upgrade' and 'connect' events: the socket is node's no more. A response
   * object is attached to it, so that local replies (404, 403, filters) are written as
   * usual; a tunnel takes the socket over once the upstream answers.
   */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as import('node:net').Socket);
    // Node's server no longer manages this socket: close it after a local reply.
    res.once('finish', () => (socket as import('node:net').Socket).destroySoon());
    socket.on('error', () => undefined);
    this.handle(req, res, head);
  };

  /**
   * The request handler for node:http and node:http2 (compat API). `upgradeHead` is set
   * (possibly empty) for HTTP/1.1 upgrade and CONNECT requests from handleUpgrade.
   */
  readonly handle = (req: Req, res: Res, upgradeHead?: Buffer): void => {
    const isH2 = (req as Http2ServerRequest).stream !== undefined;
    const socket = req.socket;
    const scheme: 'http' | 'https' = (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    const s = this.stats;
    s.downstream_rq_total.inc();
    (isH2 ? s.downstream_rq_http2_total : s.downstream_rq_http1_total).inc();
    s.downstream_rq_active.inc();

    const malformed = isH2 ? undefined : checkHttp1Request(req as IncomingMessage);
    if (!isH2 && req.rawHeaders.length > 2 * this.config.limits.maxHeadersCount) {
      const ex = new Exchange(this, req, res, { method: req.method ?? 'GET', path: req.url ?? '/', authority: '', scheme, headers: req.headers as HeaderMap }, false,
        '', performance.now(), socket.remoteAddress ?? '', socket.localPort ?? 0, undefined, req.method ?? 'GET', `HTTP/${req.httpVersion}`);
      ex.protocolError(TOO_MANY_HEADERS);
      return;
    }
    const headers = req.headers as HeaderMap;
    const authority = isH2 ? firstValue(headers[':authority']) ?? firstValue(headers.host) : firstValue(headers.host);
    const cfg = this.config;
    let requestId = firstValue(headers['x-request-id']);
    if (cfg.generateRequestId && (requestId === undefined || (cfg.useRemoteAddress && !cfg.preserveExternalRequestId))) {
      requestId = newRequestId();
      headers['x-request-id'] = requestId;
    }
    const view: RequestHeadersView = { method: req.method ?? 'GET', path: req.url ?? '/', authority: authority ?? '', scheme, headers };
    const ex = new Exchange(
      this, req, res, view, isH2,
      requestId ?? '', performance.now(), socket.remoteAddress ?? '', socket.localPort ?? 0,
      this.env.peerIdentity(socket), req.method ?? 'GET', isH2 ? 'HTTP/2' : httpVersionName(req.httpVersion),
    );
    ex.connection = connectionInfo(socket);
    if (upgradeHead !== undefined || view.method === 'CONNECT') {
      if (!this.markUpgrade(ex, view, headers, upgradeHead, isH2)) {
        // node handed the socket over as an upgrade: a body can no longer be read as one.
        ex.protocolError({ status: 400, body: 'Bad Request', details: 'http1.h2c_upgrade_with_body' });
        return;
      }
    }
    if (malformed !== undefined) {
      ex.protocolError({ status: 400, body: 'Bad Request', details: malformed });
      return;
    }
    const badAuthority = authorityProblem(authority, headers, isH2);
    if (badAuthority !== undefined) {
      ex.protocolError(badAuthority);
      return;
    }
    // Before routing and before any filter, so RBAC, the route and the upstream see one path.
    const target = normalizeTarget(view, this.targetOptions, socket.localPort);
    if (target !== undefined) {
      this.refuseTarget(target, ex);
      return;
    }
    if (!isH2 && (this.env.draining() || this.env.overload.disableKeepalive || (socket as unknown as Record<symbol, boolean>)[CONNECTION_EXPIRED] === true)) (res as ServerResponse).shouldKeepAlive = false;
    if (this.env.overload.shedRequests) {
      this.env.overload.stats.requests_shed++;
      ex.localReply(OVERLOADED_REPLY, Flags.Overload, OVERLOADED_HEADERS);
      return;
    }
    ex.begin();
  };

  /** An upgrade or CONNECT: what the tunnel will need, read before hop-by-hop headers go. */
  private markUpgrade(ex: Exchange, view: RequestHeadersView, headers: HeaderMap, head: Buffer | undefined, isH2: boolean): boolean {
    if (view.method === 'CONNECT') {
      const protocol = isH2 ? firstValue(headers[':protocol']) : undefined;
      if (protocol !== undefined) {
        // RFC 8441 extended CONNECT: Envoy turns it into the HTTP/1.1 upgrade it stands for (GET).
        ex.upgrade = { type: protocol.toLowerCase(), value: protocol, head: Buffer.alloc(0) };
        view.method = 'GET';
        return true;
      }
      ex.upgrade = { type: 'connect', value: 'CONNECT', head: head ?? Buffer.alloc(0) };
      view.path = '';
      return true;
    }
    const value = firstValue(headers.upgrade) ?? '';
    // Envoy's codec ignores an h2c upgrade: the request is served as a plain HTTP/1.1 one.
    if (value.toLowerCase() === 'h2c' || value === '') {
      ex.upgrade = undefined;
      const cl = headers['content-length'];
      return (cl === undefined || cl === '0') && headers['transfer-encoding'] === undefined;
    }
    ex.upgrade = { type: value.toLowerCase(), value, head: head ?? Buffer.alloc(0) };
    return true;
  }

  /** A request target normalizeTarget refused: its reply, counted as Envoy counts it. */
  private refuseTarget(target: TargetOutcome, ex: Exchange): void {
    if (target.kind === 'rejected') this.stats.downstream_rq_failed_path_normalization.inc();
    if (target.kind === 'redirect') {
      this.stats.downstream_rq_redirected_with_normalized_path.inc();
      ex.localReplyNoFlag(target.reply, { location: target.location });
      return;
    }
    ex.localReplyNoFlag(target.reply);
  }

  routeTable(snapshot: Snapshot): RouteTable | undefined {
    if (this.inlineRoutes) return this.inlineRoutes;
    const src = this.config.routeSource;
    return src.kind === 'rds' ? snapshot.routes.get(src.routeConfigName) : undefined;
  }

  get environment(): HcmEnvironment {
    return this.env;
  }

  get server(): string {
    return this.serverName;
  }
}

/** End of the upstream response, held while an async response filter runs. */
interface HeldEnd {
  readonly trailers: HeaderMap | undefined;
}

/**
 * One request/response exchange: the request's Stream (what filters, the access log and
 * tracing read) and the router's downstream side in one object, so a request allocates
 * one object here instead of two.
 */
class Exchange extends Stream implements Downstream {
  private upstream: UpstreamRequest | undefined;
  /** Set while an async encodeHeaders is pending: upstream body chunks and end wait here. */
  private held: (Buffer | HeldEnd)[] | undefined;
  private resumeAfterHeld: (() => void) | undefined;
  private done = false;
  private route: CompiledRoute | undefined;
  private cluster: ClusterRuntime | undefined;
  /** Set for upgrade and CONNECT requests (undefined for every other request). */
  upgrade: { readonly type: string; readonly value: string; readonly head: Buffer } | undefined = undefined;
  private tunnel: Tunnel | undefined;
  /** max_stream_duration (HCM, or the route's / grpc-timeout once routed). */
  private durationTimer: NodeJS.Timeout | undefined = undefined;
  /** The path sent upstream (the route's rewrite applied), kept for startUpstream. */
  private upstreamPath = '';
  /** The route's hash policy applied to the request (undefined: no hash policy or nothing to hash). */
  private upstreamHash: number | undefined = undefined;

  constructor(
    private readonly hcm: ConnectionManager,
    private readonly req: Req,
    private readonly res: Res,
    private readonly view: RequestHeadersView,
    private readonly isH2: boolean,
    requestId: string,
    startTime: number,
    downstreamAddress: string,
    downstreamLocalPort: number,
    peerIdentity: string | undefined,
    method: string,
    protocol: string,
  ) {
    super(requestId, startTime, downstreamAddress, downstreamLocalPort, peerIdentity, method, protocol);
  }

  begin(): void {
    const hcm = this.hcm;
    const cfg = hcm.config;
    const headers = this.view.headers;
    stripHopByHop(headers, true);
    if (this.isH2) {
      stripPseudoHeaders(headers);
      headers.host = this.view.authority;
    }
    // Internal or external (x-envoy-internal, x-envoy-* control headers), from XFF before this hop's append.
    classifyRequest(headers, firstValue(headers['x-forwarded-for']), this.downstreamAddress, cfg.useRemoteAddress, cfg.xffNumTrustedHops ?? 0, hcm.internalAddresses);
    applyForwardedHeaders(headers, cfg.useRemoteAddress, cfg.skipXffAppend === true, this.downstreamAddress, this.view.scheme);
    if (hcm.via !== undefined) appendVia(headers, hcm.via);
    if (hcm.xfccMode === 'SANITIZE') {
      if (headers['x-forwarded-client-cert'] !== undefined) headers['x-forwarded-client-cert'] = undefined;
    } else if (hcm.xfccMode !== 'ALWAYS_FORWARD_ONLY') {
      // One object per connection: the HTTP/2 session, or the HTTP/1.1 socket.
      const session = this.isH2 ? (this.req as Http2ServerRequest).stream.session : undefined;
      const tls = (session ? session.socket : this.req.socket) as TLSSocket;
      applyXfcc(headers, hcm.xfccMode, hcm.xfccDetails, session ?? this.req.socket, tls);
    }

    hcm.environment.onRequestStart?.(this, this.view);
    this.res.once('close', this.onDownstreamClose);
    const idle = hcm.config.limits.streamIdleTimeout;
    if (idle > 0) {
      // Every response type arms it: node's (compat: the stream's timer), ours (raw HTTP/1.1, core-API HTTP/2: the chain's sweep).
      (this.res as ServerResponse).setTimeout(idle, this.onStreamIdle);
    }
    const maxDuration = hcm.config.limits.maxStreamDuration;
    if (maxDuration !== undefined && maxDuration > 0) this.durationTimer = setTimeout(maxDurationReached, maxDuration, this);
    const snapshot = hcm.environment.snapshot();
    const table = hcm.routeTable(snapshot);
    const route = table?.match(this.view, this.hcm.random);
    if (!route) {
      hcm.stats.no_route.inc();
      this.localReply(LocalReplies.noRoute, Flags.NoRoute);
      return;
    }
    if (this.upgrade !== undefined && !this.upgradeAccepted(route)) return;
    this.route = route;
    this.routeName = route.name;
    this.virtualHostName = route.virtualHost.config.name;
    this.perFilterConfig = route.decodedPerFilterConfig;
    const action = route.config.action;
    let clusterName: string | undefined;
    if (action.kind === 'route') clusterName = chooseCluster(action.cluster, this.view.headers, hcm.random);
    this.clusterName = clusterName;
    if (action.kind === 'route' && (action.maxStreamDuration !== undefined || action.grpcTimeoutHeaderMax !== undefined)) this.refreshDuration(action);

    const chain = hcm.chain;
    if (chain.hasRequestPhase) {
      const verdict = chain.decodeHeaders(this.view, this);
      if (isThenable(verdict)) {
        (verdict as Promise<LocalReply | undefined>).then(
          (v) => this.afterFilters(v, snapshot, route),
          () => this.afterFilters({ status: 500, body: 'filter failure', details: 'filter_failure' }, snapshot, route),
        );
        return;
      }
      this.afterFilters(verdict as LocalReply | undefined, snapshot, route);
      return;
    }
    this.afterFilters(undefined, snapshot, route);
  }

  private afterFilters(verdict: LocalReply | undefined, snapshot: Snapshot, route: CompiledRoute): void {
    if (this.done) return;
    if (verdict) {
      this.filterReply(verdict);
      return;
    }
    const action = route.config.action;
    if (action.kind === 'direct_response') {
      this.hcm.stats.rq_direct_response.inc();
      this.sendLocal(action.status, action.body ?? '', 'direct_response', undefined, route);
      return;
    }
    if (action.kind === 'redirect') {
      this.hcm.stats.rq_redirect.inc();
      this.sendLocal(action.responseCode, '', 'redirect', { location: redirectLocation(action, this.view, route.config.match.path) }, route);
      return;
    }
    const clusterName = this.clusterName;
    const cluster = clusterName === undefined ? undefined : snapshot.clusters.get(clusterName);
    if (!cluster) {
      this.hcm.stats.no_cluster.inc();
      this.localReply(LocalReplies.noCluster, Flags.NoClusterFound);
      return;
    }
    this.cluster = cluster;
    const headers = this.view.headers;
    applyRequestMutations(headers, route.mutations);
    if (action.hostRewriteLiteral !== undefined) headers.host = action.hostRewriteLiteral;
    const path = rewritePath(route, action, this.view.path);
    // Envoy's finalizePathHeader: a route that rewrites the path tells the upstream what it was.
    if (action.prefixRewrite !== undefined || route.regexRewrite !== undefined) headers['x-envoy-original-path'] = this.view.path;
    if (this.upgrade !== undefined) {
      this.startTunnel(cluster, action, path);
      return;
    }
    const retry = action.retryPolicy ?? route.virtualHost.config.retryPolicy;
    this.upstreamPath = path;
    // Before the body is read (a body filter may change headers), as Envoy hashes at route time.
    if (action.hashPolicy.length > 0) this.upstreamHash = requestHash(action.hashPolicy, headers, this.view.path, this.downstreamAddress);
    if (!requestHasBody(this.req, this.isH2)) this.startUpstream(null);
    else if (this.hcm.chain.wantsRequestBody) readThroughFilters(this.req, this.hcm.chain, this, headers, (r) => this.filterReply(r), (b) => this.startUpstream(b));
    else if (retry && retry.numRetries > 0 && fitsRetryBuffer(headers)) bufferForRetry(this.req, this, headers, (b) => this.startUpstream(b));
    else this.startUpstream(streamedBody(this.req, this));
  }

  /** The router's request, once the body is known (null: none; a Buffer: replayable for retries). A method, not a closure per request. */
  private startUpstream(body: Buffer | NodeJS.ReadableStream | null): void {
    if (this.done) return;
    const route = this.route!;
    const action = route.config.action as ForwardAction;
    const vh = route.virtualHost.config;
    const retry = action.retryPolicy ?? vh.retryPolicy;
    const hedge = (action.hedgePolicy ?? vh.hedgePolicy)?.hedgeOnPerTryTimeout === true;
    // include_request_attempt_count; max_grpc_timeout (a gRPC request's route timeout from its grpc-timeout header).
    const attemptCountHeader = vh.includeRequestAttemptCount === true;
    this.upstream = new UpstreamRequest(this.cluster!, grpcRouteTimeout(action, this.view.headers), {
      method: this.view.method, path: this.upstreamPath, headers: this.view.headers, attemptCountHeader, body, hash: this.upstreamHash, random: this.hcm.random,
      connection: connectionInfo(this.req.socket), dispatcher: this.req instanceof RawRequest ? rawDispatcherFor : upstreamDispatcherOf(this.req),
    }, this, retry, hedge);
    this.upstream.start();
  }

  /**
   * The route's max_stream_duration, as Envoy's refreshDurationTimeout: grpc-timeout
   * (capped by grpc_timeout_header_max, when that is set and the header present), else
   * the route's max_stream_duration (0 disables), else the HCM's; minus the time used.
   */
  private refreshDuration(action: ForwardAction): void {
    const timeout = streamDurationTimeout(action, this.hcm.config.limits.maxStreamDuration, firstValue(this.view.headers['grpc-timeout']));
    if (this.durationTimer !== undefined) clearTimeout(this.durationTimer);
    this.durationTimer = undefined;
    if (timeout === undefined) return;
    const left = Math.max(0, timeout - (performance.now() - this.startTime));
    this.durationTimer = setTimeout(maxDurationReached, left, this);
  }

  /** Envoy's onStreamMaxDurationReached: 408 before the response started, a reset after (DT). */
  onMaxDuration(): void {
    this.durationTimer = undefined;
    if (this.done) return;
    this.hcm.stats.downstream_rq_max_duration_reached.inc();
    this.addFlag(Flags.DurationTimeout);
    if (this.tunnel !== undefined) {
      this.tunnel.abort(Flags.DurationTimeout);
      return;
    }
    this.upstream?.cancel(Flags.DurationTimeout);
    if (this.res.headersSent) {
      this.onResetAfterHeaders(Flags.DurationTimeout);
      return;
    }
    if (!this.isH2) (this.res as ServerResponse).shouldKeepAlive = false;
    this.sendLocal(MAX_DURATION.status, MAX_DURATION.body, MAX_DURATION.details);
  }

  /** Envoy's upgrade rules: not allowed -> 403 (before the filters run); CONNECT must be terminated here. */
  private upgradeAccepted(route: CompiledRoute): boolean {
    const up = this.upgrade!;
    const action = route.config.action;
    const routeUpgrades = action.kind === 'route' ? action.upgradeConfigs : undefined;
    if (!upgradeAllowed(this.hcm.config.upgradeConfigs ?? [], routeUpgrades, up.type)) {
      this.hcm.stats.downstream_rq_ws_on_non_ws_route.inc();
      this.sendLocal(UPGRADE_FAILED.status, UPGRADE_FAILED.body, UPGRADE_FAILED.details);
      return false;
    }
    return true;
  }

  /** Upgrade / CONNECT: a raw connection to a host of the cluster replaces the undici request. */
  private startTunnel(cluster: ClusterRuntime, action: ForwardAction, path: string): void {
    const up = this.upgrade!;
    const s = this.hcm.stats;
    // The tunnel reports the end (with byte counts) itself.
    this.res.off('close', this.onDownstreamClose);
    s.downstream_cx_upgrades_total.inc();
    s.downstream_cx_upgrades_active.inc();
    const down: Duplex = this.isH2 ? (this.req as Http2ServerRequest).stream : this.req.socket as unknown as Duplex;
    // The tunnel manages its own idle timer from here on.
    if (this.isH2) (this.res as Http2ServerResponse).setTimeout(0);
    else (this.req.socket as import('node:net').Socket).setTimeout(0);
    const idle = action.idleTimeout ?? this.hcm.config.limits.streamIdleTimeout;
    const hash = action.hashPolicy.length > 0 ? requestHash(action.hashPolicy, this.view.headers, this.view.path, this.downstreamAddress) : undefined;
    this.tunnel = new Tunnel(cluster, {
      // CONNECT is terminated here with connect_config, else passed on to the upstream (Envoy's default).
      mode: up.type !== 'connect' ? 'upgrade' : connectTermination(action.upgradeConfigs) ? 'connect' : 'connect-proxy',
      method: this.view.method, path: up.type === 'connect' ? this.view.authority : path, headers: this.view.headers, upgrade: up.value, head: up.head, idleTimeout: idle,
      pick: { hash: hash ?? Number.NaN, exclude: undefined, connection: connectionInfo(this.req.socket), headers: this.view.headers },
      // set_filter_state's values for this stream (proxy/src/tunnel/), shared with an internal listener.
      filterState: this.metadata.get('pilotfish.filter_state') as ReadonlyMap<string, unknown> | undefined,
    }, down, this.tunnelOwner());
    this.tunnel.start();
  }

  /** Built only for tunnels: a field initializer would allocate these closures for every request. */
  private tunnelOwner(): TunnelOwner {
    return {
      tunnelLocalReply: (spec, flag) => {
        this.hcm.stats.downstream_cx_upgrades_active.dec();
        this.localReply(spec, flag);
      },
      tunnelResponseHead: (status, headers) => {
        this.setServerHeader(headers);
        applyResponseMutations(headers, this.route!.mutations);
        this.responseCode = status;
        this.responseHeaders = headers;
        if (this.isH2) {
          // HTTP/2 has no 101 and no connection-specific headers: an accepted upgrade is a 200.
          headers.connection = undefined;
          headers.upgrade = undefined;
          for (const k in headers) if (headers[k] === undefined) delete headers[k];
          (this.res as Http2ServerResponse).writeHead(status === 101 ? 200 : status, headers as Record<string, string>);
          return;
        }
        const socket = this.req.socket as import('node:net').Socket;
        (this.res as ServerResponse).detachSocket(socket);
        socket.write(responseHead(status, headers));
      },
      setUpstreamHost: (host) => this.setUpstreamHost(host),
      tunnelDone: (fromDown, toDown, flag) => {
        this.hcm.stats.downstream_cx_upgrades_active.dec();
        if (flag !== undefined) this.addFlag(flag);
        this.bytesReceived += fromDown;
        this.bytesSent += toDown;
        this.complete();
      },
    };
  }

  // ---- downstream side of the router ---------------------------------------

  setUpstreamHost(host: Host): void {
    this.upstreamHost = host.key;
    this.attemptCount++;
  }

  onUpstreamHeaders(status: number, headers: HeaderMap, _host: Host, serviceTimeMs: number): void {
    if (this.done) return;
    // The upstream TLS identities (Istio's client-side principals), as the host's connector saw them.
    this.upstreamPeerPrincipal = _host.tlsPeerPrincipal;
    this.upstreamLocalPrincipal = _host.tlsLocalPrincipal;
    const h = headers;
    stripHopByHop(h, false);
    // The object is undici's own, fresh per response: deleting is safe, and neither
    // writeHead accepts undefined values (connection-specific headers are illegal in HTTP/2).
    for (const k in h) if (h[k] === undefined) delete h[k];
    h['x-envoy-upstream-service-time'] = msString(serviceTimeMs);
    this.setServerHeader(h);
    applyResponseMutations(h, this.route!.mutations);
    const chain = this.hcm.chain;
    if (chain.hasResponsePhase) {
      const view: ResponseHeadersView = { status, headers: h };
      const v = chain.encodeHeaders(view, this);
      if (isThenable(v)) {
        // Hold the body until the response headers are final: writing it now would send
        // the headers implicitly, before the filter could change them.
        this.held = [];
        (v as Promise<LocalReply | undefined>).then((r) => {
          const held = this.held;
          this.held = undefined;
          if (r) {
            this.upstream?.cancel();
            this.sendReplyDirect(r);
            return;
          }
          this.writeHead(view.status, view.headers);
          this.releaseHeld(held);
        }, () => {
          this.held = undefined;
          this.upstream?.cancel();
          this.sendReplyDirect({ status: 500, body: 'filter failure' });
        });
        return;
      }
      if (v) {
        this.upstream?.cancel();
        this.sendReplyDirect(v as LocalReply);
        return;
      }
      this.writeHead(view.status, view.headers);
      return;
    }
    this.writeHead(status, h);
  }

  private writeHead(status: number, headers: HeaderMap): void {
    this.responseCode = status;
    this.responseHeaders = headers;
    try {
      (this.res as ServerResponse).writeHead(status, headers as Record<string, string | string[]>);
    } catch {
      // A header value node refuses to write (e.g. invalid characters from the upstream).
      this.upstream?.cancel();
      this.addFlag(Flags.UpstreamProtocolError);
      this.sendLocal(LocalReplies.protocolError.status, LocalReplies.protocolError.body, LocalReplies.protocolError.details);
    }
  }

  onUpstreamData(chunk: Buffer): boolean {
    if (this.done) return true;
    if (this.held) {
      // Response headers still with an async filter: keep the chunk and pause the upstream.
      this.held.push(chunk);
      return false;
    }
    this.bytesSent += chunk.length;
    return (this.res as ServerResponse).write(chunk);
  }

  onDrain(resume: () => void): void {
    if (this.held) this.resumeAfterHeld = resume;
    else this.res.once('drain', resume);
  }

  private releaseHeld(held: (Buffer | HeldEnd)[] | undefined): void {
    if (!held || this.done) return;
    for (const item of held) {
      if (Buffer.isBuffer(item)) {
        this.bytesSent += item.length;
        (this.res as ServerResponse).write(item);
      } else {
        this.onUpstreamEnd(item.trailers);
        return;
      }
    }
    const resume = this.resumeAfterHeld;
    this.resumeAfterHeld = undefined;
    resume?.();
  }

  onUpstreamEnd(trailers: HeaderMap | undefined): void {
    if (this.done) return;
    if (trailers) this.responseTrailers = trailers;
    if (this.held) {
      this.held.push({ trailers });
      return;
    }
    if (trailers) {
      try {
        (this.res as ServerResponse).addTrailers(trailers as Record<string, string>);
      } catch { /* trailers the downstream protocol cannot carry are dropped */ }
    }
    this.res.end();
    this.complete();
  }

  onLocalReply(spec: LocalReplySpec, flag: string, extraHeaders?: Record<string, string>): void {
    this.localReply(spec, flag, extraHeaders);
  }

  onResetAfterHeaders(flag: string): void {
    if (this.done) return;
    this.addFlag(flag);
    this.hcm.stats.downstream_rq_tx_reset.inc();
    if (this.isH2) (this.req as Http2ServerRequest).stream.close(2 /* INTERNAL_ERROR */);
    else this.req.socket.destroy();
    this.complete();
  }

  // ---- local replies --------------------------------------------------------

  /** A request that must not be served: 400, and on HTTP/1.1 the connection closes, like Envoy's codec errors. */
  protocolError(spec: LocalReplySpec): void {
    if (!this.isH2) (this.res as ServerResponse).shouldKeepAlive = false;
    this.localReply(spec, Flags.DownstreamProtocolError);
  }

  /** A local reply Envoy sends without a response flag (path normalisation). */
  localReplyNoFlag(spec: LocalReplySpec, extraHeaders?: Record<string, string>): void {
    this.sendLocal(spec.status, spec.body, spec.details, extraHeaders);
  }

  localReply(spec: LocalReplySpec, flag: string, extraHeaders?: Record<string, string>): void {
    this.addFlag(flag);
    this.sendLocal(spec.status, spec.body, spec.details, extraHeaders);
  }

  private filterReply(r: LocalReply): void {
    this.sendLocal(r.status, r.body ?? '', r.details ?? 'filter_local_reply', r.headers);
  }

  /** A local reply also passes through the response phase of the filter chain, like Envoy's. */
  private sendLocal(status: number, body: string, details: string, extra?: Record<string, string>, route?: CompiledRoute): void {
    if (this.done || this.res.headersSent) {
      if (!this.done) this.onResetAfterHeaders(Flags.LocalReset);
      return;
    }
    this.responseCodeDetails = details;
    let contentType = 'text/plain';
    const lr = this.hcm.localReplyRewriter;
    let lrHeaders: readonly HeaderValueOption[] | undefined;
    if (lr !== undefined) {
      this.responseCode = status;
      const o = lr.rewrite({ stream: this, request: this.view, endTime: performance.now() }, status, body);
      status = o.status;
      body = o.body;
      if (o.contentType !== undefined) contentType = o.contentType;
      lrHeaders = o.headersToAdd;
    }
    const headers = newHeaderMap();
    if (body !== '') {
      headers['content-type'] = contentType;
    }
    headers['content-length'] = String(Buffer.byteLength(body));
    if (extra) for (const k of Object.keys(extra)) headers[k.toLowerCase()] = extra[k];
    if (lrHeaders !== undefined && lrHeaders.length > 0) applyHeaderOptions(headers, lrHeaders, []);
    this.setServerHeader(headers);
    if (route) applyResponseMutations(headers, route.mutations);
    const chain = this.hcm.chain;
    if (chain.hasResponsePhase) {
      const view: ResponseHeadersView = { status, headers };
      const v = chain.encodeHeaders(view, this);
      if (isThenable(v)) {
        (v as Promise<LocalReply | undefined>).then((r) => (r ? this.sendReplyDirect(r) : this.finishLocal(view.status, view.headers, body)),
          () => this.sendReplyDirect({ status: 500, body: 'filter failure' }));
        return;
      }
      if (v) {
        this.sendReplyDirect(v as LocalReply);
        return;
      }
      this.finishLocal(view.status, view.headers, body);
      return;
    }
    this.finishLocal(status, headers, body);
  }

  /** A reply produced by an encode-phase filter: written as is, without running filters again. */
  private sendReplyDirect(r: LocalReply): void {
    if (this.done) return;
    if (this.res.headersSent) {
      this.onResetAfterHeaders(Flags.LocalReset);
      return;
    }
    const body = r.body ?? '';
    const headers = newHeaderMap();
    headers['content-length'] = String(Buffer.byteLength(body));
    if (body !== '') headers['content-type'] = 'text/plain';
    if (r.headers) for (const k of Object.keys(r.headers)) headers[k.toLowerCase()] = r.headers[k];
    this.setServerHeader(headers);
    this.finishLocal(r.status, headers, body);
  }

  private finishLocal(status: number, headers: HeaderMap, body: string): void {
    if (this.done) return;
    this.responseCode = status;
    this.responseHeaders = headers;
    // A request body we never read must not be parsed as the next request: close after replying.
    if (!this.isH2 && requestHasBody(this.req, this.isH2) && !(this.req as IncomingMessage).complete) {
      (this.res as ServerResponse).shouldKeepAlive = false;
    }
    try {
      (this.res as ServerResponse).writeHead(status, headers as Record<string, string>);
      if (this.view.method === 'HEAD') this.res.end();
      else this.res.end(body);
    } catch {
      // HTTP/2: only this stream fails (node's compat socket proxy destroyed the stream too).
      if (this.isH2) (this.req as Http2ServerRequest).stream.close(2 /* INTERNAL_ERROR */);
      else this.req.socket.destroy();
    }
    this.complete();
  }

  private setServerHeader(h: HeaderMap): void {
    // Every response passes here (upstream, local, tunnel).
    applyResponseEdgeHeaders(h, this.hcm.via, this.hcm.config.serverHeaderTransformation, this.hcm.server);
  }

  /** Envoy's stream_idle_timeout: 408 before the response started, a reset after. */
  private readonly onStreamIdle = (): void => {
    if (this.done) return;
    this.upstream?.cancel(Flags.StreamIdleTimeout);
    if (this.res.headersSent) {
      this.onResetAfterHeaders(Flags.StreamIdleTimeout);
      return;
    }
    if (!this.isH2) (this.res as ServerResponse).shouldKeepAlive = false;
    this.localReply(STREAM_IDLE_TIMEOUT, Flags.StreamIdleTimeout);
  };

  private readonly onDownstreamClose = (): void => {
    if (this.done) return;
    // The client went away before the response was complete.
    this.hcm.stats.downstream_rq_rx_reset.inc();
    this.upstream?.cancel();
    this.complete();
  };

  private complete(): void {
    if (this.done) return;
    this.done = true;
    if (this.durationTimer !== undefined) clearTimeout(this.durationTimer);
    const s = this.hcm.stats;
    s.downstream_rq_active.dec();
    s.downstream_rq_completed.inc();
    const code = this.responseCode;
    if (code >= 500) s.downstream_rq_5xx.inc();
    else if (code >= 400) s.downstream_rq_4xx.inc();
    else if (code >= 300) s.downstream_rq_3xx.inc();
    else if (code >= 200) s.downstream_rq_2xx.inc();
    else s.downstream_rq_1xx.inc();
    s.downstream_rq_time.record(performance.now() - this.startTime);
    if (this.hcm.chain.hasRequestPhase || this.hcm.chain.hasResponsePhase) this.hcm.chain.streamComplete(this);
    void this.cluster;
    this.hcm.environment.onRequestDone?.(this, this.view);
  }
}
