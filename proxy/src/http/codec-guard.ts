import type { IncomingMessage } from 'node:http';

/**
 * Request checks node's llhttp (strict mode) does not already make, each closing a way
 * two HTTP/1.1 parsers could read one message differently (request smuggling) or a proxy
 * could be steered by an ambiguous authority. llhttp already refuses: CL with TE, CL
 * lists with different values, TE other than a final `chunked`, obs-fold, whitespace
 * before the colon, invalid name/value bytes, bare CR/LF, bad chunk-size lines and
 * extensions, bad request lines. Verified by e2e/smuggling.test.ts.
 *
 * Returns the response-code details of the problem, or undefined when the request is fine.
 * Costs one pass over the raw header list; allocates nothing for a well-formed request.
 */
export function checkHttp1Request(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  let hosts = 0;
  let te = false;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    // The usual spellings first: toLowerCase would allocate for every request.
    if (k.length === 4 && (k === 'Host' || k === 'host' || k.toLowerCase() === 'host')) hosts++;
    else if (k.length === 17 && k.toLowerCase() === 'transfer-encoding') te = true;
  }
  // Which Host wins differs between implementations (RFC 9112 §3.2: respond 400).
  if (hosts > 1) return 'http1.duplicate_host';
  // RFC 9112 §6.1: TE in an HTTP/1.0 message means faulty framing.
  if (te && req.httpVersion === '1.0') return 'http1.transfer_encoding_in_http10';
  const url = req.url ?? '';
  if (req.method === 'CONNECT') return connectTarget(req, url);
  if (url.charCodeAt(0) !== 47 /* / */) {
    if (url === '*') return req.method === 'OPTIONS' ? undefined : 'http1.invalid_url';
    return absoluteForm(req, url);
  }
  return undefined;
}

/**
 * CONNECT's authority-form target (RFC 9112 §3.2.3) is the authority: it replaces Host,
 * as Envoy's codec makes it :authority, and the request has no path.
 */
function connectTarget(req: IncomingMessage, url: string): string | undefined {
  if (!/:\d{1,5}$/.test(url) || url.includes('@') || !isValidAuthority(url)) return 'http1.invalid_url';
  req.headers.host = url;
  return undefined;
}

/**
 * Absolute-form (RFC 9112 §3.2.2): the authority of the target replaces Host, and the
 * request continues in origin-form, so no later hop can see two different authorities.
 */
function absoluteForm(req: IncomingMessage, url: string): string | undefined {
  const m = /^(https?):\/\/([^/?#]*)([^#]*)$/i.exec(url);
  if (!m) return 'http1.invalid_url';
  const authority = m[2]!;
  if (authority === '' || authority.includes('@') || !isValidAuthority(authority)) return 'http1.invalid_url';
  req.headers.host = authority;
  const rest = m[3]!;
  req.url = rest === '' ? '/' : rest.charCodeAt(0) === 63 /* ? */ ? `/${rest}` : rest;
  return undefined;
}

// RFC 3986 authority characters (as Envoy's check via nghttp2_check_authority):
// unreserved, sub-delims, ':', '@', '[', ']', '%'.
const AUTHORITY_OK = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=:@[]%') AUTHORITY_OK[c.charCodeAt(0)] = 1;

export function isValidAuthority(a: string): boolean {
  if (a.length === 0) return false;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c >= 128 || AUTHORITY_OK[c] === 0) return false;
  }
  return true;
}
