// EXPERIMENT, not a proxy anyone should run: the floor for HTTP/1.1 proxying in Node
// when node:http and undici are left out. Raw net.Sockets, the header block found with
// indexOf and forwarded as bytes, Content-Length bodies only (no chunked, no upgrades,
// no hop-by-hop rewriting), one upstream keep-alive socket per in-flight request.
// It answers "how much of a Node proxy's CPU/request is the http machinery itself?"
// With --mtls-port it serves the same over TLS 1.3 with a required client certificate
// (OpenSSL's own chain check, nothing else): what Node's TLS layer adds per request.
// With --h2-port it serves h2c there too, through node:http2's core API (raw-h2.mjs):
// the floor for h2c.
// --batch-writes holds every write of one event-loop turn (sockets corked) until the turn's
// I/O callbacks are done (setImmediate uncorks them): the peers are woken once per turn,
// not once per write — on a VM a wake-up of an idle peer's CPU is an IPI, a VM exit.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { proxyArgs } from './args.mjs';
import { messageLength, upstreamPool, writer } from './raw-upstream.mjs';
import { serveH2c } from './raw-h2.mjs';

const { port, upstreamPort, mtls, batchWrites, h2Port } = proxyArgs();
const send = writer(batchWrites);
const getUpstream = upstreamPool(upstreamPort);

function serve(c) {
  let buf = null, busy = false;
  const next = () => {
    if (busy || !buf) return;
    const total = messageLength(buf);
    if (total < 0) return;
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
if (h2Port) serveH2c(h2Port, getUpstream, send);
if (mtls) {
  tls.createServer({
    noDelay: true, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true,
    ca: readFileSync(mtls.ca), cert: readFileSync(mtls.cert), key: readFileSync(mtls.key),
  }, serve).listen(mtls.port, '127.0.0.1');
}
process.on('SIGTERM', () => process.exit(0));
