import type { ConnectionInfo } from '../net/connection-info.js';

/**
 * A byte protocol a TCP upstream connection speaks before the application's bytes when
 * its TLS handshake negotiated a given ALPN — Istio's TCP metadata exchange on
 * `istio-peer-exchange`, which Envoy runs as the cluster's upstream network filter. The
 * proxy writes the greeting first, then feeds the upstream's first bytes to `push` until it
 * returns what follows the peer's part (application bytes, possibly empty).
 */
export interface UpstreamExchange {
  readonly greeting: Uint8Array;
  /** null while the peer's part is incomplete; then the application bytes that followed it. */
  push(chunk: Buffer): Buffer | null;
}

/** Per proxy: ALPN → a new exchange for one connection (the downstream's ConnectionInfo receives what it learns). */
export type UpstreamExchanges = ReadonlyMap<string, (info: ConnectionInfo) => UpstreamExchange>;

export const NO_UPSTREAM_EXCHANGES: UpstreamExchanges = new Map();
