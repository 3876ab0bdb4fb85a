import * as net from 'node:net';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Scope } from '../helpers.js';

/**
 * True once `text` holds at least one complete HTTP/1.1 response (head plus the body its
 * Content-Length or chunked framing announces).
 */
export function completeResponse(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const head = text.slice(0, end);
  const body = text.slice(end + 4);
  if (/^HTTP\/1\.1 (1\d\d|204|304)/.test(head)) return true;
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl) return body.length >= Number(cl[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return /(^|\r\n)0\r\n\r\n/.test(body);
  return false; // delimited by close
}

/**
 * Sends raw bytes, collects everything until the peer closes, `done(text)` says the
 * exchange is complete, or `ms` passes. `ms` only bounds a peer that neither closes nor
 * completes: keep it generous (a loaded machine answers late, not never).
 */
export function rawExchange(port: number, data: string | Buffer | (string | Buffer)[], ms = 10_000, done?: (text: string) => boolean): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const timer = setTimeout(finish, ms);
    s.on('data', (c) => {
      chunks.push(c);
      if (done?.(Buffer.concat(chunks).toString('latin1'))) finish();
    });
    s.on('error', () => undefined);
    s.on('close', () => { closed = true; finish(); });
    s.on('end', () => { closed = true; finish(); });
    s.on('connect', () => {
      for (const d of Array.isArray(data) ? data : [data]) s.write(d);
    });
  });
}

export interface RecordingUpstream {
  readonly port: number;
  /** Every byte received, across all connections. */
  bytes(): string;
  /** Requests node's parser saw (method + url). */
  readonly requests: string[];
  reset(): void;
}

/** An HTTP/1.1 upstream that records the exact bytes it received before parsing them. */
export async function startRecordingUpstream(t: Scope): Promise<RecordingUpstream> {
  let raw: Buffer[] = [];
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
  });
  server.on('connection', (s: net.Socket) => s.on('data', (c: Buffer) => raw.push(c)));
  server.on('clientError', (_e, s: net.Socket) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return {
    port: (server.address() as AddressInfo).port,
    bytes: () => Buffer.concat(raw).toString('latin1'),
    requests,
    reset: () => { raw = []; requests.length = 0; },
  };
}

/** A raw TCP upstream that answers every connection with the given bytes and closes. */
export async function startRawUpstream(t: Scope, reply: () => string | Buffer): Promise<{ port: number }> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => {
      s.write(reply());
      setTimeout(() => s.destroy(), 50);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port };
}
