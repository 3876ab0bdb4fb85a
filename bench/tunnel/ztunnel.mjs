// A destination-side ztunnel stand-in for bench/tunnel/run.ts: HBONE (HTTP/2 CONNECT over
// mTLS) on ADDRESS:15008, each stream joined to a TCP connection to its :authority.
// Prints "ready" when listening. Env: ADDRESS, PORT, KEY, CERT, CA (PEM file paths).
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';

const env = process.env;
const server = http2.createSecureServer({
  key: readFileSync(env.KEY), cert: readFileSync(env.CERT), ca: readFileSync(env.CA),
  requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'],
  settings: { maxConcurrentStreams: 1000, initialWindowSize: 1 << 20 },
});
server.on('session', (s) => {
  s.on('error', () => undefined);
  s.once('connect', () => s.setLocalWindowSize(16 << 20));
});
server.on('stream', (stream, headers) => {
  stream.on('error', () => undefined);
  const a = String(headers[':authority']);
  const i = a.lastIndexOf(':');
  const up = net.connect({ host: a.slice(0, i), port: Number(a.slice(i + 1)), noDelay: true });
  up.on('error', () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
  up.once('connect', () => {
    stream.respond({ ':status': 200 });
    up.pipe(stream);
    stream.pipe(up);
  });
  stream.once('close', () => up.destroy());
});
server.listen(Number(env.PORT), env.ADDRESS, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
