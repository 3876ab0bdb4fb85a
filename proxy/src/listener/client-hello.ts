/**
 * The part of a TLS ClientHello that tls_inspector needs: SNI and the ALPN list. It reads
 * the record layer and the handshake message (possibly split across several records, as
 * a large hello with post-quantum key shares is) without any TLS library, from the bytes
 * peeked before a filter chain is chosen. It never throws: malformed input is "not TLS".
 */

export type ClientHelloResult =
  | { readonly kind: 'tls'; readonly serverName: string | undefined; readonly alpn: readonly string[] }
  /** The bytes so far are a valid prefix: read more (up to the caller's limit). */
  | { readonly kind: 'need_more' }
  | { readonly kind: 'not_tls' };

const NEED_MORE: ClientHelloResult = { kind: 'need_more' };
const NOT_TLS: ClientHelloResult = { kind: 'not_tls' };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
/** Envoy's tls_inspector gives up on hellos larger than 64 KiB; so do we. */
export const MAX_CLIENT_HELLO = 64 * 1024;

export function parseClientHello(buf: Buffer): ClientHelloResult {
  if (buf.length === 0) return NEED_MORE;
  if (buf[0] !== RECORD_HANDSHAKE) return NOT_TLS;
  if (buf.length >= 2 && buf[1] !== 0x03) return NOT_TLS;
  // Reassemble the handshake bytes from consecutive handshake records.
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1; // handshake message length incl. its 4-byte header, once known
  let off = 0;
  while (need < 0 || have < need) {
    if (off + 5 > buf.length) return buf.length > MAX_CLIENT_HELLO ? NOT_TLS : NEED_MORE;
    if (buf[off] !== RECORD_HANDSHAKE || buf[off + 1] !== 0x03) return NOT_TLS;
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) return NOT_TLS;
    if (off + 5 + len > buf.length) {
      // Partial record: what we have may already hold the whole hello header.
      if (buf.length > MAX_CLIENT_HELLO) return NOT_TLS;
      return NEED_MORE;
    }
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO) return NOT_TLS;
      need = 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!);
      if (need > MAX_CLIENT_HELLO) return NOT_TLS;
    }
  }
  const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return parseHelloBody(hs.subarray(4, need));
}

function parseHelloBody(b: Buffer): ClientHelloResult {
  let p = 2 + 32; // legacy_version, random
  if (p + 1 > b.length) return NOT_TLS;
  p += 1 + b[p]!; // session id
  if (p + 2 > b.length) return NOT_TLS;
  p += 2 + b.readUInt16BE(p); // cipher suites
  if (p + 1 > b.length) return NOT_TLS;
  p += 1 + b[p]!; // compression methods
  if (p === b.length) return { kind: 'tls', serverName: undefined, alpn: [] }; // no extensions
  if (p + 2 > b.length) return NOT_TLS;
  const extEnd = p + 2 + b.readUInt16BE(p);
  if (extEnd > b.length) return NOT_TLS;
  p += 2;
  let serverName: string | undefined;
  let alpn: string[] = [];
  while (p + 4 <= extEnd) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    const start = p + 4;
    const end = start + len;
    if (end > extEnd) return NOT_TLS;
    if (type === EXT_SERVER_NAME) serverName = readServerName(b, start, end);
    else if (type === EXT_ALPN) alpn = readAlpn(b, start, end);
    p = end;
  }
  if (p !== extEnd) return NOT_TLS;
  return { kind: 'tls', serverName, alpn };
}

function readServerName(b: Buffer, start: number, end: number): string | undefined {
  if (start + 2 > end) return undefined;
  const listEnd = Math.min(end, start + 2 + b.readUInt16BE(start));
  let p = start + 2;
  while (p + 3 <= listEnd) {
    const type = b[p]!;
    const len = b.readUInt16BE(p + 1);
    if (p + 3 + len > listEnd) return undefined;
    // host_name (0) is the only name type defined; names are ASCII (RFC 6066 §3).
    if (type === 0) return b.toString('latin1', p + 3, p + 3 + len).toLowerCase();
    p += 3 + len;
  }
  return undefined;
}

function readAlpn(b: Buffer, start: number, end: number): string[] {
  if (start + 2 > end) return [];
  const listEnd = Math.min(end, start + 2 + b.readUInt16BE(start));
  const out: string[] = [];
  let p = start + 2;
  while (p < listEnd) {
    const len = b[p]!;
    if (len === 0 || p + 1 + len > listEnd) break;
    out.push(b.toString('latin1', p + 1, p + 1 + len));
    p += 1 + len;
  }
  return out;
}
