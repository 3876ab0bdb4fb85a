import t from 'tap';
import * as http from 'node:http';
import * as https from 'node:https';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { issueWorkload, mintRoot } from '../../../certs/src/index.js';
import { startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

// Filter chains chosen per connection on one listener: TLS chains by SNI, each with its
// own certificate (tls_inspector), and a plaintext chain beside them; and a listener on
// a Unix pipe, as Istio's bootstrap and Envoy's examples write them.

function hcm(prefix: string, cluster: string): string {
  return `
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${prefix}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: ${cluster} } }]`;
}

function tlsSocket(dir: string, name: string): string {
  return `
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [{ certificate_chain: { filename: ${join(dir, `${name}.crt`)} }, private_key: { filename: ${join(dir, `${name}.key`)} } }]`;
}

function get(opts: https.RequestOptions & { tls?: boolean }): Promise<{ body: string; cert?: string }> {
  return new Promise((resolve, reject) => {
    const mod = opts.tls ? https : http;
    const req = mod.get({ agent: false, ...opts }, (res) => {
      const cert = opts.tls ? (res.socket as TLSSocket).getPeerCertificate().subjectaltname : undefined;
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ body: b, ...(cert ? { cert } : {}) }));
    });
    req.on('error', reject);
  });
}

t.test('TLS filter chains chosen by SNI, each with its own certificate, beside a plaintext chain', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-sni-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  for (const [name, dns] of [['api', 'api.example.com'], ['wild', '*.example.com']] as const) {
    const leaf = await issueWorkload({ ca, dns: [dns], spiffeId: `spiffe://example.org/ns/default/sa/${name}` });
    writeFileSync(join(dir, `${name}.crt`), leaf.chainPem);
    writeFileSync(join(dir, `${name}.key`), leaf.keyPem);
  }
  const ups = await Promise.all(['api', 'wild', 'plain'].map((n) => startUpstream(t, n, (_req, res) => res.end(n))));
  const p = await startProxyYaml(t, `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }
    filter_chains:
    - name: api
      filter_chain_match: { server_names: [api.example.com] }${tlsSocket(dir, 'api')}
      filters:${hcm('api', 'api')}
    - name: wild
      filter_chain_match: { server_names: ["*.example.com"] }${tlsSocket(dir, 'wild')}
      filters:${hcm('wild', 'wild')}
    - name: plain
      filter_chain_match: { transport_protocol: raw_buffer }
      filters:${hcm('plain', 'plain')}
  clusters:
${staticCluster('api', [ups[0]!.port])}
${staticCluster('wild', [ups[1]!.port])}
${staticCluster('plain', [ups[2]!.port])}
`);
  const port = p.port();
  const api = await get({ tls: true, host: '127.0.0.1', port, servername: 'api.example.com', ca: ca.certPem, path: '/' });
  t.equal(api.body, 'api');
  t.match(api.cert, /DNS:api\.example\.com/, 'the api chain presents its own certificate');
  t.match(api.cert, /sa\/api/);
  const other = await get({ tls: true, host: '127.0.0.1', port, servername: 'shop.example.com', ca: ca.certPem, path: '/' });
  t.equal(other.body, 'wild');
  t.match(other.cert, /DNS:\*\.example\.com/, 'the wildcard chain presents the wildcard certificate');
  t.equal((await get({ host: '127.0.0.1', port, path: '/' })).body, 'plain', 'plaintext goes to the raw_buffer chain');
  // A TLS client with a name no chain serves: no chain matches, the connection is closed.
  await t.rejects(get({ tls: true, host: '127.0.0.1', port, servername: 'example.net', ca: ca.certPem, path: '/' }));
  const stats = await get({ host: '127.0.0.1', port: p.adminPort!, path: '/stats?filter=no_filter_chain_match' });
  t.match(stats.body, /no_filter_chain_match: 1/, 'the refused connection is counted');
  // TLS counters: in /stats under Envoy's names, and in the Prometheus exposition with Envoy's tags.
  const all = (await get({ host: '127.0.0.1', port: p.adminPort!, path: '/stats' })).body;
  t.match(all, /listener\.127\.0\.0\.1_\d+\.downstream_cx_ssl_total: 2/, 'two TLS connections were served');
  t.match(all, /listener\.127\.0\.0\.1_\d+\.ssl\.handshake: [1-9]/);
  const prom = (await get({ host: '127.0.0.1', port: p.adminPort!, path: '/stats/prometheus' })).body;
  t.match(prom, /envoy_listener_ssl_handshake\{envoy_listener_address="127\.0\.0\.1_\d+"\} [1-9]/, 'ssl.handshake reaches Prometheus');
  t.match(prom, /envoy_listener_downstream_cx_ssl_total\{envoy_listener_address="127\.0\.0\.1_\d+"[^}]*\} 2/);
  t.match(prom, /envoy_listener_no_filter_chain_match(_total)?\{[^}]*\} 1/);
});

