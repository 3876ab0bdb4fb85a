/**
 * Istio's cluster shapes, from YAML through the config decoders to real connections:
 * an outbound cluster with the tlsMode-istio / tlsMode-disabled transport_socket_matches
 * and endpoint metadata as EDS sends it, and the PassthroughCluster (ORIGINAL_DST).
 */
import t from 'tap';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import { Diagnostics, decodeCluster, flattenLoadAssignment, parseConfigText } from '../../../config/src/index.js';
import { issueWorkload, mintRoot, SecretStore } from '../../../certs/src/index.js';
import { ClusterRuntime } from '../../src/cluster/cluster.js';
import { StatsStore } from '../../src/stats/stats.js';
import { upstreamTlsBuilder } from '../../src/upstream/tls-builder.js';
import { nameServer } from './helpers.js';

function decode(yaml: string) {
  const diag = new Diagnostics();
  const c = decodeCluster(parseConfigText(yaml, 'yaml', diag), diag, 'cluster');
  if (!c || diag.errors.length > 0) throw new Error(JSON.stringify(diag.errors));
  return { c, warnings: diag.warnings.map((w) => w.path) };
}

const indent = (pem: string, n: number) => pem.trim().split('\n').join(`\n${' '.repeat(n)}`);

async function get(d: Dispatcher): Promise<string> {
  try {
    const r = await d.request({ path: '/', method: 'GET', headers: { host: 'reviews.default.svc.cluster.local:9080' } });
    return await r.body.text();
  } catch (e) {
    return `error ${(e as { code?: string }).code ?? (e as Error).message}`;
  }
}

t.test('outbound cluster with Istio transport_socket_matches: labelled endpoint mTLS, the other plaintext', async (t) => {
  const root = await mintRoot({ trustDomain: 'cluster.local' });
  const server = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews' });
  const client = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage' });
  // A stand-in for the peer sidecar's inbound chain, which accepts Istio's ALPN; the client must offer the cluster's
  // alpn_protocols as Envoy does (undici's own connector would offer http/1.1 only).
  const mtls = https.createServer({ cert: server.chainPem, key: server.keyPem, ca: [root.certPem], requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['istio', 'http/1.1'] },
    (req, res) => res.end(`mtls from ${(req.socket as TLSSocket).getPeerCertificate().subjectaltname} alpn ${(req.socket as TLSSocket).alpnProtocol}`));
  await new Promise<void>((r) => mtls.listen(0, '127.0.0.1', r));
  const mtlsPort = (mtls.address() as AddressInfo).port;
  const plain = await nameServer('plaintext', { host: '127.0.0.1' });
  const secrets = new SecretStore({ pollIntervalMs: 0 });
  let rt: ClusterRuntime | undefined;
  t.teardown(async () => {
    await rt?.destroy(); await rt?.close(); secrets.close(); await plain.close();
    mtls.closeAllConnections(); await new Promise((r) => mtls.close(r));
  });

  const { c } = decode(`
name: outbound|9080||reviews.default.svc.cluster.local
type: STATIC
connect_timeout: 10s
lb_policy: LEAST_REQUEST
load_assignment:
  cluster_name: outbound|9080||reviews.default.svc.cluster.local
  endpoints:
  - locality: { region: r1, zone: z1 }
    lb_endpoints:
    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${mtlsPort} } } }
      metadata:
        filter_metadata:
          envoy.transport_socket_match: { tlsMode: istio }
          istio: { workload: reviews-v1;default;reviews;v1;Kubernetes }
    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${plain.port} } } }
      metadata:
        filter_metadata:
          istio: { workload: legacy;default;reviews;;Kubernetes }
transport_socket_matches:
- name: tlsMode-istio
  match: { tlsMode: istio }
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      sni: outbound_.9080_._.reviews.default.svc.cluster.local
      common_tls_context:
        alpn_protocols: [istio-peer-exchange, istio]
        tls_certificates:
        - certificate_chain:
            inline_string: |
              ${indent(client.chainPem, 14)}
          private_key:
            inline_string: |
              ${indent(client.keyPem, 14)}
        validation_context:
          match_subject_alt_names: [{ exact: spiffe://cluster.local/ns/default/sa/bookinfo-reviews }]
          trusted_ca:
            inline_string: |
              ${indent(root.certPem, 14)}
- name: tlsMode-disabled
  match: {}
  transport_socket: { name: envoy.transport_sockets.raw_buffer, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer } }
`);
  t.same(c.transportSocketMatches.map((m) => [m.name, m.transportSocket !== undefined]), [['tlsMode-istio', true], ['tlsMode-disabled', false]]);
  const eps = flattenLoadAssignment(c.loadAssignment!);
  t.same(eps.map((e) => e.transportSocketMatch), [{ tlsMode: 'istio' }, undefined], 'EDS metadata reaches the endpoint model');
  const runtime = new ClusterRuntime(c, eps, new StatsStore(), undefined, { upstreamTls: upstreamTlsBuilder(secrets, { log: () => {} }) });
  rt = runtime;
  const results = await Promise.all(eps.map((e) => get(runtime.dispatcherFor(runtime.endpoints.get(e.key)!))));
  t.same(results, ['mtls from URI:spiffe://cluster.local/ns/default/sa/bookinfo-productpage alpn istio', 'plaintext'], 'mTLS with the ALPN the cluster configured (istio-peer-exchange, istio)');
});

