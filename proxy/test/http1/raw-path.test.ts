import t from 'tap';
import * as http from 'node:http';
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { bootstrapYaml, get, staticCluster, type Scope } from '../helpers.js';
import { completeResponse, rawExchange } from '../hardening/raw.js';
import { startProxyOn } from './paths.js';
import { until } from '../../../test-support/wait.js';

/**
 * The raw HTTP/1.1 path end to end over real sockets: a real origin (node:http), the
 * proxy built with PILOTFISH_HTTP1=raw, clients writing bytes. What a user checks: the
 * response, what the origin received, connection reuse, and the connection's fate.
 */

interface Origin {
  port: number;
  connections: number;
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }[];
}

async function startOrigin(t: Scope, handler: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, n: number) => void): Promise<Origin> {
  const o: Origin = { port: 0, connections: 0, requests: [] };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      o.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body, o.requests.length);
    });
  });
  server.on('connection', () => o.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  o.port = (server.address() as AddressInfo).port;
  return o;
}

const ROUTES = (extra = '') => `
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/missing" }
                direct_response: { status: 404, body: { inline_string: "nope" } }
              - match: { prefix: "/" }
                route: { cluster: up${extra} }`;

const echo = (_req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => {
  const out = body.length > 0 ? body : Buffer.from('hello');
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-len': String(body.length), 'content-length': String(out.length) });
  res.end(out);
};

/** Sends requests on one keep-alive connection, one after another, reading each response completely. */
class Client {
  private readonly socket: net.Socket;
  private buf = '';
  private waiter: (() => void) | undefined;
  closed = false;
  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => { this.buf += d; this.waiter?.(); });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => { this.closed = true; this.waiter?.(); });
  }
  /** Sends a request and reads its response (`noBody`: the answer to HEAD, whose Content-Length announces nothing). */
  async send(raw: string, noBody = false): Promise<string> {
    this.socket.write(raw);
    return this.read(noBody);
  }
  async read(noBody = false): Promise<string> {
    const done = (s: string) => (noBody ? s.includes('\r\n\r\n') : completeResponse(s));
    while (!done(this.buf) && !this.closed) await new Promise<void>((r) => (this.waiter = r));
    const text = this.buf;
    const end = noBody ? text.indexOf('\r\n\r\n') + 4 : responseLength(text);
    this.buf = text.slice(end);
    return text.slice(0, end);
  }
  destroy(): void {
    this.socket.destroy();
  }
}

function responseLength(text: string): number {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return text.length;
  const head = text.slice(0, end);
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl && !/^HTTP\/1\.1 (204|304)/.test(head)) return end + 4 + Number(cl[1]);
  const z = text.indexOf('\r\n0\r\n\r\n', end);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head) && z >= 0) return z + 7;
  return end + 4;
}

t.test('keep-alive downstream, pooled upstream, header edits', async (t) => {
  const origin = await startOrigin(t, echo);
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES(), staticCluster('up', [origin.port])));
  const c = new Client(proxy.port());
  t.teardown(() => c.destroy());
  for (let i = 0; i < 3; i++) {
    const r = await c.send(`GET /a?i=${i} HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, x-hop\r\nX-Hop: secret\r\nUser-Agent: t\r\n\r\n`);
    t.match(r, /^HTTP\/1\.1 200 OK\r\n/);
    t.match(r, /\r\nx-envoy-upstream-service-time: \d+\r\n/);
    t.match(r, /\r\nserver: pilotfish\r\n/);
    t.match(r, /\r\n\r\nhello$/);
    // node's HTTP server adds "keep-alive: timeout=N"; the raw path's responses never do.
    t.notMatch(r, /\r\nkeep-alive:/i, 'served by the raw path');
  }
  t.equal(origin.requests.length, 3);
  t.equal(origin.connections, 1, 'one pooled upstream connection served all three');
  const seen = origin.requests[2]!.headers;
  t.equal(seen.host, 'svc');
  t.equal(seen['x-hop'], undefined, 'a header named in Connection is hop-by-hop');
  t.equal(seen['x-forwarded-proto'], 'http');
  t.match(String(seen['x-request-id']), /^[0-9a-f-]{36}$/);
  t.equal(origin.requests[2]!.url, '/a?i=2');
  t.notOk(c.closed, 'client connection still open');
});

t.test('request bodies: content-length and chunked, streamed; large bodies both ways intact', async (t) => {
  const origin = await startOrigin(t, echo);
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES(), staticCluster('up', [origin.port])));
  const c = new Client(proxy.port());
  t.teardown(() => c.destroy());
  const r1 = await c.send('POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabcde');
  t.match(r1, /\r\nx-len: 5\r\n[\s\S]*\r\n\r\nabcde$/);
  const r2 = await c.send('POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n');
  t.match(r2, /\r\nx-len: 7\r\n[\s\S]*\r\n\r\nabcdefg$/);
  t.equal(origin.requests[1]!.headers['transfer-encoding'], 'chunked', 'a chunked body goes on chunked');

  // 4 MiB up and back, through the proxy's back-pressure on both sides.
  const big = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const res = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.port(), method: 'PUT', path: '/big', agent: false, headers: { 'content-length': String(big.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(big);
  });
  t.equal(res.status, 200);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.equal(sha(origin.requests[2]!.body), sha(big), 'the origin got the body byte for byte');
  t.equal(sha(res.body), sha(big), 'the client got it back byte for byte');
});

