/**
 * Header names (and a few values) that most messages carry, kept as strings made once:
 * llhttp reports a header as offsets into the bytes read, and a name whose bytes match
 * one of these (exactly, so rawHeaders keeps the sender's spelling) costs a few byte
 * comparisons instead of a new string per request. Lowercase forms are looked up, not
 * computed, for the same reason.
 */

const NAMES = [
  'Host', 'User-Agent', 'Accept', 'Accept-Encoding', 'Accept-Language', 'Authorization', 'Cache-Control',
  'Connection', 'Content-Encoding', 'Content-Length', 'Content-Type', 'Cookie', 'Date', 'ETag', 'Etag', 'Expect',
  'Expires', 'If-Modified-Since', 'If-None-Match', 'Keep-Alive', 'Last-Modified', 'Location', 'Origin', 'Pragma',
  'Referer', 'Server', 'Set-Cookie', 'TE', 'Te', 'Trailer', 'Transfer-Encoding', 'Upgrade', 'Vary', 'Via',
  'X-Forwarded-For', 'X-Forwarded-Proto', 'X-Forwarded-Host', 'X-Request-Id', 'X-Request-ID', 'X-Real-IP',
  'Traceparent', 'Tracestate', 'Baggage', 'X-B3-TraceId', 'X-B3-SpanId', 'X-B3-ParentSpanId', 'X-B3-Sampled',
  'Grpc-Timeout', 'X-Envoy-Upstream-Service-Time', 'X-Envoy-Expected-Rq-Timeout-Ms', 'X-Envoy-Attempt-Count',
  'X-Forwarded-Client-Cert', 'Alt-Svc', 'Strict-Transport-Security', 'Access-Control-Allow-Origin',
];

const VALUES = ['keep-alive', 'close', 'Keep-Alive', 'Close', 'chunked', 'trailers', '*/*', 'text/plain', 'text/html', 'application/json', 'application/grpc', 'gzip', 'gzip, deflate', 'gzip, deflate, br', 'no-cache', '0', 'http', 'https', 'true'];

/** Strings made once, found by their exact bytes. */
class Interned {
  private readonly byLength: (string[] | undefined)[] = [];

  constructor(words: readonly string[]) {
    for (const w of words) (this.byLength[w.length] ??= []).push(w);
  }

  /** The bytes chunk[start, end) as a string: an interned one when they match it exactly. */
  get(chunk: Buffer, start: number, end: number): string {
    const candidates = this.byLength[end - start];
    if (candidates !== undefined) {
      for (let k = 0; k < candidates.length; k++) {
        const w = candidates[k]!;
        let i = 0;
        while (i < w.length && chunk[start + i] === w.charCodeAt(i)) i++;
        if (i === w.length) return w;
      }
    }
    return chunk.toString('latin1', start, end);
  }
}

const names = new Interned([...NAMES, ...NAMES.map((n) => n.toLowerCase())]);
const values = new Interned(VALUES);
const LOWER = new Map<string, string>();
for (const n of NAMES) {
  LOWER.set(n, n.toLowerCase());
  LOWER.set(n.toLowerCase(), n.toLowerCase());
}

/** A header name read by llhttp (offsets into `chunk`). */
export function headerName(chunk: Buffer, start: number, end: number): string {
  return names.get(chunk, start, end);
}

/** A header value read by llhttp (offsets into `chunk`). */
export function headerValue(chunk: Buffer, start: number, end: number): string {
  return values.get(chunk, start, end);
}

/** The lowercase form of a header name, without making one for the common names. */
export function lowerName(name: string): string {
  return LOWER.get(name) ?? name.toLowerCase();
}
