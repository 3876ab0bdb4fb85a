/**
 * The TCP metadata exchange's wire format (istio/proxy metadata_exchange.cc), spoken by
 * both ends of an mTLS connection that negotiated the `istio-peer-exchange` ALPN, before
 * any application byte:
 *
 *   magic   uint32 big-endian 0x3D230467
 *   length  uint32 big-endian, of what follows
 *   payload google.protobuf.Any{type_url: ".../google.protobuf.Struct",
 *           value: Struct{"x-envoy-peer-metadata": Struct(node metadata),
 *                         "x-envoy-peer-metadata-id": node id}}
 *
 * The reader is incremental (bytes arrive in any split) and bounded: a peer cannot make
 * it buffer more than MAX_PAYLOAD bytes.
 */
import { decodeAny, decodeStruct, encodeAny, encodeStruct, STRUCT_TYPE_URL, type JsonStruct } from './struct-codec.js';
import { exchangedStruct, workloadFromStruct, type WorkloadMetadata } from './workload.js';
import { PEER_ID_HEADER, PEER_METADATA_HEADER } from './peer-header.js';

export const MX_MAGIC = 0x3d230467;
export const MX_ALPN = 'istio-peer-exchange';
export const HEADER_SIZE = 8;
/** Node metadata is a few KiB; anything past this is not a metadata exchange. */
export const MAX_PAYLOAD = 1 << 20;

/** The exchange's header + payload for this node. */
export function encodeExchange(nodeId: string, nodeMetadata: Readonly<Record<string, unknown>>): Buffer {
  const data: JsonStruct = { [PEER_METADATA_HEADER]: exchangedStruct(nodeMetadata) };
  if (nodeId !== '') data[PEER_ID_HEADER] = nodeId;
  const any = encodeAny(STRUCT_TYPE_URL, encodeStruct(data));
  const out = Buffer.allocUnsafe(HEADER_SIZE + any.length);
  out.writeUInt32BE(MX_MAGIC, 0);
  out.writeUInt32BE(any.length, 4);
  out.set(any, HEADER_SIZE);
  return out;
}

export type ExchangeResult =
  /** Need more bytes; nothing consumed yet. */
  | { readonly kind: 'more' }
  /** The peer's metadata; `rest` is what followed it (application bytes). */
  | { readonly kind: 'done'; readonly peer: WorkloadMetadata; readonly peerId: string; readonly rest: Buffer }
  /** Not an exchange (wrong magic, bad payload): Istio passes the bytes on untouched. */
  | { readonly kind: 'invalid'; readonly reason: string; readonly rest: Buffer };

/** Accumulates the peer's bytes until the exchange is complete or shown invalid. */
export class ExchangeReader {
  private buffered: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): ExchangeResult {
    this.buffered.push(chunk);
    this.size += chunk.length;
    if (this.size < HEADER_SIZE) return { kind: 'more' };
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.size);
    this.buffered = [all];
    const magic = all.readUInt32BE(0);
    if (magic !== MX_MAGIC) return this.fail(`bad magic 0x${magic.toString(16)} (peer has no TCP metadata exchange)`, all);
    const length = all.readUInt32BE(4);
    if (length > MAX_PAYLOAD) return this.fail(`payload of ${length} bytes exceeds ${MAX_PAYLOAD}`, all);
    if (all.length < HEADER_SIZE + length) return { kind: 'more' };
    const payload = all.subarray(HEADER_SIZE, HEADER_SIZE + length);
    const rest = all.subarray(HEADER_SIZE + length);
    this.buffered = [];
    this.size = 0;
    const parsed = parseExchangePayload(payload);
    if (!parsed.ok) return { kind: 'invalid', reason: parsed.reason, rest };
    return { kind: 'done', peer: parsed.peer, peerId: parsed.peerId, rest };
  }

  private fail(reason: string, all: Buffer): ExchangeResult {
    this.buffered = [];
    this.size = 0;
    return { kind: 'invalid', reason, rest: all };
  }
}

export function parseExchangePayload(payload: Uint8Array): { ok: true; peer: WorkloadMetadata; peerId: string; metadata: JsonStruct } | { ok: false; reason: string } {
  const any = decodeAny(payload);
  if (!any.ok) return any;
  if (any.value.typeUrl !== STRUCT_TYPE_URL) return { ok: false, reason: `payload type ${any.value.typeUrl}, expected ${STRUCT_TYPE_URL}` };
  const s = decodeStruct(any.value.value);
  if (!s.ok) return s;
  const md = s.value[PEER_METADATA_HEADER];
  const metadata = md !== null && typeof md === 'object' && !Array.isArray(md) ? (md as JsonStruct) : {};
  const id = s.value[PEER_ID_HEADER];
  return { ok: true, peer: workloadFromStruct(metadata), peerId: typeof id === 'string' ? id : '', metadata };
}
