import type { HeaderValueOption } from '../../../config/src/index.js';

export type HeaderMap = Record<string, string | string[] | undefined>;

/**
 * The prototype of every header map pilotfish builds: empty, and without Object.prototype
 * behind it. `constructor` and `__proto__` are valid header names (RFC 9110 tokens), and on
 * a `{}` they are already "there": reading `constructor` gave Object itself (joined into the
 * value of the first real one) and storing `__proto__` replaced the map's prototype instead
 * of adding a header. Object.create(null) would also fix that, but V8 keeps such objects in
 * dictionary mode: building, reading and iterating a request's headers cost 2.5× as much
 * (~0.3 µs per request); an object whose prototype is an empty object stays in fast mode
 * and costs what `{}` does.
 */
const HEADER_MAP_PROTO: object = Object.freeze(Object.create(null) as object);

/** An empty header map (see HEADER_MAP_PROTO): any header name is an own property or absent. */
export function newHeaderMap(): HeaderMap {
  return Object.create(HEADER_MAP_PROTO) as HeaderMap;
}

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) plus those Envoy never forwards. Removal sets
 * the value to undefined instead of `delete`: V8 keeps the object in fast mode, and
 * both undici and Node's writeHead skip undefined values.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization'] as const;

const HOP_BY_HOP_SET: ReadonlySet<string> = new Set(HOP_BY_HOP);

/**
 * Whether stripHopByHop(h, false) would remove a header (lowercase `name`) from a message
 * whose Connection header is `connection` (its values joined by commas): a codec that
 * builds the header object can leave such headers out instead of removing them later.
 */
export function isHopByHop(name: string, connection: string | undefined): boolean {
  if (HOP_BY_HOP_SET.has(name)) return true;
  if (connection === undefined || name === 'close' || name.charCodeAt(0) === 58 /* : */) return false;
  let start = 0;
  while (start <= connection.length) {
    let end = connection.indexOf(',', start);
    if (end < 0) end = connection.length;
    let a = start;
    let b = end;
    while (a < b && isOws(connection.charCodeAt(a))) a++;
    while (b > a && isOws(connection.charCodeAt(b - 1))) b--;
    if (tokenIs(connection, a, b, name)) return true;
    start = end + 1;
  }
  return false;
}

export function stripHopByHop(h: HeaderMap, keepTeTrailers: boolean): void {
  const conn = h.connection;
  if (conn !== undefined) {
    // Headers the sender listed in Connection are hop-by-hop too.
    if (typeof conn === 'string') stripListed(h, conn);
    else for (const c of conn) stripListed(h, c);
  }
  const te = keepTeTrailers ? h.te : undefined;
  // HOP_BY_HOP spelled out: each name is then a named property access with its own inline
  // cache, where h[HOP_BY_HOP[i]] was one keyed site seeing nine names (megamorphic, a
  // stub-cache probe each), 18 times per request (request and response headers).
  if (h.connection !== undefined) h.connection = undefined;
  if (h['keep-alive'] !== undefined) h['keep-alive'] = undefined;
  if (h['proxy-connection'] !== undefined) h['proxy-connection'] = undefined;
  if (h['transfer-encoding'] !== undefined) h['transfer-encoding'] = undefined;
  if (h.upgrade !== undefined) h.upgrade = undefined;
  if (h.te !== undefined) h.te = undefined;
  if (h.trailer !== undefined) h.trailer = undefined;
  if (h['proxy-authenticate'] !== undefined) h['proxy-authenticate'] = undefined;
  if (h['proxy-authorization'] !== undefined) h['proxy-authorization'] = undefined;
  // gRPC needs "te: trailers" end to end; it is the one TE value that may be forwarded.
  if (te !== undefined && String(te).trim().toLowerCase() === 'trailers') h.te = 'trailers';
}

/**
 * Removes the headers a Connection value names. The usual values (keep-alive, close) are
 * recognised in place: no list and no string is made for them.
 */
function stripListed(h: HeaderMap, value: string): void {
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(',', start);
    if (end < 0) end = value.length;
    let a = start;
    let b = end;
    while (a < b && isOws(value.charCodeAt(a))) a++;
    while (b > a && isOws(value.charCodeAt(b - 1))) b--;
    if (b > a && !tokenIs(value, a, b, 'close') && !tokenIs(value, a, b, 'keep-alive')) {
      const name = value.slice(a, b).toLowerCase();
      if (h[name] !== undefined && !name.startsWith(':')) h[name] = undefined;
    }
    start = end + 1;
  }
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/** value[a, b) equals `lower` ignoring ASCII case. */
function tokenIs(value: string, a: number, b: number, lower: string): boolean {
  if (b - a !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = value.charCodeAt(a + i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
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
