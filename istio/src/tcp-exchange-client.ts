import { FS, type NodeLike } from './host.js';
import { encodeExchange, ExchangeReader } from './tcp-exchange.js';

/** What the proxy's tcp_proxy needs to speak the exchange on an upstream connection (proxy/src/tcp/upstream-exchange.ts). */
export interface UpstreamExchangeSide {
  readonly greeting: Uint8Array;
  push(chunk: Buffer): Buffer | null;
}

const greetings = new WeakMap<NodeLike, Buffer>();

/**
 * Istio's TCP metadata exchange from the client's side (Envoy runs it as the outbound
 * cluster's upstream filter): our node's header goes first, the peer's header is read from
 * the upstream's first bytes and stored in the downstream connection's filter state under
 * the keys the TCP stats read (`wasm.upstream_peer`, `wasm.upstream_peer_id`); what follows
 * it is the application's. A peer that answers without an exchange leaves its bytes
 * untouched and the peer "unknown", as Istio does.
 */
export function upstreamExchange(node: NodeLike, info: { filterState?: Map<string, unknown> }): UpstreamExchangeSide {
  let greeting = greetings.get(node);
  if (greeting === undefined) greetings.set(node, (greeting = encodeExchange(node.id, node.metadata)));
  const reader = new ExchangeReader();
  return {
    greeting,
    push(chunk: Buffer): Buffer | null {
      const res = reader.push(chunk);
      if (res.kind === 'more') return null;
      const fs = (info.filterState ??= new Map());
      if (res.kind === 'done') {
        fs.set(FS.upstreamPeer, res.peer);
        fs.set(FS.upstreamPeerId, res.peerId);
      } else fs.set(FS.upstreamPeerId, FS.peerUnknown);
      return res.rest;
    },
  };
}
