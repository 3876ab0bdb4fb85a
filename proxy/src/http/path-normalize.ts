/**
 * Envoy's `:path` handling before routing and before any HTTP filter (so RBAC, routes and
 * the upstream all see one path): fragment removal, path_with_escaped_slashes_action,
 * normalize_path (Envoy uses Chromium's URL path canonicalizer: RFC 3986 §6 dot-segment
 * removal, percent-decoding of unreserved characters, backslash as a separator) and
 * merge_slashes, in Envoy's order (conn_manager_utility.cc maybeNormalizePath). Pure
 * functions; the query is never touched.
 */

export type EscapedSlashesAction = 'KEEP_UNCHANGED' | 'REJECT_REQUEST' | 'UNESCAPE_AND_REDIRECT' | 'UNESCAPE_AND_FORWARD';

export interface PathOptions {
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
  readonly pathWithEscapedSlashesAction: EscapedSlashesAction;
}

/** What to do with the request: continue with `path`, answer 400, or redirect (307) to `path`. */
export type PathVerdict =
  | { readonly action: 'continue'; readonly path: string }
  | { readonly action: 'reject' }
  | { readonly action: 'redirect'; readonly path: string };

const REJECT: PathVerdict = { action: 'reject' };

/** True when any path option is on; the connection manager skips everything otherwise. */
export function pathOptionsActive(o: PathOptions): boolean {
  return o.normalizePath || o.mergeSlashes || (o.pathWithEscapedSlashesAction !== undefined && o.pathWithEscapedSlashesAction !== 'KEEP_UNCHANGED');
}

/** Envoy drops the fragment of `:path` (it never reaches routing or the upstream). */
export function stripFragment(path: string): string {
  const i = path.indexOf('#');
  return i < 0 ? path : path.slice(0, i);
}

/** Applies the HCM's path options in Envoy's order: escaped slashes, normalize, merge. */
export function transformPath(path: string, o: PathOptions): PathVerdict {
  let p = path;
  let redirect = false;
  const esc = o.pathWithEscapedSlashesAction;
  if (esc !== undefined && esc !== 'KEEP_UNCHANGED') {
    const u = unescapeSlashes(p);
    if (u !== p) {
      if (esc === 'REJECT_REQUEST') return REJECT;
      if (esc === 'UNESCAPE_AND_REDIRECT') redirect = true;
      p = u;
    }
  }
  if (o.normalizePath) {
    const n = normalizePath(p);
    if (n === undefined) return REJECT;
    p = n;
  }
  // After normalization, as Envoy: catches slashes that appeared from percent-decoding.
  if (o.mergeSlashes) p = mergeSlashes(p);
  return redirect ? { action: 'redirect', path: p } : { action: 'continue', path: p };
}

/** %2F/%2f -> "/", %5C/%5c -> "\" in the path part; the query is kept as is. */
export function unescapeSlashes(path: string): string {
  const q = path.indexOf('?');
  const end = q < 0 ? path.length : q;
  let i = path.indexOf('%');
  if (i < 0 || i >= end) return path;
  let out = '';
  let from = 0;
  while (i >= 0 && i + 2 < end) {
    const a = path.charCodeAt(i + 1);
    const b = path.charCodeAt(i + 2) | 0x20;
    const rep = a === 0x32 /* 2 */ && b === 0x66 /* f */ ? '/' : a === 0x35 /* 5 */ && b === 0x63 /* c */ ? '\\' : undefined;
    if (rep !== undefined) {
      out += path.slice(from, i) + rep;
      from = i + 3;
      i = path.indexOf('%', i + 3);
    } else i = path.indexOf('%', i + 1);
  }
  if (from === 0) return path;
  return out + path.slice(from);
}

/** Envoy's merge_slashes: runs of "/" in the path part become one; the query is untouched. */
export function mergeSlashes(path: string): string {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  if (!p.includes('//')) return path;
  const prefix = p.startsWith('/') ? '/' : '';
  const suffix = p.endsWith('/') ? '/' : '';
  const parts = p.split('/').filter((s) => s !== '');
  // "//" alone: prefix and suffix would both add a slash.
  const joined = parts.length === 0 ? (prefix || suffix) : prefix + parts.join('/') + suffix;
  return joined + (q < 0 ? '' : path.slice(q));
}

// Chromium's kPathCharLookup (url_canon_path.cc): what canonicalization does per byte.
const PASS = 0;
const SPECIAL = 1;
const ESCAPE = 3; // ESCAPE_BIT | SPECIAL
const UNESCAPE = 4;
const INVALID = 9; // INVALID_BIT | SPECIAL
const ESCAPE_BIT = 2;
const INVALID_BIT = 8;
const LOOKUP = new Uint8Array(256).fill(ESCAPE);
LOOKUP[0] = INVALID;
for (const c of '!$&\'()*+,/:;=@[]') LOOKUP[c.charCodeAt(0)] = PASS;
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~') LOOKUP[c.charCodeAt(0)] = UNESCAPE;
LOOKUP[0x2e /* . */] = SPECIAL;
// Everything else (controls, space, " # % < > ? \ ^ ` { | } DEL, high bytes) is ESCAPE;
// '%' and '\' are handled before the table is consulted.

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** The byte a "%XX" at `i` encodes, or -1. */
function decodeEscaped(s: string, i: number, end: number): number {
  if (i + 2 >= end) return -1;
  const h = hexVal(s.charCodeAt(i + 1));
  const l = hexVal(s.charCodeAt(i + 2));
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

/** Length of a dot at `i`: 1 for ".", 3 for "%2e"/"%2E", 0 otherwise. */
function dotLen(s: string, i: number, end: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x2e) return 1;
  if (c === 0x25 && i + 2 < end && s.charCodeAt(i + 1) === 0x32 && (s.charCodeAt(i + 2) | 0x20) === 0x65) return 3;
  return 0;
}

