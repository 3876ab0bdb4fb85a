import type { HeaderValueOption } from '../../../config/src/index.js';

export type HeaderMap = Record<string, string | string[] | undefined>;

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) plus those Envoy never forwards. Removal sets
 * the value to undefined instead of `delete`: V8 keeps the object in fast mode, and
 * both undici and Node's writeHead skip undefined values.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization'] as const;

export function stripHopByHop(h: HeaderMap, keepTeTrailers: boolean): void {
  const conn = h.connection;
  if (conn !== undefined) {
    // Headers the sender listed in Connection are hop-by-hop too.
    for (const raw of (Array.isArray(conn) ? conn.join(',') : conn).split(',')) {
      const name = raw.trim().toLowerCase();
      if (name !== '' && name !== 'close' && name !== 'keep-alive' && h[name] !== undefined && !name.startsWith(':')) h[name] = undefined;
    }
  }
  const te = keepTeTrailers ? h.te : undefined;
  for (const n of HOP_BY_HOP) if (h[n] !== undefined) h[n] = undefined;
  // gRPC needs "te: trailers" end to end; it is the one TE value that may be forwarded.
  if (te !== undefined && String(te).trim().toLowerCase() === 'trailers') h.te = 'trailers';
}

/** Removes HTTP/2 pseudo-headers from a header object (they travel as fields of the request). */
export function stripPseudoHeaders(h: HeaderMap): void {
  for (const k in h) if (k.charCodeAt(0) === 58 /* : */) h[k] = undefined;
}

export function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Applies Envoy header_value_option semantics. */
export function applyHeaderOptions(h: HeaderMap, options: readonly HeaderValueOption[], remove: readonly string[]): void {
  for (const name of remove) if (h[name] !== undefined) h[name] = undefined;
  for (const o of options) {
    const cur = h[o.key];
    switch (o.appendAction) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        if (cur === undefined) h[o.key] = o.value;
        else h[o.key] = Array.isArray(cur) ? [...cur, o.value] : [cur, o.value];
        break;
      case 'ADD_IF_ABSENT':
        if (cur === undefined) h[o.key] = o.value;
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        h[o.key] = o.value;
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (cur !== undefined) h[o.key] = o.value;
        break;
    }
  }
}
