import type { DownstreamConnectionView, StreamInfo } from '../../../filters/src/index.js';
import type { HeaderMap } from './headers.js';

/**
 * Everything known about one request while it is proxied: the filters' StreamInfo,
 * and what the access log and stats read at the end. One object per request.
 */
export class Stream implements StreamInfo {
  routeName: string | undefined = undefined;
  virtualHostName: string | undefined = undefined;
  clusterName: string | undefined = undefined;
  perFilterConfig: Readonly<Record<string, unknown>> | undefined = undefined;
  /** Filters' per-request state, one entry per filter slot (filters/ StreamSlot). */
  filterState: unknown[] | undefined = undefined;
  responseCode = 0;
  responseFlags = '';
  responseCodeDetails = '';
  upstreamHost: string | undefined = undefined;
  attemptCount = 0;
  bytesSent = 0;
  /** Request body bytes read from the downstream (Envoy's %BYTES_RECEIVED%). */
  bytesReceived = 0;
  /** The response headers written downstream, for %RESP(...)%. */
  responseHeaders: HeaderMap | undefined = undefined;
  /** The upstream's response trailers (gRPC's grpc-status), for filters at stream end. */
  responseTrailers: HeaderMap | undefined = undefined;
  /** URI SANs of the upstream TLS connection's certificates (peer's and ours), when it was TLS. */
  upstreamPeerPrincipal: string | undefined = undefined;
  upstreamLocalPrincipal: string | undefined = undefined;
  /** The downstream connection's info (filter state, SNI, peer principal) for RBAC and logs. */
  connection: DownstreamConnectionView | undefined = undefined;
  private meta: Map<string, unknown> | undefined;

  constructor(
    readonly requestId: string,
    readonly startTime: number,
    readonly downstreamAddress: string,
    readonly downstreamLocalPort: number,
    readonly peerIdentity: string | undefined,
    readonly method: string,
    readonly protocol: string,
  ) {}

  get metadata(): Map<string, unknown> {
    return (this.meta ??= new Map());
  }

  addFlag(flag: string): void {
    // Failure paths may report the same cause twice (a timeout cancels the upstream, then replies).
    if (flag === '' || this.responseFlags === flag || this.responseFlags.split(',').includes(flag)) return;
    this.responseFlags = this.responseFlags === '' ? flag : `${this.responseFlags},${flag}`;
  }
}