function isSlash(c: number): boolean {
  return c === 0x2f || c === 0x5c;
}

/** Percent-encodes one code unit; code units above 0xFF (never from node's latin1 request line) as UTF-8. */
function escapeChar(c: number, out: string[]): void {
  if (c <= 0xff) {
    out.push('%', HEX[c >> 4]!, HEX[c & 15]!);
    return;
  }
  for (const b of Buffer.from(String.fromCharCode(c), 'utf8')) out.push('%', HEX[b >> 4]!, HEX[b & 15]!);
}

/**
 * normalize_path: Chromium's CanonicalizePath on the path part (the query is appended
 * unchanged). Returns undefined when Envoy rejects the path (an escaped or raw NUL).
 */
export function normalizePath(path: string): string | undefined {
  const q = path.indexOf('?');
  const end = q < 0 ? path.length : q;
  if (isCanonical(path, end)) return path;
  return canonicalize(path, q, end);
}

/** The full canonicalization (exported for the test that checks the fast path against it). */
export function canonicalize(path: string, q = path.indexOf('?'), end = q < 0 ? path.length : q): string | undefined {
  const out: string[] = [];
  // Output as an array of single characters, so "back up to the previous slash" is a length change.
  if (end === 0 || !isSlash(path.charCodeAt(0))) out.push('/');
  let ok = true;
  let lastInvalidPercent = -Infinity;
  for (let i = 0; i < end; i++) {
    const ch = path.charCodeAt(i);
    const flags = ch < 256 ? LOOKUP[ch]! : ESCAPE;
    if ((flags & SPECIAL) === 0) {
      out.push(path[i]!);
      continue;
    }
    const dl = dotLen(path, i, end);
    if (dl > 0) {
      if (out.length > 0 && out[out.length - 1] === '/') {
        // A dot right after a slash: "." or ".." segment, or part of a name.
        const after = i + dl;
        let consumed = 0;
        let kind: 'name' | 'cur' | 'up' = 'name';
        if (after === end) kind = 'cur';
        else if (isSlash(path.charCodeAt(after))) {
          kind = 'cur';
          consumed = 1;
        } else {
          const dl2 = dotLen(path, after, end);
          if (dl2 > 0) {
            const after2 = after + dl2;
            if (after2 === end) {
              kind = 'up';
              consumed = dl2;
            } else if (isSlash(path.charCodeAt(after2))) {
              kind = 'up';
              consumed = dl2 + 1;
            }
          }
        }
        if (kind === 'name') {
          out.push('.');
          i += dl - 1;
        } else {
          if (kind === 'up') backUpToPreviousSlash(out);
          i += dl + consumed - 1;
        }
      } else {
        out.push('.');
        i += dl - 1;
      }
    } else if (ch === 0x5c) {
      out.push('/');
    } else if (ch === 0x25) {
      const v = decodeEscaped(path, i, end);
      if (v >= 0) {
        i += 2;
        const vf = LOOKUP[v]!;
        if (vf & UNESCAPE) {
          out.push(String.fromCharCode(v));
          if (lastInvalidPercent >= out.length - 3) checkForNestedEscapes(path, i + 1, end, lastInvalidPercent, out);
        } else {
          // Kept escaped exactly as sent (hex case preserved); an escaped NUL fails.
          out.push('%', path[i - 1]!, path[i]!);
          if (vf & INVALID_BIT) ok = false;
        }
      } else {
        lastInvalidPercent = out.length;
        out.push('%');
      }
    } else if (flags & INVALID_BIT) {
      escapeChar(ch, out);
      ok = false;
    } else if (flags & ESCAPE_BIT) {
      escapeChar(ch, out);
    }
  }
  if (!ok) return undefined;
  const p = out.join('');
  return q < 0 ? p : p + path.slice(q);
}

/**
 * The common case, checked without building anything: starts with "/", and has no
 * character canonicalization would touch (no escape, backslash, character to escape,
 * and no segment starting with a dot).
 */
function isCanonical(path: string, end: number): boolean {
  if (end === 0 || path.charCodeAt(0) !== 0x2f) return false;
  let prev = 0x2f;
  for (let i = 1; i < end; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0x80) return false;
    if (LOOKUP[c]! & SPECIAL) {
      if (c !== 0x2e || prev === 0x2f) return false;
    }
    prev = c;
  }
  return true;
}

/** Output ends with "/": drop the last segment, never above the root. */
function backUpToPreviousSlash(out: string[]): void {
  let i = out.length - 1;
  if (i === 0) return;
  i--;
  while (i > 0 && out[i] !== '/') i--;
  out.length = i + 1;
}

/**
 * "%%30%30" must not become "%00" after "%30" is decoded: when a decoded byte lands within
 * two characters of an earlier bare "%", and the result would read as an escape, that
 * "%" becomes "%25" (Chromium's CheckForNestedEscapes).
 */
function checkForNestedEscapes(spec: string, next: number, end: number, pct: number, out: string[]): void {
  const length = out.length;
  const last = out[length - 1]!;
  const appendNext = pct === length - 2;
  if (appendNext) {
    if (next === end || spec.charCodeAt(next) >= 0x80) return;
    out.push(spec[next]!);
  }
  const h = hexVal(out[pct + 1]?.charCodeAt(0) ?? -1);
  const l = hexVal(out[pct + 2]?.charCodeAt(0) ?? -1);
  if (h >= 0 && l >= 0) {
    if (!appendNext) out.push(out[pct + 1]!);
    out[pct + 1] = '2';
    out[pct + 2] = '5';
    out.push(last);
  } else if (appendNext) {
    out.length = length;
  }
}
