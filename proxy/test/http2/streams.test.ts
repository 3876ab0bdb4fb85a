import t from 'tap';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { bootstrapYaml, get, staticCluster, type Scope } from '../helpers.js';
import { H2_VARIANTS, h2c, request, startProxyH2, type H2Variant } from './paths.js';
import { eventually, sleep } from '../../../test-support/wait.js';

/**
 * HTTP/2 downstreams end to end over real sockets, on each variant (core stream API with
 * undici or the raw upstream pool, and the compat API): real origins (node:http and an
 * h2c one), the proxy in-process, node's http2 client. What a user checks: responses,
 * bodies and trailers, what the origin received, flow control holding either side back,
 * resets in both directions, and the stats.
 */

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

interface Origin {
  port: number;
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }[];
  /** Requests to /hold-body wait for this before reading their body. */
  releaseBody: () => void;
  /** Bytes the origin's /big response handed to its socket so far (it honours back-pressure). */
  bigWritten: number;
  closedEarly: number;
}

async function startOrigin(t: Scope): Promise<Origin> {
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  const o: Origin = { port: 0, seen: [], releaseBody: () => release(), bigWritten: 0, closedEarly: 0 };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/big') {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const total = 32 * MiB;
      const pump = (): void => {
        while (o.bigWritten < total) {
          o.bigWritten += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.writeHead(200, { 'content-length': String(total) });
      pump();
      return;
    }
    if (url === '/open') {
      // A response that never ends by itself: the client's reset must reach here.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      res.on('close', () => {
        if (!res.writableEnded) o.closedEarly++;
      });
      return;
    }
    if (url === '/reset') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial', () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    const read = (): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        o.seen.push({ method: req.method ?? '', url, headers: req.headers, body });
        if (url === '/trailers') {
          res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
          res.write('body');
          res.addTrailers({ 'x-checksum': 'c0ffee' });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha': sha(body), 'x-upstream': 'h1', 'set-cookie': ['a=1', 'b=2'] });
        res.end(url.startsWith('/n/') ? url : `got ${body.length}`);
      });
    };
    if (url === '/hold-body') void released.then(read);
    else read();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  o.port = (server.address() as AddressInfo).port;
  return o;
}