t.test('retries replay a buffered body; local replies and failures keep Envoy status codes', async (t) => {
  const origin = await startOrigin(t, (req, res, body, n) => {
    if (n === 1) {
      res.writeHead(503, { 'content-length': '4' });
      res.end('busy');
      return;
    }
    echo(req, res, body);
  });
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES(', retry_policy: { retry_on: "5xx", num_retries: 2 }'), staticCluster('up', [origin.port]) + staticCluster('dead', [1])));
  const c = new Client(proxy.port());
  t.teardown(() => c.destroy());
  const r = await c.send('POST /r HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\npayload');
  t.match(r, /^HTTP\/1\.1 200/);
  t.match(r, /\r\n\r\npayload$/);
  t.same(origin.requests.map((x) => x.body.toString()), ['payload', 'payload'], 'the body was sent again on the retry');
  const nf = await c.send('GET /missing HTTP/1.1\r\nHost: a\r\n\r\n');
  t.match(nf, /^HTTP\/1\.1 404/);
  t.match(nf, /\r\n\r\nnope$/);
  const head = await c.send('HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n', true);
  t.match(head, /^HTTP\/1\.1 200/);
  t.match(head, /\r\n\r\n$/, 'no body after a HEAD response');
  const after = await c.send('GET /after HTTP/1.1\r\nHost: a\r\n\r\n');
  t.match(after, /^HTTP\/1\.1 200[\s\S]*hello$/, 'the connection is still in sync after HEAD');
  const stats = JSON.parse((await get(proxy.adminPort!, '/stats?format=json&filter=^http\\.ingress\\.downstream_rq_[24]xx$')).body) as { stats: { name: string; value: number }[] };
  t.same(Object.fromEntries(stats.stats.map((s) => [s.name, s.value])), { 'http.ingress.downstream_rq_2xx': 3, 'http.ingress.downstream_rq_4xx': 1 }, 'the raw path counts requests like the node path');
});

t.test('pipelined requests are answered in order', async (t) => {
  const origin = await startOrigin(t, (req, res) => {
    // The first answer is the slowest: order must still hold.
    setTimeout(() => { res.writeHead(200, { 'content-length': String(req.url!.length) }); res.end(req.url); }, req.url === '/1' ? 60 : 0);
  });
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES(), staticCluster('up', [origin.port])));
  const req = (p: string, last = false) => `GET ${p} HTTP/1.1\r\nHost: a\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
  const r = await rawExchange(proxy.port(), req('/1') + req('/2') + req('/3', true));
  const bodies = [...r.text.matchAll(/\r\n\r\n(\/\d)/g)].map((m) => m[1]);
  t.same(bodies, ['/1', '/2', '/3']);
  t.ok(r.closed, 'closed after the request that asked for it');
});

t.test('connection limits: an oversized head is 431, a slow head 408, an idle connection closes', async (t) => {
  const origin = await startOrigin(t, echo);
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES(), staticCluster('up', [origin.port]), `
          max_request_headers_kb: 2
          request_headers_timeout: 0.3s
          common_http_protocol_options: { idle_timeout: 0.4s }`));
  const big = await rawExchange(proxy.port(), `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(4000)}\r\n\r\n`);
  t.match(big.text, /^HTTP\/1\.1 431/);
  t.ok(big.closed);
  const started = performance.now();
  const slow = await rawExchange(proxy.port(), 'GET / HTTP/1.1\r\nHost: a\r\n');
  t.match(slow.text, /^HTTP\/1\.1 408/);
  t.ok(slow.closed);
  t.ok(performance.now() - started >= 250, 'not before the timeout');
  const c = new Client(proxy.port());
  t.teardown(() => c.destroy());
  t.match(await c.send('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), /^HTTP\/1\.1 200/);
  await until('idle connection closed by the proxy', () => c.closed, { timeoutMs: 5000 });
  t.ok(c.closed);
});

t.test('upstream failures: refused connection is 503 UF, a reset after headers resets the client', async (t) => {
  const origin = await startOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const proxy = await startProxyOn('raw', t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/dead" }
                route: { cluster: dead }
              - match: { prefix: "/" }
                route: { cluster: up }`, staticCluster('up', [origin.port]) + staticCluster('dead', [1])));
  const dead = await rawExchange(proxy.port(), 'GET /dead HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  t.match(dead.text, /^HTTP\/1\.1 503/);
  t.match(dead.text, /upstream connect error/);
  const cut = await rawExchange(proxy.port(), 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  t.match(cut.text, /^HTTP\/1\.1 200[\s\S]*partial$/, 'what arrived was passed on');
  t.ok(cut.closed, 'then the client connection was reset');
});

