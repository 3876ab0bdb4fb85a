import t from 'tap';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { endpointKey } from '../../../config/src/index.js';
import type { Host } from '../../src/cluster/endpoint-set.js';
import { existingRawPool } from '../../src/http1/upstream.js';
import { sleep, until } from '../../../test-support/wait.js';
import { bootstrapYaml, staticCluster, type Scope } from '../helpers.js';
import { startProxyOn } from './paths.js';
import { makeMeshPki, UPSTREAM_ID } from './mesh-pki.js';

// The raw pool reads upstream sockets into one reused buffer (net's `onread`, plaintext and
// TLS). What a user would see if a body chunk were handed on without being copied out of it:
// a large response arriving with some of its bytes replaced by later ones, when the client is
// slow enough that chunks wait in the proxy while the next read lands. So: several MB of
// non-repeating bytes, in irregular writes, to a client that keeps stopping, must arrive
// byte for byte, content-length and chunked, over a plaintext and an mTLS upstream; and a
// client that stops reading must stop the upstream too (back-pressure through onread).


/** Non-repeating bytes (a 32-bit LCG's high byte): a misplaced read cannot match by accident, as a short-period pattern would at a 64 KB read boundary. */
function distinctive(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** Write sizes the origin cycles through: tiny, around TLS records and around 64 KB reads. */
const WRITE_SIZES = [1, 777, 16_384, 65_549, 3_000, 16_385, 131_072, 5];

interface Origin {
  port: number;
  connections: number;
  /** Bytes of body written so far by the latest /stream response. */
  written: number;
}

type Server = http.Server | https.Server;

/**
 * GET /cl/<MB>/<seed> and /chunked/<MB>/<seed>: that many MB of distinctive() bytes, framed
 * by content-length or chunked, written in WRITE_SIZES pieces and waiting for 'drain'.
 */
function serve(origin: Origin): http.RequestListener {
  return (req, res) => {
    const [, framing, mb, seed] = (req.url ?? '').split('/');
    const body = distinctive(Number(mb) * 1024 * 1024, Number(seed));
    res.writeHead(200, framing === 'cl' ? { 'content-length': String(body.length) } : {});
    origin.written = 0;
    let off = 0;
    let i = 0;
    const pump = (): void => {
      while (off < body.length) {
        const n = Math.min(WRITE_SIZES[i++ % WRITE_SIZES.length]!, body.length - off);
        const ok = res.write(body.subarray(off, off + n));
        off += n;
        origin.written = off;
        if (!ok) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  };
}

async function listen(t: Scope, server: Server, origin: Origin): Promise<Origin> {
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => origin.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  origin.port = (server.address() as AddressInfo).port;
  return origin;
}

async function plainUpstream(t: Scope): Promise<{ origin: Origin; cluster: string }> {
  const origin: Origin = { port: 0, connections: 0, written: 0 };
  await listen(t, http.createServer(serve(origin)), origin);
  return { origin, cluster: staticCluster('up', [origin.port]) };
}

/** An mTLS origin (TLS 1.3, client certificate required) and a cluster that verifies its SPIFFE ID. */
async function mtlsUpstream(t: Scope): Promise<{ origin: Origin; cluster: string }> {
  const { dir, ca, upstream } = await makeMeshPki(t);
  const origin: Origin = { port: 0, connections: 0, written: 0 };
  const server = https.createServer({
    cert: upstream.chainPem, key: upstream.keyPem, ca: ca.certPem,
    requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', ALPNProtocols: ['http/1.1'],
  }, serve(origin));
  await listen(t, server, origin);
  return {
    origin,
    cluster: staticCluster('up', [origin.port], `
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: ["http/1.1"]
          tls_certificates: [{ certificate_chain: { filename: ${join(dir, 'cert.pem')} }, private_key: { filename: ${join(dir, 'key.pem')} } }]
          validation_context:
            trusted_ca: { filename: ${join(dir, 'ca.pem')} }
            match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "${UPSTREAM_ID}" } }]`),
  };
}

const ROUTES = `
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up, timeout: 0s } }]`;

/** Reads a response body as a slow client: after every `stopEvery` bytes it stops reading for `stopMs`. */
function readSlowly(body: NodeJS.ReadableStream & { pause(): unknown; resume(): unknown }, stopEvery: number, stopMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sinceStop = 0;
    body.on('data', (d: Buffer) => {
      chunks.push(d);
      sinceStop += d.length;
      if (sinceStop >= stopEvery) {
        sinceStop = 0;
        body.pause();
        setTimeout(() => body.resume(), stopMs);
      }
    });
    body.on('end', () => resolve(Buffer.concat(chunks)));
    body.on('error', reject);
  });
}

/** GET through the proxy as a slow client. */
function slowGet(agent: http.Agent, port: number, path: string, stopEvery: number, stopMs: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      readSlowly(res, stopEvery, stopMs).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
    });
    req.on('error', reject);
  });
}

