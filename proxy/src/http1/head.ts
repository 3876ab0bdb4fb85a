import { STATUS_CODES } from 'node:http';
import type { HeaderMap } from '../http/headers.js';

/**
 * HTTP/1.1 message heads written by the raw path: header names must be tokens and values
 * field-content (RFC 9110 §5.5), as node's writeHead and undici check; anything else
 * throws, and the caller answers with its usual protocol-error reply. One string is
 * built per head and written as latin1 (header values are bytes, not UTF-16).
 */

const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) return false;
  }
  return true;
}

/** field-content: HTAB, SP, VCHAR, obs-text; no CR, LF or NUL (the bytes that split a header). */
export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) return false;
  }
  return true;
}

export class InvalidHeaderError extends Error {
  readonly code = 'ERR_INVALID_CHAR';
}

function line(name: string, value: string): string {
  if (!isToken(name)) throw new InvalidHeaderError(`invalid header name ${JSON.stringify(name)}`);
  if (!isFieldValue(value)) throw new InvalidHeaderError(`invalid value for header ${name}`);
  return `${name}: ${value}\r\n`;
}

/** Appends every header of `h` (undefined values skipped, arrays as repeated lines). */
export function headerLines(h: HeaderMap, skip?: (name: string) => boolean): string {
  let out = '';
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    if (skip !== undefined && skip(k)) continue;
    if (typeof v === 'string') out += line(k, v);
    else for (const one of v) out += line(k, one);
  }
  return out;
}

export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}

let dateSecond = -1;
let dateValue = '';

/** The Date header value, formatted once per second. */
export function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateValue = new Date(s * 1000).toUTCString();
  }
  return dateValue;
}

/** The body of a message with this status (or to this request method) is always empty. */
export function statusHasNoBody(status: number, requestMethod: string): boolean {
  return requestMethod === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
