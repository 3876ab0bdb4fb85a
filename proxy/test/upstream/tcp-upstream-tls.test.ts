/**
 * tcp_proxy to a cluster whose transport socket is TLS (Istio's outbound TCP services:
 * transport_socket_matches pick mTLS for endpoints labelled tlsMode istio, with ALPN
 * istio-peer-exchange, istio). The upstream connection must be mTLS with the cluster's
 * certificate, SAN check and ALPN — it used to be plaintext, which a STRICT peer refuses.
 */
import t from 'tap';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { issueWorkload, mintRoot } from '../../../certs/src/index.js';
import { startProxyYaml } from '../helpers.js';

const indent = (pem: string, n: number) => pem.trim().split('\n').join(`\n${' '.repeat(n)}`);

async function exchange(port: number, payload: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(payload));
    let b = '';
    s.on('data', (d) => (b += d));
    s.on('close', () => resolve(b));
    // A refused upstream ends the client's connection (reset or close): what it got so far is the answer.
    s.on('error', () => resolve(b));
    setTimeout(() => s.destroy(), 5000).unref();
  });
}

t.test('tcp_proxy originates mTLS with the cluster\'s certificate, SAN check and ALPN', async (t) => {
  const root = await mintRoot({ trustDomain: 'cluster.local' });
  const mongo = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/bookinfo-mongodb' });
  const ratings = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/bookinfo-ratings' });
  const impostor = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/someone-else' });
  const seen: { peer: string | undefined; alpn: string | false | null }[] = [];
  const serve = (id: { chainPem: string; keyPem: string }) => tls.createServer({ cert: id.chainPem, key: id.keyPem, ca: [root.certPem], requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['istio-peer-exchange', 'istio'] }, (s) => {
    seen.push({ peer: s.getPeerCertificate().subjectaltname, alpn: s.alpnProtocol });
    s.on('error', () => undefined);
    s.once('data', (d) => s.end(`mongo:${d}`));
  });
  const good = serve(mongo);
  const bad = serve(impostor);
  for (const s of [good, bad]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => { good.close(); bad.close(); });
  const cluster = (name: string, port: number) => `
  - name: ${name}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: ${name}
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } }, metadata: { filter_metadata: { envoy.transport_socket_match: { tlsMode: istio } } } }] }]
    transport_socket_matches:
    - name: tlsMode-istio
      match: { tlsMode: istio }
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: outbound_.27017_._.mongodb.default.svc.cluster.local
          common_tls_context:
            alpn_protocols: [istio-peer-exchange, istio]
            tls_certificates:
            - certificate_chain:
                inline_string: |
                  ${indent(ratings.chainPem, 18)}
              private_key:
                inline_string: |
                  ${indent(ratings.keyPem, 18)}
            validation_context:
              match_subject_alt_names: [{ exact: spiffe://cluster.local/ns/default/sa/bookinfo-mongodb }]
              trusted_ca:
                inline_string: |
                  ${indent(root.certPem, 18)}
    - name: tlsMode-disabled
      match: {}
      transport_socket: { name: envoy.transport_sockets.raw_buffer }`;
  const listener = (name: string, c: string) => `
  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: ${c}, cluster: ${c} }`;
  const p = await startProxyYaml(t, `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:${listener('to-mongo', 'mongo')}${listener('to-impostor', 'impostor')}
  clusters:${cluster('mongo', (good.address() as net.AddressInfo).port)}${cluster('impostor', (bad.address() as net.AddressInfo).port)}
`);
  t.equal(await exchange(p.port('to-mongo'), 'find'), 'mongo:find', 'bytes went through the mTLS upstream');
  // istio-peer-exchange is not offered: pilotfish does not speak the exchange as a TCP client (Cluster.filters), and a
  // peer that accepted it would write its exchange header into the application's bytes.
  t.same(seen, [{ peer: 'URI:spiffe://cluster.local/ns/default/sa/bookinfo-ratings', alpn: 'istio' }], 'the upstream saw the cluster\'s client certificate and Istio\'s ALPN (istio)');
  t.equal(await exchange(p.port('to-impostor'), 'find'), '', 'a peer whose SAN does not match: the connection is refused, no bytes');
});