/** An h2c origin answering like a gRPC server: a message, then grpc-status in trailers. */
async function startGrpcLikeOrigin(t: Scope): Promise<number> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers[':path'] === '/svc.Sized/Trailers') {
      // A body of known length, then trailers.
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': '4' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'beef' }));
      stream.end('body');
      return;
    }
    if (headers[':path'] === '/svc.Sized/Plain') {
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': '4' });
      stream.end('body');
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': `ok ${String(headers[':path'])}` }));
    stream.end(Buffer.from([0, 0, 0, 0, 1, 9]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

async function setup(t: Scope, v: H2Variant): Promise<{ origin: Origin; port: number; admin: number }> {
  const origin = await startOrigin(t);
  const grpcPort = await startGrpcLikeOrigin(t);
  const p = await startProxyH2(v, t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/missing" }
                direct_response: { status: 404, body: { inline_string: "nope" } }
              - match: { prefix: "/svc." }
                route: { cluster: grpc }
              - match: { prefix: "/" }
                route: { cluster: up }`,
  staticCluster('up', [origin.port]) + staticCluster('grpc', [grpcPort], `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }`)));
  return { origin, port: p.port(), admin: p.adminPort! };
}

async function stat(admin: number, name: string): Promise<number> {
  const body = (await get(admin, '/stats')).body;
  const m = new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)$`, 'm').exec(body);
  return m ? Number(m[1]) : 0;
}

for (const v of H2_VARIANTS) {
  t.test(v.name, async (t) => {
    const { origin, port, admin } = await setup(t, v);

    t.test('a GET: the origin sees an HTTP/1.1 request, the client an HTTP/2 response', async (t) => {
      const s = h2c(t, port);
      const r = await request(s, { ':path': '/hello?x=1', ':authority': 'svc.local', 'x-in': 'v' });
      t.equal(r.status, 200);
      t.equal(r.body.toString(), 'got 0');
      t.equal(r.headers['x-upstream'], 'h1');
      t.same(r.headers['set-cookie'], ['a=1', 'b=2'], 'repeated headers kept');
      t.equal(r.headers.connection, undefined, 'no connection-specific header in HTTP/2');
      t.equal(r.headers['keep-alive'], undefined);
      const seen = origin.seen.at(-1)!;
      t.equal(seen.url, '/hello?x=1');
      t.equal(seen.headers.host, 'svc.local', ':authority became host');
      t.equal(seen.headers['x-in'], 'v');
      t.equal(seen.headers['x-forwarded-proto'], 'http');
      t.notOk(Object.keys(seen.headers).some((k) => k.startsWith(':')), 'no pseudo-header upstream');
    });

    t.test('request bodies arrive whole, with or without content-length', async (t) => {
      const s = h2c(t, port);
      const body = randomBytes(MiB + 123);
      const a = await request(s, { ':method': 'POST', ':path': '/upload', ':authority': 'x' }, body);
      t.equal(a.status, 200);
      t.equal(a.headers['x-sha'], sha(body));
      const up = origin.seen.at(-1)!;
      t.ok(up.headers['content-length'] === String(body.length) || up.headers['transfer-encoding'] === 'chunked', 'the origin got a framed body');
      const b = await request(s, { ':method': 'PUT', ':path': '/upload', ':authority': 'x', 'content-length': String(body.length) }, body);
      t.equal(b.headers['x-sha'], sha(body));
      t.equal(origin.seen.at(-1)!.headers['content-length'], String(body.length));
    });

    t.test('a slow origin holds the client back (the proxy does not buffer the upload)', async (t) => {
      const s = h2c(t, port);
      const body = randomBytes(32 * MiB);
      const st = s.request({ ':method': 'POST', ':path': '/hold-body', ':authority': 'x' });
      st.on('error', () => undefined);
      const headers = new Promise<http2.IncomingHttpHeaders>((r) => st.on('response', r));
      for (let i = 0; i < body.length; i += 64 * 1024) st.write(body.subarray(i, i + 64 * 1024));
      st.end();
      // Let the proxy take what flow control allows, then look at what the client still holds.
      let last = -1;
      for (let i = 0; i < 100 && st.writableLength !== last; i++) {
        last = st.writableLength;
        await sleep(200);
      }
      // undici's HTTP/1.1 body writer (PILOTFISH_HTTP1=node only) once took the whole upload into
      // its socket's buffer on a loaded CI host; pilotfish's own pool is held to it.
      t.ok(st.writableLength > 12 * MiB, `the client still holds ${(st.writableLength / MiB).toFixed(1)} MiB of 32`,
        v.http1 === 'node' ? { todo: 'undici may buffer a held upload in its socket when the host is loaded' } : {});
      origin.releaseBody();
      const h = await headers;
      t.equal(h['x-sha'], sha(body), 'then every byte arrives');
      st.resume();
    });

    t.test('a slow client holds the origin back (the proxy does not buffer the download)', async (t) => {
      const s = h2c(t, port);
      const st = s.request({ ':path': '/big', ':authority': 'x' });
      st.on('error', () => undefined);
      await new Promise((r) => st.once('response', r));
      st.pause();
      let last = -1;
      for (let i = 0; i < 100 && origin.bigWritten !== last; i++) {
        last = origin.bigWritten;
        await sleep(200);
      }
      t.ok(origin.bigWritten < 20 * MiB, `the origin could hand over only ${(origin.bigWritten / MiB).toFixed(1)} MiB of 32`);
      let received = 0;
      st.on('data', (c: Buffer) => (received += c.length));
      st.resume();
      await new Promise((r) => st.once('end', r));
      t.equal(received, 32 * MiB, 'then the whole body arrives');
    });

    t.test('trailers: gRPC status from an HTTP/2 origin, chunked trailers from an HTTP/1.1 one', async (t) => {
      const s = h2c(t, port);
      const g = await request(s, { ':method': 'POST', ':path': '/svc.Echo/Say', ':authority': 'x', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
      t.equal(g.status, 200);
      t.equal(g.headers['content-type'], 'application/grpc');
      t.same(g.body, Buffer.from([0, 0, 0, 0, 1, 9]));
      // undici's HTTP/2 client completes on the stream's 'end' with empty trailers (client-h2.js); pilotfish's own HTTP/2 pool (upstream/h2-pool.ts) keeps them.
      t.test('grpc-status reaches the client', { todo: v.http1 === 'node' ? "undici's HTTP/2 client drops an HTTP/2 upstream's trailers" : false }, async (t) => {
        t.equal(g.trailers?.['grpc-status'], '0');
        t.equal(g.trailers?.['grpc-message'], 'ok /svc.Echo/Say');
      });
      const h = await request(s, { ':path': '/trailers', ':authority': 'x' });
      t.equal(h.body.toString(), 'body');
      t.equal(h.trailers?.['x-checksum'], 'c0ffee');
    });

    t.test("an HTTP/2 origin's trailers after a content-length body reach a client that did not send te: trailers (as Envoy)", async (t) => {
      const s = h2c(t, port);
      t.test('the trailers arrive', { todo: v.http1 === 'node' ? "undici's HTTP/2 client drops an HTTP/2 upstream's trailers" : false }, async (t) => {
        const r = await request(s, { ':path': '/svc.Sized/Trailers', ':authority': 'x' });
        t.equal(r.status, 200);
        t.equal(r.body.toString(), 'body');
        t.equal(r.headers['content-length'], '4');
        t.equal(r.trailers?.['x-checksum'], 'beef');
      });
      const plain = await request(s, { ':path': '/svc.Sized/Plain', ':authority': 'x' });
      t.equal(plain.status, 200);
      t.equal(plain.body.toString(), 'body', 'a response without trailers ends as before');
      t.equal(plain.rstCode, 0);
      t.same(plain.trailers ?? {}, {}, 'and brings none');
    });

    t.test('expect: 100-continue is answered before the body is sent', { skip: v.http2 === 'node' ? 'the compat path forwards the expect header, which undici refuses (the core path strips it, as Envoy)' : false }, async (t) => {
      const s = h2c(t, port);
      const st = s.request({ ':method': 'POST', ':path': '/upload', ':authority': 'x', expect: '100-continue' }, { endStream: false });
      st.on('error', () => undefined);
      await new Promise((r) => st.once('continue', r));
      st.end('after continue');
      const h = await new Promise<http2.IncomingHttpHeaders>((r) => st.on('response', r));
      t.equal(h[':status'], 200);
      t.equal(h['x-sha'], sha(Buffer.from('after continue')));
      t.equal(origin.seen.at(-1)!.headers.expect, undefined, 'the answered expectation is not forwarded');
      st.resume();
    });

    t.test('a local reply to an upload ends the stream without reading the body', async (t) => {
      const s = h2c(t, port);
      const r = await request(s, { ':method': 'POST', ':path': '/missing', ':authority': 'x' }, randomBytes(4 * MiB));
      t.equal(r.status, 404);
      t.equal(r.body.toString(), 'nope');
      const after = await request(s, { ':path': '/n/after', ':authority': 'x' });
      t.equal(after.body.toString(), '/n/after', 'the session goes on');
    });

    t.test('the client resets a stream: the origin request is cancelled, counted as rx_reset', async (t) => {
      const before = await stat(admin, 'http.ingress.downstream_rq_rx_reset');
      const closedBefore = origin.closedEarly;
      const s = h2c(t, port);
      const st = s.request({ ':path': '/open', ':authority': 'x' });
      st.on('error', () => undefined);
      await new Promise((r) => st.once('data', r));
      st.close(http2.constants.NGHTTP2_CANCEL);
      t.ok(await eventually(() => origin.closedEarly > closedBefore, { timeoutMs: 5000 }), 'the origin saw its request go away');
      t.ok(await eventually(async () => (await stat(admin, 'http.ingress.downstream_rq_rx_reset')) > before, { timeoutMs: 5000 }), 'downstream_rq_rx_reset counted');
      const next = await request(s, { ':path': '/n/next', ':authority': 'x' });
      t.equal(next.body.toString(), '/n/next', 'other streams of the session are unaffected');
    });

    t.test('the origin fails after the headers: the client sees RST_STREAM INTERNAL_ERROR', async (t) => {
      const before = await stat(admin, 'http.ingress.downstream_rq_tx_reset');
      const s = h2c(t, port);
      const r = await request(s, { ':path': '/reset', ':authority': 'x' });
      t.equal(r.status, 200);
      t.equal(r.body.toString(), 'partial');
      t.equal(r.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
      t.equal(await stat(admin, 'http.ingress.downstream_rq_tx_reset'), before + 1);
    });

    t.test('128 concurrent streams on one session, each answered with its own response', async (t) => {
      const s = h2c(t, port);
      const before = await stat(admin, 'http.ingress.downstream_rq_http2_total');
      const rs = await Promise.all(Array.from({ length: 128 }, (_, i) => request(s, { ':path': `/n/${i}`, ':authority': 'x' })));
      t.same(rs.map((r) => r.body.toString()), Array.from({ length: 128 }, (_, i) => `/n/${i}`));
      t.equal(await stat(admin, 'http.ingress.downstream_rq_http2_total'), before + 128, 'downstream_rq_http2_total');
    });
  });
}