t.test('a listener on a Unix pipe', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-pipe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'proxy.sock');
  writeFileSync(path, 'stale'); // a leftover file from an earlier run must not stop the bind
  const up = await startUpstream(t, 'up', (_req, res) => res.end('over a pipe'));
  await startProxyYaml(t, `
static_resources:
  listeners:
  - name: uds
    address: { pipe: { path: ${path}, mode: 384 } }
    filter_chains:
    - filters:${hcm('uds', 'up')}
  clusters:
${staticCluster('up', [up.port])}
`);
  t.equal((await get({ socketPath: path, path: '/' })).body, 'over a pipe');
  t.equal(statSync(path).mode & 0o777, 0o600, 'pipe.mode (384 = 0600) applied to the socket file');
});

t.test('mTLS in front of tcp_proxy (Istio\'s inbound TCP chains): verified peers reach the upstream, others never do', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-tlstcp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'cluster.local' });
  const server = await issueWorkload({ ca, spiffeId: 'spiffe://cluster.local/ns/default/sa/reviews' });
  const client = await issueWorkload({ ca, spiffeId: 'spiffe://cluster.local/ns/default/sa/productpage' });
  const other = await issueWorkload({ ca: await mintRoot({ trustDomain: 'evil.example' }), spiffeId: 'spiffe://evil.example/ns/x/sa/y' });
  writeFileSync(join(dir, 'srv.crt'), server.chainPem);
  writeFileSync(join(dir, 'srv.key'), server.keyPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const seen: string[] = [];
  const echo = net.createServer((s) => s.on('data', (d) => { seen.push(String(d)); s.write(`echo:${d}`); }));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const p = await startProxyYaml(t, `
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
            alpn_protocols: [istio-peer-exchange, istio]
            tls_certificates: [{ certificate_chain: { filename: ${join(dir, 'srv.crt')} }, private_key: { filename: ${join(dir, 'srv.key')} } }]
            validation_context: { trusted_ca: { filename: ${join(dir, 'ca.pem')} } }
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: inbound_tcp, cluster: db }
  clusters:
${staticCluster('db', [(echo.address() as net.AddressInfo).port])}
`);
  const talk = (opts: tls.ConnectionOptions): Promise<{ got: string; alpn: string | false }> => new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: p.port('inbound'), ca: ca.certPem, servername: 'reviews', ALPNProtocols: ['istio-peer-exchange', 'istio'],
      // Istio peers check the SPIFFE URI, not a host name.
      checkServerIdentity: () => undefined, ...opts }, () => s.write('hello'));
    let got = '';
    s.on('data', (d) => { got += d; if (got.length >= 10) s.end(); });
    s.on('error', () => undefined);
    s.on('close', () => resolve({ got, alpn: s.alpnProtocol ?? false }));
  });
  const ok = await talk({ cert: client.chainPem, key: client.keyPem });
  t.equal(ok.got, 'echo:hello', 'a peer with a certificate from the trust domain is proxied');
  t.equal(ok.alpn, 'istio-peer-exchange', 'the context\'s ALPN is offered');
  t.equal((await talk({})).got, '', 'no client certificate: nothing proxied');
  t.equal((await talk({ cert: other.chainPem, key: other.keyPem })).got, '', 'a certificate from another CA: nothing proxied');
  t.same(seen, ['hello'], 'the upstream saw only the verified peer');
});

t.test('a TLS chain never serves plaintext (it used to fall back to HTTP/1.1 when the first byte was not a ClientHello)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-tlsonly-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const leaf = await issueWorkload({ ca, dns: ['api.example.com'], spiffeId: 'spiffe://example.org/ns/default/sa/api' });
  writeFileSync(join(dir, 'api.crt'), leaf.chainPem);
  writeFileSync(join(dir, 'api.key'), leaf.keyPem);
  const up = await startUpstream(t, 'up', (_req, res) => res.end('secret'));
  const p = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: tls
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    -${tlsSocket(dir, 'api').replace(/^\n      /, ' ')}
      filters:${hcm('tls', 'up')}
  clusters:
${staticCluster('up', [up.port])}
`);
  await t.rejects(get({ host: '127.0.0.1', port: p.port('tls'), path: '/' }), 'plain HTTP to the TLS chain gets no answer');
  t.equal(up.requests.length, 0, 'nothing reached the upstream');
  const ok = await get({ tls: true, host: '127.0.0.1', port: p.port('tls'), servername: 'api.example.com', ca: ca.certPem, path: '/' });
  t.equal(ok.body, 'secret', 'TLS is served');
});
