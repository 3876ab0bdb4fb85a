/**
 * What Istio's filters need from the proxy that runs them, declared here by shape so
 * istio/ depends on no part that depends on it: the node (Envoy's LocalInfo), the
 * listener's direction (which reporter a stats filter is), the labeled metrics sink, and
 * cluster metadata (Istio's `istio` filter_metadata names the destination service).
 * proxy/ hands its objects over; they have these shapes.
 */
import type { LabeledMetrics } from './metrics.js';

export interface NodeLike {
  readonly id: string;
  readonly cluster?: string;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export type TrafficDirection = 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';

export interface IstioHost {
  readonly node: NodeLike;
  readonly trafficDirection: TrafficDirection;
  readonly labeledStats: LabeledMetrics;
  /** A cluster's metadata.filter_metadata, when the cluster exists and has some. */
  clusterMetadata?(cluster: string): Readonly<Record<string, unknown>> | undefined;
}

/** Filter-state keys, Istio's names (the Wasm-era `wasm.` prefix is what its stats read for TCP). */
export const FS = {
  downstreamPeer: 'wasm.downstream_peer',
  downstreamPeerId: 'wasm.downstream_peer_id',
  upstreamPeer: 'wasm.upstream_peer',
  upstreamPeerId: 'wasm.upstream_peer_id',
  /** HTTP peer_metadata filter's keys (per request). */
  httpDownstreamPeer: 'downstream_peer',
  httpUpstreamPeer: 'upstream_peer',
  peerPrincipal: 'io.istio.peer_principal',
  localPrincipal: 'io.istio.local_principal',
  /** What the exchange stores as the peer id when the peer sent nothing usable. */
  peerUnknown: 'envoy.wasm.metadata_exchange.peer_unknown',
} as const;

/** Service host and short name from a cluster's `istio` filter metadata (services[0]), or Istio's fixed cluster names. */
export function serviceOfCluster(cluster: string | undefined, metadata: Readonly<Record<string, unknown>> | undefined): { host: string; name: string } | undefined {
  if (cluster === undefined) return undefined;
  if (/^(BlackHoleCluster|PassthroughCluster|InboundPassthroughCluster(Ipv4|Ipv6)?)$/.test(cluster)) return { host: '', name: cluster };
  const istio = metadata?.istio as { services?: unknown } | undefined;
  const services = istio?.services;
  if (!Array.isArray(services) || services.length === 0) return undefined;
  const s = services[0] as { host?: unknown; name?: unknown };
  const host = typeof s.host === 'string' ? s.host : '';
  const name = typeof s.name === 'string' ? s.name : host.split('.')[0] ?? '';
  return { host, name };
}
