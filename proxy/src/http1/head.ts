import { STATUS_CODES } from 'node:http';
import type { HeaderMap } from '../http/headers.js';

/**
 * HTTP/1.1 message heads written by the raw path: header names must be tokens and values
 * field-content (RFC 9110 §5.5), as node's writeHead and undici check; anything else
 * throws, and the caller answers with its usual protocol-error reply. Heads are written
 * as latin1 bytes (header values are bytes, not UTF-16) into one Buffer per head.
 */

const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;

/** Anything a header value may not hold (RFC 9110 field-content: HTAB, SP, VCHAR, obs-text). */
const INVALID_VALUE_BYTE = /[^\t\x20-\x7e\x80-\xff]/;
/** From this length on, a value is checked by INVALID_VALUE_BYTE and copied by latin1Write. */
const LONG_VALUE = 64;

/**
 * The last long values found valid, compared by identity first. A filter's constant header is
 * the same string object on every request (Istio's x-envoy-peer-metadata: ~1.5 KB of base64
 * node metadata on every outbound request), and a string never changes: checked once, it is
 * copied (Buffer#write, ~50 ns) instead of checked byte by byte in JavaScript (~3.5 µs; the regular
 * expression alone ~0.8 µs). Eight entries, replaced in turn: a client's long values (cookies,
 * tokens) pass through without keeping a constant out for more than a few requests.
 */
const checkedLongValues: string[] = ['', '', '', '', '', '', '', ''];
let nextChecked = 0;

function checkedBefore(value: string): boolean {
  for (let i = 0; i < checkedLongValues.length; i++) if (checkedLongValues[i] === value) return true;
  return false;
}

export class InvalidHeaderError extends Error {
  readonly code = 'ERR_INVALID_CHAR';
}

/**
 * Builds one message head at a time in a scratch buffer that lives as long as the process:
 * names and values are checked and copied in the same pass (no string per line, no
 * concatenation), then `take` hands out a right-sized Buffer — with room for the body
 * when the caller sends head and body in one write. Never re-entered: a head is built
 * from start to take() without calling out.
 */
export class HeadWriter {
  private buf = Buffer.allocUnsafeSlow(4096);
  private pos = 0;

  /** Starts a new head. */
  start(): this {
    this.pos = 0;
    return this;
  }

  get length(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** Text this module composes itself (request/status line, framing): copied as latin1, not checked. */
  text(s: string): this {
    this.room(s.length);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
    this.pos = p;
    return this;
  }

  /** `METHOD target HTTP/1.1\r\n`; a target with a space or control byte throws (as undici refuses such a path). */
  requestLine(method: string, target: string): this {
    this.text(method);
    this.room(target.length + 1);
    const b = this.buf;
    let p = this.pos;
    b[p++] = 32;
    for (let i = 0; i < target.length; i++) {
      const c = target.charCodeAt(i);
      if (c <= 32 || c === 127 || c > 255) throw new InvalidHeaderError('invalid request target');
      b[p++] = c;
    }
    this.pos = p;
    return this.text(' HTTP/1.1\r\n');
  }

  /** `name: value\r\n`; the name must be a token and the value field-content, else InvalidHeaderError. */
  header(name: string, value: string): this {
    const n = name.length;
    const v = value.length;
    if (n === 0) throw new InvalidHeaderError('empty header name');
    this.room(n + v + 4);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = name.charCodeAt(i);
      if (c >= 128 || TOKEN[c] === 0) throw new InvalidHeaderError(`invalid header name ${JSON.stringify(name)}`);
      b[p++] = c;
    }
    b[p++] = 58; // :
    b[p++] = 32;
    if (v >= LONG_VALUE) {
      if (!checkedBefore(value)) {
        if (INVALID_VALUE_BYTE.test(value)) throw new InvalidHeaderError(`invalid value for header ${name}`);
        checkedLongValues[nextChecked] = value;
        nextChecked = (nextChecked + 1) & 7;
      }
      p += b.write(value, p, v, 'latin1');
    } else {
      for (let i = 0; i < v; i++) {
        const c = value.charCodeAt(i);
        if ((c < 32 && c !== 9) || c === 127 || c > 255) throw new InvalidHeaderError(`invalid value for header ${name}`);
        b[p++] = c;
      }
    }
    b[p++] = 13;
    b[p++] = 10;
    this.pos = p;
    return this;
  }

  /** Every header of `h` (undefined values skipped, arrays as repeated lines; `skip` leaves names out). */
  headers(h: HeaderMap, skip?: (name: string) => boolean): this {
    for (const k in h) {
      const v = h[k];
      if (v === undefined) continue;
      if (skip !== undefined && skip(k)) continue;
      if (typeof v === 'string') this.header(k, v);
      else for (let i = 0; i < v.length; i++) this.header(k, v[i]!);
    }
    return this;
  }

  /** The head so far in a new Buffer of its length plus `extra` bytes (left for the caller to fill, after the head). */
  take(extra = 0): Buffer {
    const out = Buffer.allocUnsafe(this.pos + extra);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }
}

/** The process's head writer (one thread, heads are built synchronously). */
export const headWriter = new HeadWriter();

export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}

const statusLines: string[] = [];

/** `HTTP/1.1 <status> <reason>\r\n`, made once per status code. */
export function statusLine(status: number): string {
  return (statusLines[status] ??= `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`);
}

let dateSecond = -1;
let dateValue = '';
let dateLineValue = '';

/** The Date header value, formatted once per second. */
export function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateValue = new Date(s * 1000).toUTCString();
    dateLineValue = `date: ${dateValue}\r\n`;
  }
  return dateValue;
}

/** `date: <now>\r\n`, formatted once per second. */
export function dateLine(): string {
  httpDate();
  return dateLineValue;
}

/** The body of a message with this status (or to this request method) is always empty. */
export function statusHasNoBody(status: number, requestMethod: string): boolean {
  return requestMethod === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