t.test('the switch: PILOTFISH_HTTP1 picks the chain', async (t) => {
  const { makeHttpChain, RawHttp1Chain, http1PathFromEnv } = await import('../../src/http1/raw-chain.js');
  t.equal(http1PathFromEnv({}), 'raw', 'the raw path is the default');
  t.equal(http1PathFromEnv({ PILOTFISH_HTTP1: 'raw' }), 'raw');
  t.equal(http1PathFromEnv({ PILOTFISH_HTTP1: 'yes' }), 'raw', 'anything but "node" keeps the default');
  t.equal(http1PathFromEnv({ PILOTFISH_HTTP1: 'node' }), 'node');
  void makeHttpChain;
  t.ok(RawHttp1Chain);
});

t.test('mTLS: HTTP/1.1 after the handshake is served by the raw path, with the peer identity', async (t) => {
  const { issueWorkload, mintRoot } = await import('../../../certs/src/index.js');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const https = await import('node:https');
  const dir = mkdtempSync(join(tmpdir(), 'pf-raw-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const server = await issueWorkload({ ca, dns: ['proxy.test'], spiffeId: 'spiffe://example.org/ns/default/sa/proxy' });
  const client = await issueWorkload({ ca, dns: ['client.test'], spiffeId: 'spiffe://example.org/ns/default/sa/client' });
  writeFileSync(join(dir, 'cert.pem'), server.chainPem);
  writeFileSync(join(dir, 'key.pem'), server.keyPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const origin = await startOrigin(t, echo);
  const yaml = bootstrapYaml(ROUTES(), staticCluster('up', [origin.port]), `
          forward_client_cert_details: SANITIZE_SET
          set_current_client_cert_details: { uri: true }`).replace('    filter_chains:\n    - filters:', `    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{ certificate_chain: { filename: ${join(dir, 'cert.pem')} }, private_key: { filename: ${join(dir, 'key.pem')} } }]
            validation_context: { trusted_ca: { filename: ${join(dir, 'ca.pem')} } }
      filters:`);
  const proxy = await startProxyOn('raw', t, yaml);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  for (let i = 0; i < 2; i++) {
    const res = await new Promise<http.IncomingMessage & { text: string }>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: proxy.port(), path: `/tls${i}`, ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'proxy.test', agent }, (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (text += d));
        r.on('end', () => resolve(Object.assign(r, { text })));
      }).on('error', reject);
    });
    t.equal(res.statusCode, 200);
    t.equal(res.text, 'hello');
    t.equal(res.headers['keep-alive'], undefined, 'served by the raw path (node:http would add keep-alive: timeout=)');
  }
  const seen = origin.requests.at(-1)!.headers;
  t.equal(seen['x-forwarded-proto'], 'https');
  t.match(String(seen['x-forwarded-client-cert']), /URI=spiffe:\/\/example\.org\/ns\/default\/sa\/client/, 'XFCC from the verified peer');
  t.equal(origin.requests.length, 2);
});

t.test('Expect: 100-continue is answered by the proxy, the body follows', async (t) => {
  const origin = await startOrigin(t, echo);
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES(), staticCluster('up', [origin.port])));
  const s = net.connect(proxy.port(), '127.0.0.1');
  t.teardown(() => s.destroy());
  let text = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => (text += d));
  s.write('PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
  await until('100 Continue before the body is sent', () => text.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), { timeoutMs: 5000 });
  s.write('body');
  await until('the final response', () => /\r\n\r\nbody$/.test(text), { timeoutMs: 5000 });
  t.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  t.equal(origin.requests[0]!.headers.expect, undefined, 'the upstream does not see Expect');
  t.equal(origin.requests[0]!.body.toString(), 'body');
});

t.test('drain: the response in flight says connection: close, then the connection closes; idle ones close at once', async (t) => {
  const origin = await startOrigin(t, (req, res, body) => setTimeout(() => echo(req, res, body), req.url === '/slow' ? 300 : 0));
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES(), staticCluster('up', [origin.port])));
  const busy = new Client(proxy.port());
  const idle = new Client(proxy.port());
  t.teardown(() => { busy.destroy(); idle.destroy(); });
  t.match(await idle.send('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), /^HTTP\/1\.1 200/);
  const slow = busy.send('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
  // The origin holds /slow for 300 ms after it arrived: drain while it is in flight.
  await until('the slow request at the origin', () => origin.requests.some((x) => x.url === '/slow'), { timeoutMs: 5000 });
  const drained = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.adminPort!, method: 'POST', path: '/drain_listeners?graceful', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
    req.end();
  });
  t.equal(drained, 200);
  const r = await slow;
  t.match(r, /^HTTP\/1\.1 200/);
  t.match(r, /\r\nconnection: close\r\n/i, 'the in-flight response tells the client to go');
  await until('the busy connection closed after its response', () => busy.closed, { timeoutMs: 5000 });
  await until('the idle connection closed', () => idle.closed, { timeoutMs: 5000 });
  t.ok(busy.closed && idle.closed);
});
