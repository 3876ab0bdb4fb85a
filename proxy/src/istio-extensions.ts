import type { Bootstrap } from '../../config/src/index.js';
import { registerNetworkFilter } from './listener/network-filter.js';
import type { ConnectionInfo } from './net/connection-info.js';
import type { UpstreamExchange } from './tcp/upstream-exchange.js';

/**
 * Istio's extensions (istio/, with Envoy's grpc_stats that istiod uses) are loaded only for a proxy that may meet them: one whose
 * bootstrap is Istio's (node metadata from pilot-agent: ISTIO_VERSION) or names one of
 * their type URLs in its static configuration. A plain Envoy-config proxy never loads them.
 * Registration is by type URL and idempotent; per-proxy state comes from each chain's host.
 */
const MARKERS = ['stats.PluginConfig', 'io.istio.', 'envoy.tcp.metadataexchange', 'istio.envoy.config.filter.http.alpn', 'envoy.extensions.filters.http.grpc_stats'];

export function needsIstio(bootstrap: Bootstrap): boolean {
  if (bootstrap.node.metadata.ISTIO_VERSION !== undefined) return true;
  const text = JSON.stringify(bootstrap);
  return MARKERS.some((m) => text.includes(m));
}

/** The client side of Istio's TCP metadata exchange for this proxy's node, by the ALPN that announces it. */
export async function istioUpstreamExchanges(node: Bootstrap['node']): Promise<[string, (info: ConnectionInfo) => UpstreamExchange][]> {
  const istio = await import('../../istio/src/index.js');
  return [[istio.MX_ALPN, (info) => istio.upstreamExchange(node, info)]];
}

/** Registers Istio's HTTP and network filters; returns the protos its typed Anys need for the xDS decoder. */
export async function loadIstioExtensions(): Promise<string[]> {
  const istio = await import('../../istio/src/index.js');
  istio.registerIstioHttpFilters();
  for (const [type, factory] of istio.istioNetworkFilters()) registerNetworkFilter(type, factory);
  return istio.istioProtoFiles();
}