t.test('an HTTP/2 Istio cluster (alpn istio-peer-exchange, istio) still speaks HTTP/2 to a peer whose chain lists h2, http/1.1', async (t) => {
  const root = await mintRoot({ trustDomain: 'cluster.local' });
  const server = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/grpc-server' });
  const client = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/grpc-client' });
  // The peer sidecar's inbound HTTP chain: its context offers h2, http/1.1 and also serves HTTP/1.1.
  const peer = http2.createSecureServer({ cert: server.chainPem, key: server.keyPem, ca: [root.certPem], requestCert: true, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] },
    (req, res) => res.end(`http ${req.httpVersion}`));
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  const secrets = new SecretStore({ pollIntervalMs: 0 });
  let rt: ClusterRuntime | undefined;
  t.teardown(async () => {
    await rt?.destroy(); await rt?.close(); secrets.close();
    await new Promise((r) => peer.close(r));
  });
  const { c } = decode(`
name: outbound|7070||grpc.default.svc.cluster.local
type: STATIC
connect_timeout: 10s
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: { http2_protocol_options: {} }
load_assignment:
  cluster_name: grpc
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${(peer.address() as AddressInfo).port} } } } }] }]
transport_socket_matches:
- name: tlsMode-istio
  match: {}
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      common_tls_context:
        alpn_protocols: [istio-peer-exchange, istio]
        tls_certificates:
        - certificate_chain:
            inline_string: |
              ${indent(client.chainPem, 14)}
          private_key:
            inline_string: |
              ${indent(client.keyPem, 14)}
        validation_context:
          trusted_ca:
            inline_string: |
              ${indent(root.certPem, 14)}
`);
  t.equal(c.upstreamProtocol, 'HTTP2');
  const eps = flattenLoadAssignment(c.loadAssignment!);
  const runtime = new ClusterRuntime(c, eps, new StatsStore(), undefined, { upstreamTls: upstreamTlsBuilder(secrets, { log: () => {} }) });
  rt = runtime;
  const r = await runtime.dispatcherFor(runtime.endpoints.get(eps[0]!.key)!).request({ path: '/', method: 'GET' });
  t.equal(await r.body.text(), 'http 2.0', 'h2 offered beside the cluster\'s ALPN, as istio.alpn does (istio-h2, istio, h2)');
});

t.test('Istio PassthroughCluster / InboundPassthroughClusterIpv4 decode and route to the original destination', async (t) => {
  const up = await nameServer('original', { host: '127.0.0.1' });
  const { c, warnings } = decode(`
name: InboundPassthroughClusterIpv4
type: ORIGINAL_DST
connect_timeout: 10s
lb_policy: CLUSTER_PROVIDED
cleanup_interval: 60s
upstream_bind_config: { source_address: { address: 127.0.0.6, port_value: 0 } }
upstream_connection_options: { tcp_keepalive: { keepalive_time: 300 } }
circuit_breakers: { thresholds: [ { max_connections: 4294967295, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295 } ] }
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} }
`);
  // upstream_bind_config (Istio's 127.0.0.6 source) is decoded: no warning (bind.test.ts checks its effect).
  t.notOk(warnings.some((w) => w.includes('upstream_bind_config')), 'upstream_bind_config is understood');
  t.equal(c.upstreamBindConfig?.sourceAddress, '127.0.0.6');
  const warned: string[] = [];
  const rt = new ClusterRuntime(c, [], new StatsStore(), undefined, { warn: (m) => warned.push(m) });
  t.teardown(async () => { await rt.close(); await up.close(); });
  t.same(warned, [], 'keepalive_time alone needs no warning');
  t.equal(rt.originalDst !== undefined, true);
  const h = rt.pick({
    hash: NaN, exclude: undefined, headers: undefined,
    connection: { remoteAddress: '10.0.0.9', remotePort: 5555, localAddress: '127.0.0.1', localPort: 15006, originalDst: { address: '127.0.0.1', port: up.port }, transportProtocol: 'raw_buffer', applicationProtocols: [], filterChainName: 'virtualInbound' },
  })!;
  t.equal(h.endpoint.key, `127.0.0.1:${up.port}`);
  t.equal(await get(rt.dispatcherFor(h)), 'original');
});