/** The same over HTTP/2 (h2c prior knowledge): the downstream keeps chunks queued in its session until they are framed and sent. */
function slowGetH2(session: http2.ClientHttp2Session, path: string, stopEvery: number, stopMs: number): Promise<{ status: number; body: Buffer }> {
  const req = session.request({ ':path': path });
  let status = 0;
  req.on('response', (h) => (status = Number(h[':status'])));
  return readSlowly(req, stopEvery, stopMs).then((body) => ({ status, body }));
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function hostOf(proxy: Awaited<ReturnType<typeof startProxyOn>>, port: number): Host {
  return proxy.server.snapshot.clusters.get('up')!.endpoints.get(endpointKey('127.0.0.1', port)) as Host;
}

for (const [name, upstream] of [['plaintext', plainUpstream], ['mTLS', mtlsUpstream]] as const) {
  t.test(`${name} upstream: a large streamed body reaches a slow client byte for byte`, async (t) => {
    const { origin, cluster } = await upstream(t);
    const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES, cluster));
    const agent = new http.Agent({ keepAlive: true });
    t.teardown(() => agent.destroy());
    const h2 = http2.connect(`http://127.0.0.1:${proxy.port()}`);
    t.teardown(() => h2.destroy());
    // Four at once, each on its own upstream connection: reads of one land while another's
    // chunks still wait for its slow client.
    const mb = 6;
    const downloads = (['HTTP/1.1', 'HTTP/2'] as const).flatMap((client, c) => (['cl', 'chunked'] as const).map((framing, f) => {
      const seed = 1 + c * 2 + f;
      const path = `/${framing}/${mb}/${seed}`;
      const r = client === 'HTTP/1.1' ? slowGet(agent, proxy.port(), path, 512 * 1024, 15) : slowGetH2(h2, path, 512 * 1024, 15);
      return r.then((r) => ({ ...r, what: `${client} client, ${framing}`, expected: distinctive(mb * 1024 * 1024, seed) }));
    }));
    for (const r of await Promise.all(downloads)) {
      t.equal(r.status, 200);
      t.equal(r.body.length, r.expected.length, `${r.what}: every byte arrived`);
      t.equal(firstDifference(r.body, r.expected), -1, `${r.what}: byte for byte (the index of the first wrong byte otherwise)`);
    }
    const opened = origin.connections;
    const again = await slowGet(agent, proxy.port(), `/cl/${mb}/9`, 512 * 1024, 15);
    t.equal(firstDifference(again.body, distinctive(mb * 1024 * 1024, 9)), -1, 'one more, byte for byte');
    t.equal(origin.connections, opened, 'on a connection that had carried a large body (reused)');
    const pool = existingRawPool(hostOf(proxy, origin.port));
    t.ok(pool, 'served by the raw pool');
    t.equal(pool!.sockets.isTls, name === 'mTLS');
  });

  t.test(`${name} upstream: a client that stops reading stops the upstream`, async (t) => {
    const { origin, cluster } = await upstream(t);
    const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES, cluster));
    const mb = 192;
    const got = await new Promise<{ received: number; destroy(): void }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: proxy.port(), path: `/cl/${mb}/7`, agent: false }, (res) => {
        let received = 0;
        res.on('data', (d: Buffer) => {
          received += d.length;
          if (received >= 1024 * 1024) {
            res.pause();
            res.removeAllListeners('data');
            resolve({ received, destroy: () => req.destroy() });
          }
        });
      });
      req.on('error', () => undefined);
      req.once('error', reject);
    });
    t.teardown(() => got.destroy());
    // The origin keeps writing until the socket buffers on the way fill up, then waits.
    let last = -1;
    let steady = 0;
    await until('the origin to stop writing', async () => {
      await sleep(100);
      steady = origin.written === last ? steady + 1 : 0;
      last = origin.written;
      return steady >= 5 || origin.written === mb * 1024 * 1024;
    }, { timeoutMs: 30_000, intervalMs: 1 });
    t.ok(origin.written < mb * 1024 * 1024 / 2, `the origin stopped after ${(origin.written / 1048576).toFixed(1)} of ${mb} MB while the client had read ${(got.received / 1048576).toFixed(1)} MB`);
  });
}
