/**
 * Two pilotfish sidecars in one process, configured as istiod configures Envoy
 * (productpage-v1's outbound listener and reviews-v1's inbound mTLS chain, with the
 * `istio.metadata_exchange` / `istio.stats` / `istio.alpn` / `istio_authn` filters in
 * istiod's shapes and node metadata as pilot-agent writes it): one real HTTP request from
 * the app through both, over mTLS with SPIFFE certificates, and each proxy's Prometheus
 * scrape shows istio_requests_total with the label set Istio documents for that call.
 */
import t from 'tap';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { issueWorkload, mintRoot } from '../../certs/src/index.js';
import { decodeBootstrap, Diagnostics, formatProblem } from '../../config/src/index.js';
import { Logger, startProxy, type RunningProxy } from '../../proxy/src/index.js';
import { nodeId, nodeMetadata } from '../../e2e/fixtures/istio/bootstrap.js';
import { spiffeOf, WORKLOADS } from '../../e2e/fixtures/istio/mesh.js';
import { alpn, authn, mxInbound, mxOutbound, router, statsHttp, T, type Json } from '../../e2e/fixtures/istio/shapes.js';
import { HTTP_TAGS } from '../src/index.js';

const productpage = WORKLOADS.find((w) => w.name === 'productpage-v1')!;
const reviews = WORKLOADS.find((w) => w.name === 'reviews-v1')!;
const REVIEWS_FQDN = 'reviews.default.svc.cluster.local';
const OUTBOUND_CLUSTER = `outbound|9080||${REVIEWS_FQDN}`;
const serviceMeta = { filter_metadata: { istio: { services: [{ host: REVIEWS_FQDN, name: 'reviews', namespace: 'default' }] } } };

const inline = (pem: string): Json => ({ inline_string: pem });
const local0 = (): Json => ({ socket_address: { address: '127.0.0.1', port_value: 0 } });

async function start(t: { teardown(fn: () => unknown): void }, bootstrap: Json): Promise<RunningProxy> {
  const diag = new Diagnostics();
  const b = decodeBootstrap(bootstrap, diag);
  if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
  const p = await startProxy(b, { log: new Logger(process.env.PF_LOG === 'debug' ? 'debug' : 'error'), adminPort: 0, drainTimeMs: 100, onQuit: () => undefined });
  t.teardown(() => p.stop(0));
  return p;
}

function request(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function scrape(p: RunningProxy): Promise<string> {
  return (await request(p.adminPort!, '/stats/prometheus', {})).body;
}

/** The labels of the one `metric{...}` line whose reporter is `reporter`, as a map. */
function series(text: string, metric: string, reporter: string): Record<string, string>[] {
  return text.split('\n')
    .filter((l) => l.startsWith(`${metric}{`) && l.includes(`reporter="${reporter}"`))
    .map((l) => Object.fromEntries([...l.slice(l.indexOf('{') + 1, l.lastIndexOf('}')).matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!])));
}

