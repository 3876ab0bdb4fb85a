/**
 * What telemetry reads from a finished request. Structural on purpose: the proxy's
 * `Stream` and `RequestHeadersView` satisfy these, and telemetry never imports proxy/.
 */
export interface StreamView {
  readonly requestId: string;
  /** performance.now() when the request started. */
  readonly startTime: number;
  readonly downstreamAddress: string;
  readonly downstreamLocalPort?: number;
  readonly peerIdentity: string | undefined;
  readonly method: string;
  readonly protocol: string;
  readonly routeName: string | undefined;
  readonly clusterName: string | undefined;
  readonly responseCode: number;
  readonly responseFlags: string;
  readonly responseCodeDetails: string;
  readonly upstreamHost: string | undefined;
  readonly attemptCount: number;
  readonly bytesSent: number;
  readonly bytesReceived?: number;
  /** The response headers as sent downstream (upstream's or a local reply's); undefined before any. */
  readonly responseHeaders?: HeaderMap | undefined;
  /** The downstream connection, as the listener saw it (Istio's default log format prints its addresses and SNI). */
  readonly connection?: {
    readonly localAddress: string;
    readonly originalDst?: { readonly address: string; readonly port: number };
    readonly serverName?: string;
  } | undefined;
}

export type HeaderMap = Record<string, string | string[] | undefined>;

export interface RequestView {
  method: string;
  path: string;
  authority: string;
  scheme: 'http' | 'https';
  headers: HeaderMap;
}

/** One request as the formatters see it; built once per logged request. */
export interface LogContext {
  readonly stream: StreamView;
  readonly request: RequestView;
  /** performance.now() when the request completed. */
  readonly endTime: number;
}

export function headerValue(h: HeaderMap, name: string): string | undefined {
  const v = h[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}
