/**
 * The contract between the proxy's request path and HTTP filters. The proxy builds a
 * chain once per listener configuration (buildHttpFilterChain), keeps it immutable, and
 * every request uses the chain it started with. Filters answer with a verdict: `undefined`
 * (continue) or a LocalReply; they never throw at the proxy (a throw is caught, counted
 * and answered per the filter's failure policy).
 */
import type { Problem } from '../../config/src/index.js';

/** Lower-case header names, Node's IncomingHttpHeaders shape. Filters may mutate it. */
export type HeaderMap = Record<string, string | string[] | undefined>;

/** Request as filters see it. Filters may mutate path, authority and headers. */
export interface RequestHeadersView {
  method: string;
  path: string;
  authority: string;
  scheme: 'http' | 'https';
  headers: HeaderMap;
}

export interface ResponseHeadersView {
  status: number;
  headers: HeaderMap;
}

/** A response produced by the proxy itself instead of the upstream. */
export interface LocalReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Goes to %RESPONSE_CODE_DETAILS%, e.g. "rbac_access_denied_matched_policy[none]". */
  details?: string;
}

/** `undefined` = continue with the next filter. */
export type FilterResult = LocalReply | undefined;

/**
 * Body phase verdict for one chunk:
 *  - `undefined`: pass the chunk on unchanged;
 *  - `{ data }`: forward `data` instead of the chunk; `data: null` holds it back (the
 *    filter is buffering and will release the body later, at the latest at end of stream);
 *  - a LocalReply: stop and answer (e.g. 413 from the buffer filter).
 */
export type DataResult = LocalReply | { readonly data: Uint8Array | null } | undefined;

export interface StreamInfo {
  readonly requestId: string;
  readonly startTime: number;
  readonly downstreamAddress: string;
  readonly downstreamLocalPort: number;
  /** SPIFFE ID from mTLS, if any. */
  readonly peerIdentity: string | undefined;
  readonly routeName: string | undefined;
  readonly virtualHostName: string | undefined;
  readonly clusterName: string | undefined;
  /**
   * The matched route's (else its virtual host's) typed_per_filter_config, keyed by
   * filter name, each value already decoded by decodePerFilterConfig.
   */
  readonly perFilterConfig: Readonly<Record<string, unknown>> | undefined;
  readonly metadata: Map<string, unknown>;
  /**
   * The downstream connection the request came on, as the listener and its network
   * filters left it (RBAC destination_ip, requested_server_name, filter_state principals).
   * Undefined for requests that came on no listener connection.
   */
  readonly connection?: DownstreamConnectionView | undefined;
  /**
   * Per-request filter state, one entry per StreamSlot (filters use their slot, never
   * this array directly). The proxy's request object declares it (undefined until a
   * filter stores something), so its shape stays fixed.
   */
  filterState?: unknown[] | undefined;
}

/**
 * Time as the proxy's decisions see it (token buckets, load timestamps). One per proxy,
 * passed from the composition root; tests pass a fake one to step time by hand.
 */
export interface Clock {
  /** Monotonic milliseconds (performance.now()'s scale): intervals and buckets. */
  monotonicMs(): number;
  /** Wall-clock milliseconds since the epoch (Date.now()'s scale): timestamps shown to people. */
  wallMs(): number;
}

export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};

/** Uniform in [0, 1), Math.random's contract; tests pass a seeded or scripted one. */
export type RandomSource = () => number;

/** What HTTP filters may read of the downstream connection (the proxy's ConnectionInfo fits it). */
export interface DownstreamConnectionView {
  /** The address the connection arrived at (the listener socket); originalDst, when set, is where it was going. */
  readonly localAddress: string;
  readonly originalDst?: { readonly address: string; readonly port: number };
  /** SNI, lower-cased. */
  readonly serverName?: string;
  /** Envoy's connection filter state (set by network filters such as istio_authn, set_filter_state). */
  readonly filterState?: ReadonlyMap<string, unknown>;
  /** The verified peer certificate's URI SAN. */
  readonly peerPrincipal?: string;
  /** This proxy's own certificate URI SAN on the connection, when it terminated TLS. */
  readonly localPrincipal?: string;
}

/**
 * Where a chain runs, for filters that report about it (Istio's `istio.stats`, peer
 * metadata exchange): the bootstrap node (Envoy's LocalInfo), the listener's
 * traffic_direction, the proxy's labeled metrics, and cluster metadata. A proxy passes
 * it when it builds a chain (BuildOptions.host); chains built elsewhere have none.
 */
