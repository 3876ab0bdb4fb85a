/**
 * http_inspector: tells plaintext HTTP/1.x and HTTP/2 prior knowledge (h2c) apart from
 * other TCP bytes by the first request line, as Envoy's does, so a filter chain can be
 * chosen by `application_protocols: [http/1.1]` or `[h2c]`. It never throws.
 */

export type HttpSniffResult =
  | { readonly kind: 'http'; readonly protocol: 'http/1.0' | 'http/1.1' | 'h2c' }
  | { readonly kind: 'need_more' }
  | { readonly kind: 'not_http' };

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** Envoy's http_inspector reads at most 64 KiB before giving up; a request line longer than this is not worth waiting for. */
export const MAX_HTTP_SNIFF = 8 * 1024;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function sniffHttp(buf: Buffer): HttpSniffResult {
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (n > 0 && buf.compare(H2_PREFACE, 0, n, 0, n) === 0) {
    return buf.length >= H2_PREFACE.length ? { kind: 'http', protocol: 'h2c' } : { kind: 'need_more' };
  }
  const eol = buf.indexOf(0x0a);
  if (eol < 0) {
    if (buf.length > MAX_HTTP_SNIFF) return { kind: 'not_http' };
    // Reject early on bytes that can never start a method (binary protocols, TLS).
    const sp = buf.indexOf(0x20);
    const method = buf.toString('latin1', 0, sp < 0 ? buf.length : sp);
    return method.length === 0 || TOKEN.test(method) ? { kind: 'need_more' } : { kind: 'not_http' };
  }
  const line = buf.toString('latin1', 0, eol > 0 && buf[eol - 1] === 0x0d ? eol - 1 : eol);
  const parts = line.split(' ');
  if (parts.length !== 3 || !TOKEN.test(parts[0]!) || parts[1] === '') return { kind: 'not_http' };
  if (parts[2] === 'HTTP/1.1') return { kind: 'http', protocol: 'http/1.1' };
  if (parts[2] === 'HTTP/1.0') return { kind: 'http', protocol: 'http/1.0' };
  return { kind: 'not_http' };
}
