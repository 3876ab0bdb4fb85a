import t from 'tap';
import * as https from 'node:https';
import type * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { endpointKey } from '../../../config/src/index.js';
import type { Host } from '../../src/cluster/endpoint-set.js';
import { existingRawPool } from '../../src/http1/upstream.js';
import { bootstrapYaml, get, staticCluster, type Scope } from '../helpers.js';
import { startProxyOn } from './paths.js';
import { makeMeshPki, PROXY_ID, UPSTREAM_ID, type MeshPki } from './mesh-pki.js';

// A sidecar's outbound hop is mTLS to the peer's sidecar (Istio: endpoints labelled
// tlsMode istio). On the raw HTTP/1.1 path that hop uses the raw pool over TLS, not undici:
// verified like undici's (SAN match, trust), kept alive, h2 never offered, principals recorded.


/** An mTLS origin answering with the client's SPIFFE ID; counts full handshakes and connections. */
async function startMtlsOrigin(t: Scope, pki: MeshPki, alpn: string[]): Promise<{ port: number; connections: number; resumed: number; protocols: (string | false | null)[] }> {
  const state = { port: 0, connections: 0, resumed: 0, protocols: [] as (string | false | null)[] };
  const server = https.createServer({
    cert: pki.upstream.chainPem, key: pki.upstream.keyPem, ca: pki.ca.certPem,
    requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', ALPNProtocols: alpn,
  }, (req, res) => {
    const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
    res.end(String(peer.subjectaltname ?? ''));
  });
  server.keepAliveTimeout = 30_000;
  server.on('secureConnection', (s: tls.TLSSocket) => {
    state.connections++;
    if (s.isSessionReused()) state.resumed++;
    state.protocols.push(s.alpnProtocol);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  state.port = (server.address() as AddressInfo).port;
  return state;
}

function tlsCluster(pki: MeshPki, port: number, san: string, alpn: string): string {
  return staticCluster('reviews', [port], `
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: [${alpn}]
          tls_certificates: [{ certificate_chain: { filename: ${join(pki.dir, 'cert.pem')} }, private_key: { filename: ${join(pki.dir, 'key.pem')} } }]
          validation_context:
            trusted_ca: { filename: ${join(pki.dir, 'ca.pem')} }
            match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "${san}" } }]`);
}

const ROUTES = `
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: reviews } }]`;

t.test('mTLS upstream on the raw pool: verified, kept alive, resumed, principals recorded, h2 never offered', async (t) => {
  const pki = await makeMeshPki(t);
  // The origin prefers h2: had the pool offered it (the context lists it), HTTP/1.1 bytes would meet an h2 server.
  const origin = await startMtlsOrigin(t, pki, ['h2', 'http/1.1']);
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES, tlsCluster(pki, origin.port, UPSTREAM_ID, 'h2, http/1.1')));
  for (let i = 0; i < 5; i++) {
    const r = await get(proxy.port(), `/r${i}`);
    t.equal(r.status, 200, `request ${i} answered`);
    t.match(r.body, `URI:${PROXY_ID}`, 'the origin verified our workload certificate');
  }
  t.equal(origin.connections, 1, 'five sequential requests share one upstream TLS connection');
  t.same(origin.protocols, ['http/1.1'], 'ALPN settled on http/1.1: h2 is not offered by an HTTP/1.1 pool');
  const cluster = proxy.server.snapshot.clusters.get('reviews')!;
  const host = cluster.endpoints.get(endpointKey('127.0.0.1', origin.port)) as Host;
  const pool = existingRawPool(host);
  t.ok(pool, 'the host is served by the raw pool');
  t.ok(pool!.sockets.isTls, 'over TLS');
  t.equal(host.upstream, undefined, 'undici never made a pool for it');
  t.equal(host.tlsPeerPrincipal, UPSTREAM_ID, 'the peer principal (Istio destination_principal) is recorded');
  t.equal(host.tlsLocalPrincipal, PROXY_ID, 'and our own (source_principal)');
  // A second connection (two requests at once) resumes the first one's session.
  const both = await Promise.all([get(proxy.port(), '/a'), get(proxy.port(), '/b')]);
  t.same(both.map((r) => r.status), [200, 200]);
  t.equal(origin.connections, 2, 'the concurrent request opened a second connection');
  t.equal(origin.resumed, 1, 'which resumed the TLS session instead of a full handshake');
  t.equal(cluster.stats.upstream_cx_http1_total.value, 2, 'both connections counted as HTTP/1.1 (Envoy\'s upstream_cx_http1_total)');
  t.equal(cluster.stats.upstream_cx_http2_total.value, 0);
});

t.test('an upstream with the wrong SPIFFE ID is a connection failure (503 UF), never served', async (t) => {
  const pki = await makeMeshPki(t);
  const origin = await startMtlsOrigin(t, pki, ['http/1.1']);
  const proxy = await startProxyOn('raw', t, bootstrapYaml(ROUTES, tlsCluster(pki, origin.port, 'spiffe://example.org/ns/default/sa/ratings', '"http/1.1"'), `
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${join(pki.dir, 'access.log')}
              log_format: { text_format_source: { inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS%\\n" } }`));
  const r = await get(proxy.port(), '/');
  t.equal(r.status, 503);
  t.match(r.body, /upstream connect error/);
  const stats = await get(proxy.adminPort!, '/stats?filter=cluster.reviews.upstream_cx');
  t.match(stats.body, /cluster\.reviews\.upstream_cx_total: 1\b/);
  t.match(stats.body, /cluster\.reviews\.upstream_cx_active: 0\b/, 'the failed connection is not left active');
  const { readFileSync } = await import('node:fs');
  const { until } = await import('../../../test-support/wait.js');
  await until('the access log line', () => { try { return readFileSync(join(pki.dir, 'access.log'), 'utf8').length > 0; } catch { return false; } }, { timeoutMs: 5000 });
  t.equal(readFileSync(join(pki.dir, 'access.log'), 'utf8').trim(), '503 UF', 'logged as an upstream connection failure');
});