t.test('an HTTP call through two sidecars fills source_* and destination_* on both reporters', async (t) => {
  const ca = await mintRoot({ trustDomain: 'cluster.local' });
  const ppId = spiffeOf('default', productpage.serviceAccount);
  const rvId = spiffeOf('default', reviews.serviceAccount);
  const ppCert = await issueWorkload({ ca, spiffeId: ppId });
  const rvCert = await issueWorkload({ ca, spiffeId: rvId });

  // The reviews app: records what reached it.
  const seen: http.IncomingHttpHeaders[] = [];
  const app = http.createServer((req, res) => {
    seen.push(req.headers);
    res.end('reviews v1');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => app.close(() => r())));
  const appPort = (app.address() as AddressInfo).port;

  const inbound = await start(t, {
    node: { id: nodeId(reviews), cluster: 'reviews.default', metadata: nodeMetadata(reviews) },
    admin: { address: local0() },
    static_resources: {
      listeners: [{
        name: 'virtualInbound',
        address: local0(),
        traffic_direction: 'INBOUND',
        // As istiod's virtualInbound: the ClientHello's ALPN is read before the handshake.
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': T.tlsInspector } }],
        filter_chains: [{
          name: '0.0.0.0_9080',
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': T.downstreamTls,
              require_client_certificate: true,
              common_tls_context: {
                alpn_protocols: ['h2', 'http/1.1'],
                tls_certificates: [{ certificate_chain: inline(rvCert.chainPem), private_key: inline(rvCert.keyPem) }],
                validation_context: { trusted_ca: inline(ca.certPem), match_subject_alt_names: [{ prefix: 'spiffe://cluster.local/' }] },
              },
            },
          },
          filters: [authn(), {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': T.hcm,
              stat_prefix: 'inbound_0.0.0.0_9080',
              route_config: { name: 'inbound|9080||', virtual_hosts: [{ name: 'inbound|http|9080', domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: 'inbound|9080||' } }] }] },
              http_filters: [mxInbound(), statsHttp(true), router()],
            },
          }],
        }],
      }],
      clusters: [{
        name: 'inbound|9080||', type: 'STATIC', connect_timeout: '1s', metadata: serviceMeta,
        load_assignment: { cluster_name: 'inbound|9080||', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: appPort } } } }] }] },
      }],
    },
  });
  const inboundPort = inbound.server.boundPorts.get('virtualInbound')!;

  const outbound = await start(t, {
    node: { id: nodeId(productpage), cluster: 'productpage.default', metadata: nodeMetadata(productpage) },
    admin: { address: local0() },
    static_resources: {
      listeners: [{
        name: '0.0.0.0_9080',
        address: local0(),
        traffic_direction: 'OUTBOUND',
        filter_chains: [{
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': T.hcm,
              stat_prefix: 'outbound_0.0.0.0_9080',
              route_config: { name: '9080', virtual_hosts: [{ name: `${REVIEWS_FQDN}:9080`, domains: [REVIEWS_FQDN, 'reviews', 'reviews:9080', '*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: OUTBOUND_CLUSTER } }] }] },
              http_filters: [mxOutbound(), alpn(), statsHttp(false), router()],
            },
          }],
        }],
      }],
      clusters: [{
        name: OUTBOUND_CLUSTER, type: 'STATIC', connect_timeout: '1s', metadata: serviceMeta,
        load_assignment: { cluster_name: OUTBOUND_CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: inboundPort } } } }] }] },
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': T.upstreamTls,
            sni: `outbound_.9080_._.${REVIEWS_FQDN}`,
            common_tls_context: {
              alpn_protocols: ['istio-peer-exchange', 'istio'],
              tls_certificates: [{ certificate_chain: inline(ppCert.chainPem), private_key: inline(ppCert.keyPem) }],
              validation_context: { trusted_ca: inline(ca.certPem), match_subject_alt_names: [{ exact: rvId }] },
            },
          },
        },
      }],
    },
  });
  const outboundPort = outbound.server.boundPorts.get('0.0.0.0_9080')!;

  const res = await request(outboundPort, '/reviews/0', { host: 'reviews:9080' });
  t.equal(res.status, 200, res.body);
  t.equal(res.body, 'reviews v1');
  t.equal(seen.length, 1);
  t.equal(seen[0]!['x-envoy-peer-metadata'], undefined, 'the inbound sidecar strips the exchange headers before the app');
  t.equal(seen[0]!['x-envoy-peer-metadata-id'], undefined);
  t.equal(res.headers['x-envoy-peer-metadata'], undefined, 'the outbound sidecar strips the answer before the client');

  const inText = await scrape(inbound);
  const dest = series(inText, 'istio_requests_total', 'destination');
  t.equal(dest.length, 1, inText);
  t.same(Object.keys(dest[0]!), [...HTTP_TAGS], 'Istio\'s label names, in Istio\'s order');
  t.same(dest[0], {
    reporter: 'destination',
    source_workload: 'productpage-v1', source_canonical_service: 'productpage', source_canonical_revision: 'v1',
    source_workload_namespace: 'default', source_principal: ppId, source_app: 'productpage', source_version: 'v1', source_cluster: 'Kubernetes',
    destination_workload: 'reviews-v1', destination_workload_namespace: 'default', destination_principal: rvId,
    destination_app: 'reviews', destination_version: 'v1', destination_service: REVIEWS_FQDN, destination_canonical_service: 'reviews',
    destination_canonical_revision: 'v1', destination_service_name: 'reviews', destination_service_namespace: 'default', destination_cluster: 'Kubernetes',
    request_protocol: 'http', response_code: '200', grpc_response_status: '', response_flags: '-', connection_security_policy: 'mutual_tls',
  });
  t.match(inText, /istio_request_duration_milliseconds_bucket\{reporter="destination",[^}]*le="\+Inf"\} 1\n/);
  t.match(inText, /istio_response_bytes_sum\{reporter="destination",[^}]*\} 10\n/, 'response body bytes');

  const outText = await scrape(outbound);
  const src = series(outText, 'istio_requests_total', 'source');
  t.equal(src.length, 1, outText);
  t.same(Object.keys(src[0]!), [...HTTP_TAGS]);
  t.same(src[0], {
    reporter: 'source',
    source_workload: 'productpage-v1', source_canonical_service: 'productpage', source_canonical_revision: 'v1',
    source_workload_namespace: 'default', source_principal: ppId, source_app: 'productpage', source_version: 'v1', source_cluster: 'Kubernetes',
    destination_workload: 'reviews-v1', destination_workload_namespace: 'default', destination_principal: rvId,
    destination_app: 'reviews', destination_version: 'v1', destination_service: REVIEWS_FQDN, destination_canonical_service: 'reviews',
    destination_canonical_revision: 'v1', destination_service_name: 'reviews', destination_service_namespace: 'default', destination_cluster: 'Kubernetes',
    request_protocol: 'http', response_code: '200', grpc_response_status: '', response_flags: '-', connection_security_policy: 'unknown',
  });
  t.match(outText, /^istio_build\{component="proxy",tag="1\.24\.2"\} 1$/m, 'istio_build from ISTIO_VERSION');
  // The Envoy-named stats are still there beside Istio's.
  t.match(outText, /envoy_cluster_upstream_rq_total\{envoy_cluster_name="outbound\|9080\|\|reviews\.default\.svc\.cluster\.local"\} 1/);
});
