import fc from 'fast-check';
import * as net from 'node:net';
import * as tls from 'node:tls';
import t from 'tap';
import { parseClientHello } from '../../src/listener/client-hello.js';
import { sniffHttp } from '../../src/listener/http-sniff.js';

/** The first bytes a real TLS client (Node's OpenSSL) sends, captured on a plain TCP server. */
async function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const got = new Promise<Buffer>((resolve) => {
      server.once('connection', (s) => {
        let buf = Buffer.alloc(0);
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (parseClientHello(buf).kind !== 'need_more') {
            resolve(buf);
            s.destroy();
          }
        });
      });
    });
    const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, rejectUnauthorized: false, ...opts });
    client.on('error', () => undefined);
    const hello = await got;
    client.destroy();
    return hello;
  } finally {
    server.close();
  }
}

t.test('tls_inspector reads SNI and ALPN from a real ClientHello', async (t) => {
  const hello = await captureHello({ servername: 'Reviews.Default.svc.cluster.local', ALPNProtocols: ['istio-peer-exchange', 'h2', 'http/1.1'] });
  const r = parseClientHello(hello);
  t.same(r, { kind: 'tls', serverName: 'reviews.default.svc.cluster.local', alpn: ['istio-peer-exchange', 'h2', 'http/1.1'] });
  // Every strict prefix is "need more", never a wrong answer.
  for (let n = 0; n < hello.length; n += 7) t.equal(parseClientHello(hello.subarray(0, n)).kind, 'need_more', `prefix ${n}`);
  // A client that sends no SNI (an IP literal) and no ALPN.
  const bare = parseClientHello(await captureHello({}));
  t.same(bare, { kind: 'tls', serverName: undefined, alpn: [] });
});

t.test('a ClientHello split across two TLS records is reassembled', async (t) => {
  const hello = await captureHello({ servername: 'split.example.com', ALPNProtocols: ['h2'] });
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const cut = 40;
  const rec = (b: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
  const split = Buffer.concat([rec(body.subarray(0, cut)), rec(body.subarray(cut))]);
  t.same(parseClientHello(split), { kind: 'tls', serverName: 'split.example.com', alpn: ['h2'] });
  t.equal(parseClientHello(split.subarray(0, 5 + cut + 3)).kind, 'need_more');
});

t.test('plaintext is not TLS', async (t) => {
  t.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'not_tls');
  t.equal(parseClientHello(Buffer.from('PRI * HTTP/2.0\r\n')).kind, 'not_tls');
  t.equal(parseClientHello(Buffer.from([0x16, 0x02])).kind, 'not_tls', 'SSLv2-era version byte');
});

t.test('parseClientHello never throws, on any bytes or on mutations of a real hello', async () => {
  const hello = await captureHello({ servername: 'fuzz.example.com', ALPNProtocols: ['h2'] });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
    parseClientHello(Buffer.from([0x16, 0x03, 0x01, ...bytes]));
    parseClientHello(Buffer.from(bytes));
  }), { numRuns: 2000 });
  fc.assert(fc.property(fc.nat(hello.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(hello.length), (i, v, cut) => {
    const b = Buffer.from(hello);
    b[i] = v;
    const r = parseClientHello(b.subarray(0, cut));
    if (r.kind === 'tls' && r.serverName !== undefined) return typeof r.serverName === 'string';
    return true;
  }), { numRuns: 3000 });
});

t.test('http_inspector: HTTP/1.x request lines and the h2c preface', async (t) => {
  t.same(sniffHttp(Buffer.from('GET /x HTTP/1.1\r\nHost: a\r\n\r\n')), { kind: 'http', protocol: 'http/1.1' });
  t.same(sniffHttp(Buffer.from('POST /x HTTP/1.0\r\n')), { kind: 'http', protocol: 'http/1.0' });
  t.same(sniffHttp(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), { kind: 'http', protocol: 'h2c' });
  t.same(sniffHttp(Buffer.from('PRI * HTTP/2')), { kind: 'need_more' });
  t.same(sniffHttp(Buffer.from('GET /x HT')), { kind: 'need_more' });
  t.same(sniffHttp(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')), { kind: 'not_http' });
  t.same(sniffHttp(Buffer.from([0x16, 0x03, 0x01, 0x00])), { kind: 'not_http' }, 'TLS is rejected at once');
  t.same(sniffHttp(Buffer.from('\x00\x01binary')), { kind: 'not_http' });
});

t.test('sniffHttp never throws and is stable under extension once decided', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 50 }), (a, b) => {
    const first = sniffHttp(Buffer.from(a));
    if (first.kind === 'need_more') return true;
    const later = sniffHttp(Buffer.concat([Buffer.from(a), Buffer.from(b)]));
    return JSON.stringify(first) === JSON.stringify(later);
  }), { numRuns: 3000 });
});