export interface FilterHost {
  readonly node: { readonly id: string; readonly cluster?: string; readonly metadata: Readonly<Record<string, unknown>> };
  readonly trafficDirection: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  /** Metric families born with labels (one series per distinct label values, bounded). */
  readonly labeledStats: {
    counter(name: string, labelNames: readonly string[]): LabeledFamilyView<{ inc(n?: number): void }>;
    histogram(name: string, labelNames: readonly string[]): LabeledFamilyView<{ record(v: number): void }>;
    gauge?(name: string, labelNames: readonly string[]): LabeledFamilyView<{ set(v: number): void }>;
  };
  /** A cluster's metadata.filter_metadata (Istio's `istio` key names the service), when known. */
  clusterMetadata?(cluster: string): Readonly<Record<string, unknown>> | undefined;
  /** A counter in a cluster's stats scope (`cluster.<c>.<name>`; grpc_stats' `grpc.success`). */
  clusterCounter?(cluster: string, name: string): { inc(n?: number): void };
}

/** A labeled metric family as filters use it (proxy/src/stats/labeled.ts). */
export interface LabeledFamilyView<S> {
  /** The series for these label values, in the family's label order. */
  get(values: readonly string[]): S;
  /** The same series as get(prefix.concat(suffix)), cheaper when `prefix` is one long-lived array. */
  getSplit(prefix: readonly string[], suffix: readonly string[]): S;
}

export interface HttpFilterChain {
  /** False when no filter looks at request headers: the proxy may skip decodeHeaders. */
  readonly hasRequestPhase: boolean;
  /** False when no filter looks at response headers: the proxy may skip encodeHeaders. */
  readonly hasResponsePhase: boolean;
  /** True when some filter wants the request body: the proxy must call decodeData. */
  readonly wantsRequestBody: boolean;
  /** Decoded router filter options (the router itself is not in the chain: the proxy routes). */
  readonly router: RouterOptions;
  /**
   * Settles when every hot-loaded user filter of this chain has finished loading (or
   * failed to), with the problems of that asynchronous part (load errors, failed
   * self-tests): empty means all good. The proxy may await it before it swaps the chain in
   * (listener warming) and NACK on problems; a chain used earlier answers per each user
   * filter's failure policy until then (or with the previous version, if one is active).
   */
  readonly ready: Promise<readonly Problem[]>;

  /** Runs in configuration order. Synchronous when every filter is synchronous. */
  decodeHeaders(req: RequestHeadersView, info: StreamInfo): FilterResult | Promise<FilterResult>;
  /**
   * Body phase, only when wantsRequestBody. Call for every chunk in order, and once with
   * endStream=true (chunk may be empty). Open the upstream request when this first
   * forwards data (or at end of stream), so a buffering filter can still answer 413.
   */
  decodeData(chunk: Uint8Array, endStream: boolean, info: StreamInfo): DataResult | Promise<DataResult>;
  /** Runs in reverse configuration order; also for local replies from decodeHeaders/decodeData. */
  encodeHeaders(res: ResponseHeadersView, info: StreamInfo): FilterResult | Promise<FilterResult>;
  /** The request is over (any outcome, including aborts): filters release per-stream state. */
  streamComplete(info: StreamInfo): void;
  /** For /config_dump: each filter's name, type, version, state. */
  describe(): unknown;
  /** The chain was replaced and its last request finished: release what it holds. */
  dispose(): void;
}

/** Decoded envoy.extensions.filters.http.router.v3.Router. */
export interface RouterOptions {
  readonly suppressEnvoyHeaders: boolean;
  readonly dynamicStats: boolean;
  readonly startChildSpan: boolean;
}

// ------------------------------------------------------------------ filter side

/**
 * A decoded typed_per_filter_config value meaning "this filter is off for this route"
 * (envoy.config.route.v3.FilterConfig{disabled: true}, BufferPerRoute{disabled: true}, an
 * RBACPerRoute without rules). The chain skips the filter; filters never see it.
 */
export const FILTER_DISABLED: unique symbol = Symbol('filter disabled for route');

export type FailurePolicy = 'FAIL_CLOSED' | 'FAIL_OPEN';

/**
 * One configured filter, built by a factory from validated config. Each phase is
 * optional; per-stream state lives in the filter's StreamSlot (FactoryContext.streamSlot),
 * never on the filter.
 * `perRoute` is the route's decoded typed_per_filter_config for this filter's name.
 */
export interface HttpFilter {
  readonly name: string;
  readonly typeUrl: string;
  /** What a throw/rejection turns into. */
  readonly failurePolicy: FailurePolicy;
  /** Status of the fail-closed local reply (500, 403 for authz). */
  readonly failureStatus: number;
  /** Body phase wanted by this filter. */
  readonly wantsRequestBody?: boolean;
  decodeHeaders?(req: RequestHeadersView, info: StreamInfo, perRoute: unknown): FilterResult | Promise<FilterResult>;
  decodeData?(chunk: Uint8Array, endStream: boolean, info: StreamInfo, perRoute: unknown): DataResult | Promise<DataResult>;
  encodeHeaders?(res: ResponseHeadersView, info: StreamInfo, perRoute: unknown): FilterResult | Promise<FilterResult>;
  streamComplete?(info: StreamInfo): void;
  /** Settles when the filter can serve (hot-loaded user filters), with load problems. */
  readonly ready?: Promise<readonly Problem[]>;
  describe(): Record<string, unknown>;
  dispose?(): void;
}
