/**
 * A minimal RFC 6455 WebSocket client and echo server for tests (node:crypto for the
 * accept key; unfragmented frames; client frames masked, server frames not).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const acceptKey = (key: string) => createHash('sha1').update(key + GUID).digest('base64');

export interface Frame { opcode: number; payload: Buffer }

export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (mask ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  else if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + ext);
  const body = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([head, body]);
}

/** Incremental frame parser: feed bytes, get whole frames. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) { if (b.length < 4) break; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) break; len = Number(b.readBigUInt64BE(2)); off = 10; }
      const masked = (b[1]! & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (b.length < need) break;
      let payload = b.subarray(off + (masked ? 4 : 0), need);
      if (masked) {
        const key = b.subarray(off, off + 4);
        const p = Buffer.allocUnsafe(len);
        for (let i = 0; i < len; i++) p[i] = payload[i]! ^ key[i & 3]!;
        payload = p;
      } else payload = Buffer.from(payload);
      out.push({ opcode: b[0]! & 0x0f, payload });
      this.buf = b.subarray(need);
    }
    return out;
  }
}

export interface EchoServer {
  readonly port: number;
  readonly sockets: Set<Duplex>;
  /** Handshake requests as the server saw them. */
  readonly handshakes: http.IncomingHttpHeaders[];
  paused: boolean;
  close(): Promise<void>;
}

/** Echoes every text/binary message; answers close with close; greets with "welcome". */
export async function startEchoServer(tls?: { cert: string; key: string }): Promise<EchoServer> {
  const plain = (_req: http.IncomingMessage, res: http.ServerResponse) => res.writeHead(426).end('upgrade required');
  const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, plain) : http.createServer(plain);
  const sockets = new Set<Duplex>();
  const handshakes: http.IncomingHttpHeaders[] = [];
  const state: EchoServer = {
    port: 0, sockets, handshakes, paused: false,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    handshakes.push(req.headers);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${acceptKey(String(req.headers['sec-websocket-key']))}\r\nx-upstream: echo\r\n\r\n`);
    socket.write(encodeFrame(1, Buffer.from('welcome'), false));
    const reader = new FrameReader();
    const onData = (c: Buffer) => {
      for (const f of reader.push(c)) {
        if (f.opcode === 8) {
          socket.end(encodeFrame(8, f.payload, false));
          return;
        }
        if (f.opcode === 1 || f.opcode === 2) socket.write(encodeFrame(f.opcode, f.payload, false));
      }
    };
    if (head.length > 0) onData(head);
    socket.on('data', onData);
    if (state.paused) socket.pause();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (state as { port: number }).port = (server.address() as AddressInfo).port;
  return state;
}

export interface WsClient {
  readonly socket: net.Socket;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly key: string;
  /** Next message (text or binary); rejects on close. */
  next(): Promise<Frame>;
  send(data: string | Buffer): boolean;
  close(): Promise<Frame | undefined>;
}

/** Opens a WebSocket through `port`; resolves after the response head (any status). */
export function connectWs(port: number, path = '/ws', extra: Record<string, string> = {}): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', reject);
    const lines = [`GET ${path} HTTP/1.1`, 'host: ws.test', 'connection: Upgrade', 'upgrade: websocket', 'sec-websocket-version: 13', `sec-websocket-key: ${key}`,
      ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`)];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    let buf: Buffer = Buffer.alloc(0);
    const onHead = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHead);
      const [status, ...hs] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const h of hs) headers[h.slice(0, h.indexOf(':')).toLowerCase()] = h.slice(h.indexOf(':') + 1).trim();
      const reader = new FrameReader();
      const queue: Frame[] = [];
      const waiters: { resolve: (f: Frame) => void; reject: (e: Error) => void }[] = [];
      let closed: Frame | undefined;
      let ended = false;
      const deliver = (frames: Frame[]) => {
        for (const f of frames) {
          if (f.opcode === 8) closed = f;
          const w = waiters.shift();
          if (w) w.resolve(f); else queue.push(f);
        }
      };
      socket.on('data', (d: Buffer) => deliver(reader.push(d)));
      socket.on('end', () => {
        ended = true;
        for (const w of waiters.splice(0)) w.reject(new Error('closed'));
      });
      deliver(reader.push(buf.subarray(end + 4)));
      resolve({
        socket, status: Number(status!.split(' ')[1]), headers, key,
        next: () => {
          const f = queue.shift();
          if (f) return Promise.resolve(f);
          if (ended) return Promise.reject(new Error('closed'));
          return new Promise((res, rej) => waiters.push({ resolve: res, reject: rej }));
        },
        send: (d) => socket.write(encodeFrame(typeof d === 'string' ? 1 : 2, typeof d === 'string' ? Buffer.from(d) : d, true)),
        close: async () => {
          socket.write(encodeFrame(8, Buffer.from([0x03, 0xe8]), true));
          for (;;) {
            if (closed) break;
            try {
              const f = await new Promise<Frame>((res, rej) => { const q = queue.shift(); if (q) res(q); else if (ended) rej(new Error('closed')); else waiters.push({ resolve: res, reject: rej }); });
              if (f.opcode === 8) break;
            } catch { break; }
          }
          await new Promise<void>((r) => (ended ? r() : socket.once('end', () => r())));
          socket.end();
          return closed;
        },
      });
    };
    socket.on('data', onHead);
  });
}

/** A TCP echo server. */
export async function startTcpEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => undefined);
    s.once('close', () => socks.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
  };
}
