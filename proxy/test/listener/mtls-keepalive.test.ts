import t from 'tap';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueWorkload, mintRoot, type CaHandle, type MintedCert } from '../../../certs/src/index.js';
import { startUpstream, staticCluster } from '../helpers.js';
import { HTTP1_PATHS, startProxyOn } from '../http1/paths.js';

// A sidecar's inbound traffic is keep-alive mTLS: the client certificate is verified once,
// at the handshake, and every later request on the connection rides on that verdict.
// What an operator sees in /stats after N requests on one connection: one TLS connection,
// one handshake, one verification (a cache miss); a second connection from the same
// workload: one more handshake, answered from the verification cache.

const REQUESTS = 30;

interface Pki {
  readonly dir: string;
  readonly ca: CaHandle;
  readonly client: MintedCert;
}

async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'pf-mtls-ka-'));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const server = await issueWorkload({ ca, dns: ['proxy.test'], spiffeId: 'spiffe://example.org/ns/default/sa/proxy' });
  const client = await issueWorkload({ ca, spiffeId: 'spiffe://example.org/ns/default/sa/client' });
  writeFileSync(join(dir, 'server.crt'), server.chainPem);
  writeFileSync(join(dir, 'server.key'), server.keyPem);
  writeFileSync(join(dir, 'ca.crt'), ca.certPem);
  return { dir, ca, client };
}

function bootstrap(pki: Pki, upstreamPort: number): string {
  return `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: inbound
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: { tls_minimum_protocol_version: TLSv1_3 }
            tls_certificates: [{ certificate_chain: { filename: ${join(pki.dir, 'server.crt')} }, private_key: { filename: ${join(pki.dir, 'server.key')} } }]
            validation_context: { trusted_ca: { filename: ${join(pki.dir, 'ca.crt')} } }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          codec_type: AUTO
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: app } }]
  clusters:
${staticCluster('app', [upstreamPort])}
`;
}

/** The listener's counters from /stats, named as after "listener.<address>." (ssl.* included). */
async function tlsCounters(adminPort: number): Promise<Record<string, number>> {
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: adminPort, path: '/stats' }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  const out: Record<string, number> = {};
  for (const m of body.matchAll(/^listener\.127\.0\.0\.1_\d+\.((?:ssl\.)?[a-z0-9_]+): (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

function clientTls(pki: Pki): https.RequestOptions & http2.SecureClientSessionOptions {
  return { ca: pki.ca.certPem, cert: pki.client.chainPem, key: pki.client.keyPem, servername: 'proxy.test', minVersion: 'TLSv1.3' };
}

/** N sequential requests on one keep-alive HTTP/1.1 connection; returns bodies and how many sockets carried them. */
async function h1Requests(port: number, pki: Pki, n: number): Promise<{ bodies: string[]; sockets: number }> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<unknown>();
  const bodies: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      bodies.push(await new Promise<string>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port, path: `/r${i}`, agent, ...clientTls(pki) }, (res) => {
          sockets.add(res.socket);
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (b += c));
          res.on('end', () => resolve(`${res.statusCode} ${b}`));
        }).on('error', reject);
      }));
    }
  } finally {
    agent.destroy();
  }
  return { bodies, sockets: sockets.size };
}

/** N concurrent streams on one h2 connection (ALPN h2). */
async function h2Requests(port: number, pki: Pki, n: number): Promise<string[]> {
  const session = http2.connect(`https://127.0.0.1:${port}`, clientTls(pki));
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    return await Promise.all(Array.from({ length: n }, (_, i) => new Promise<string>((resolve, reject) => {
      const req = session.request({ ':path': `/s${i}` });
      let status = 0, b = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: string) => (b += c));
      req.on('end', () => resolve(`${status} ${b}`));
      req.on('error', reject);
    })));
  } finally {
    session.close();
  }
}

let pki: Pki;
t.before(async () => {
  pki = await makePki();
});
t.teardown(() => rmSync(pki.dir, { recursive: true, force: true }));

for (const path of HTTP1_PATHS) {
  t.test(`HTTP/1.1 (${path} path): ${REQUESTS} requests on one mTLS connection, one handshake, one verification`, async (t) => {
    const app = await startUpstream(t, 'app', (_req, res) => res.end('app'));
    const p = await startProxyOn(path, t, bootstrap(pki, app.port));
    const first = await h1Requests(p.port('inbound'), pki, REQUESTS);
    t.same(first.bodies, Array.from({ length: REQUESTS }, () => '200 app'));
    t.equal(first.sockets, 1, 'the client kept one connection');
    t.equal(app.requests.length, REQUESTS);
    let c = await tlsCounters(p.adminPort!);
    t.equal(c.downstream_cx_ssl_total, 1, 'one TLS connection');
    t.equal(c['ssl.handshake'], 1, 'one handshake');
    t.equal(c['ssl.verify_cache_miss'], 1, 'the client certificate was verified once');
    t.equal(c['ssl.verify_cache_hit'], 0, 'and not again per request');
    // The same workload connects again: a new handshake, its verdict from the cache.
    const second = await h1Requests(p.port('inbound'), pki, 3);
    t.same(second.bodies, ['200 app', '200 app', '200 app']);
    c = await tlsCounters(p.adminPort!);
    t.equal(c['ssl.handshake'], 2);
    t.equal(c['ssl.verify_cache_miss'], 1);
    t.equal(c['ssl.verify_cache_hit'], 1, 'the second connection was verified from the cache');
  });
}

t.test(`h2 by ALPN: ${REQUESTS} concurrent streams on one mTLS connection, one handshake, one verification`, async (t) => {
  const app = await startUpstream(t, 'app', (_req, res) => res.end('app'));
  const p = await startProxyOn('raw', t, bootstrap(pki, app.port));
  const bodies = await h2Requests(p.port('inbound'), pki, REQUESTS);
  t.same(bodies, Array.from({ length: REQUESTS }, () => '200 app'));
  t.equal(app.requests.length, REQUESTS);
  const c = await tlsCounters(p.adminPort!);
  t.equal(c.downstream_cx_ssl_total, 1);
  t.equal(c.downstream_cx_http2_total, 1, 'served as HTTP/2');
  t.equal(c['ssl.handshake'], 1);
  t.equal(c['ssl.verify_cache_miss'], 1);
  t.equal(c['ssl.verify_cache_hit'], 0);
});
