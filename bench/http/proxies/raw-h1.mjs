// EXPERIMENT, not a proxy anyone should run: the floor for HTTP/1.1 proxying in Node
// when node:http and undici are left out. Raw net.Sockets, the header block found with
// indexOf and forwarded as bytes, Content-Length bodies only (no chunked, no upgrades,
// no hop-by-hop rewriting), one upstream keep-alive socket per in-flight request.
// It answers "how much of a Node proxy's CPU/request is the http machinery itself?"
// With --mtls-port it serves the same over TLS 1.3 with a required client certificate
// (OpenSSL's own chain check, nothing else): what Node's TLS layer adds per request.
// --batch-writes holds every write of one event-loop turn (sockets corked) until the turn's
// I/O callbacks are done (setImmediate uncorks them): the peers are woken once per turn,
// not once per write — on a VM a wake-up of an idle peer's CPU is an IPI, a VM exit.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { proxyArgs } from './args.mjs';

const { port, upstreamPort, mtls, batchWrites } = proxyArgs();
const CRLF2 = Buffer.from('\r\n\r\n');
const idle = [];

const corked = [];
let flushScheduled = false;
function flush() {
  flushScheduled = false;
  for (const s of corked) s.uncork();
  corked.length = 0;
}
function send(s, buf) {
  if (batchWrites) {
    if (s.writableCorked === 0) {
      s.cork();
      corked.push(s);
    }
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  s.write(buf);
}

function contentLength(head) {
  const s = head.toString('latin1').toLowerCase();
  const i = s.indexOf('\r\ncontent-length:');
  if (i < 0) return 0;
  return parseInt(s.slice(i + 17, s.indexOf('\r\n', i + 17)), 10) || 0;
}

function getUpstream() {
  const u = idle.pop();
  if (u) return u;
  const s = net.connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true });
  s.buf = null;
  s.onResponse = null;
  s.on('data', (d) => {
    s.buf = s.buf ? Buffer.concat([s.buf, d]) : d;
    const end = s.buf.indexOf(CRLF2);
    if (end < 0) return;
    const total = end + 4 + contentLength(s.buf.subarray(0, end));
    if (s.buf.length < total) return;
    const msg = s.buf.length === total ? s.buf : s.buf.subarray(0, total);
    s.buf = null;
    const cb = s.onResponse;
    s.onResponse = null;
    idle.push(s);
    cb(msg);
  });
  s.on('error', () => {});
  s.on('close', () => {
    const i = idle.indexOf(s);
    if (i >= 0) idle.splice(i, 1);
    if (s.onResponse) s.onResponse(null);
  });
  return s;
}

function serve(c) {
  let buf = null, busy = false;
  const next = () => {
    if (busy || !buf) return;
    const end = buf.indexOf(CRLF2);
    if (end < 0) return;
    const total = end + 4 + contentLength(buf.subarray(0, end));
    if (buf.length < total) return;
    const req = buf.subarray(0, total);
    buf = buf.length === total ? null : buf.subarray(total);
    busy = true;
    const u = getUpstream();
    u.onResponse = (res) => {
      busy = false;
      if (!res) { c.destroy(); return; }
      send(c, res);
      next();
    };
    send(u, req);
  };
  c.on('data', (d) => { buf = buf ? Buffer.concat([buf, d]) : d; next(); });
  c.on('error', () => {});
}

net.createServer({ noDelay: true }, serve).listen(port, '127.0.0.1');
if (mtls) {
  tls.createServer({
    noDelay: true, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true,
    ca: readFileSync(mtls.ca), cert: readFileSync(mtls.cert), key: readFileSync(mtls.key),
  }, serve).listen(mtls.port, '127.0.0.1');
}
process.on('SIGTERM', () => process.exit(0));
