/**
 * istio/: Istio's own proxy extensions, natively (istio/proxy's filters, read for their
 * behaviour): standard metrics (`istio.stats`), peer metadata exchange over HTTP headers
 * and over TCP (`istio-peer-exchange`), `istio_authn`, `istio.alpn`, and Envoy's `grpc_stats`, which istiod puts in every chain. The only file other
 * parts import. Nothing registers on import: the proxy calls registerIstioHttpFilters()
 * and registers istioNetworkFilters() with its network-filter registry when a
 * configuration names one of ISTIO_TYPE_URLS.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerHttpFilter } from '../../filters/src/index.js';
import { alpnFactory, peerMetadataFactory, statsFactory } from './http-filters.js';
import { grpcStatsFactory, GRPC_STATS_TYPE } from './grpc-stats.js';
import { wasmFactory, WASM_TYPE } from './wasm-compat.js';
import { authnFactory, tcpMxFactory, tcpStatsFactory, AUTHN_TYPE, TCP_MX_TYPE, type NetFilterFactory } from './network-filters.js';
import { STATS_TYPE, PEER_METADATA_TYPE, ALPN_TYPE } from './http-filters.js';

export { STATS_TYPE, PEER_METADATA_TYPE, ALPN_TYPE, AUTHN_TYPE, TCP_MX_TYPE, GRPC_STATS_TYPE, WASM_TYPE };
export { wasmPlugin } from './wasm-compat.js';
export type { IstioHost, NodeLike, TrafficDirection } from './host.js';
export type { LabeledMetrics } from './metrics.js';
export type { NetFilterFactory, NetContext, NetConnection, NetFilter } from './network-filters.js';
export { encodeStruct, decodeStruct, encodeAny, decodeAny, type JsonStruct, type JsonValue } from './struct-codec.js';
export { encodeExchange, ExchangeReader, parseExchangePayload, MX_MAGIC, MX_ALPN } from './tcp-exchange.js';
export { encodePeerHeader, decodePeerHeader, PEER_METADATA_HEADER, PEER_ID_HEADER } from './peer-header.js';
export { workloadFromStruct, type WorkloadMetadata } from './workload.js';
export { decodeStatsPluginConfig, type StatsPluginConfig } from './plugin-config.js';
export { HTTP_TAGS, TCP_TAGS } from './metrics.js';
export { decodeGrpcStatsConfig, statPrefix, grpcStatusOf } from './grpc-stats.js';

/** Every type URL (message name) this part implements: the proxy loads istio/ when a config names one. */
export const ISTIO_TYPE_URLS: readonly string[] = [STATS_TYPE, PEER_METADATA_TYPE, ALPN_TYPE, AUTHN_TYPE, TCP_MX_TYPE, GRPC_STATS_TYPE, WASM_TYPE];

/** Protos of the extensions istiod sends as typed Anys (not TypedStructs), for the xDS decoder. */
export function istioProtoFiles(): string[] {
  // From the sources (istio/src) or the compiled output (dist/istio/src).
  const dirs = [new URL('../protos/', import.meta.url), new URL('../../../istio/protos/', import.meta.url)].map((u) => fileURLToPath(u));
  const dir = dirs.find((d) => existsSync(path.join(d, 'stats.proto'))) ?? dirs[0]!;
  return ['stats.proto', 'alpn.proto'].map((f) => path.join(dir, f));
}

let httpRegistered = false;

/** Registers the HTTP filters (idempotent; factories are stateless, per-proxy state comes from the chain's context). */
export function registerIstioHttpFilters(): void {
  if (httpRegistered) return;
  httpRegistered = true;
  registerHttpFilter(statsFactory);
  registerHttpFilter(peerMetadataFactory);
  registerHttpFilter(alpnFactory);
  registerHttpFilter(grpcStatsFactory);
  // Istio's Wasm-era configs of the same two extensions (istiod <= 1.17, EnvoyFilters).
  registerHttpFilter(wasmFactory);
}

/** The network filter factories by type URL. */
export function istioNetworkFilters(): [string, NetFilterFactory][] {
  return [[AUTHN_TYPE, authnFactory], [TCP_MX_TYPE, tcpMxFactory], [STATS_TYPE, tcpStatsFactory()]];
}

/** Istio's upstream byte protocols by ALPN (the client side of the TCP metadata exchange). */
export { upstreamExchange } from './tcp-exchange-client.js';
