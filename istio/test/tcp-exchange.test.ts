/**
 * TCP metadata exchange on a pilotfish inbound mTLS chain, as istiod configures it
 * (istio_authn, istio.metadata_exchange, istio.stats, tcp_proxy; ALPN
 * istio-peer-exchange): a real TLS client speaks Istio's exchange (magic, length,
 * Any(Struct)) the way an Envoy sidecar's outbound cluster filter does. pilotfish answers
 * with its own node's metadata before any application byte, the app behind it sees only
 * the application's bytes, and the istio_tcp_* metrics carry the client's workload.
 */
import t from 'tap';
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { issueWorkload, mintRoot } from '../../certs/src/index.js';
import { decodeBootstrap, Diagnostics, formatProblem } from '../../config/src/index.js';
import { Logger, startProxy, type RunningProxy } from '../../proxy/src/index.js';
import { nodeId, nodeMetadata } from '../../e2e/fixtures/istio/bootstrap.js';
import { spiffeOf, WORKLOADS } from '../../e2e/fixtures/istio/mesh.js';
import { authn, statsTcp, T, tcpMx, tcpProxy, type Json } from '../../e2e/fixtures/istio/shapes.js';
import { encodeExchange, ExchangeReader, TCP_TAGS } from '../src/index.js';
import { until } from '../../test-support/wait.js';

const ratings = WORKLOADS.find((w) => w.name === 'ratings-v1')!;
const mongodb = WORKLOADS.find((w) => w.name === 'mongodb-v1')!;
const MONGO_FQDN = 'mongodb.default.svc.cluster.local';
const inline = (pem: string): Json => ({ inline_string: pem });
const local0 = (): Json => ({ socket_address: { address: '127.0.0.1', port_value: 0 } });

/** istiod's stats filter with a shorter tcp_reporting_duration, so the periodic report shows within the test. */
function withReporting(filter: Json, every: string): Json {
  return { ...filter, typed_config: { ...(filter.typed_config as Json), tcp_reporting_duration: every } };
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/stats/prometheus', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

function labelsOf(line: string): Record<string, string> {
  return Object.fromEntries([...line.slice(line.indexOf('{') + 1, line.lastIndexOf('}')).matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
}

t.test('inbound TCP: the exchange both ways, app bytes untouched, istio_tcp_* with the peer', async (t) => {
  const ca = await mintRoot({ trustDomain: 'cluster.local' });
  const clientId = spiffeOf('default', ratings.serviceAccount);
  const serverId = spiffeOf('default', mongodb.serviceAccount);
  const client = await issueWorkload({ ca, spiffeId: clientId });
  const server = await issueWorkload({ ca, spiffeId: serverId });

  // The mongodb app: echoes, and records every byte it got.
  let appGot = '';
  const app = net.createServer((s) => {
    s.on('data', (d) => {
      appGot += d;
      s.write(`echo:${d}`);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => app.close(() => r())));
  const appPort = (app.address() as net.AddressInfo).port;

  const cluster = 'inbound|27017||';
  const diag = new Diagnostics();
  const b = decodeBootstrap({
    node: { id: nodeId(mongodb), cluster: 'mongodb.default', metadata: nodeMetadata(mongodb) },
    admin: { address: local0() },
    static_resources: {
      listeners: [{
        name: 'virtualInbound',
        address: local0(),
        traffic_direction: 'INBOUND',
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': T.tlsInspector } }],
        filter_chains: [{
          name: '0.0.0.0_27017',
          filter_chain_match: { transport_protocol: 'tls', application_protocols: ['istio-peer-exchange', 'istio'] },
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': T.downstreamTls,
              require_client_certificate: true,
              common_tls_context: {
                alpn_protocols: ['istio-peer-exchange', 'h2', 'http/1.1'],
                tls_certificates: [{ certificate_chain: inline(server.chainPem), private_key: inline(server.keyPem) }],
                validation_context: { trusted_ca: inline(ca.certPem), match_subject_alt_names: [{ prefix: 'spiffe://cluster.local/' }] },
              },
            },
          },
          filters: [authn(), tcpMx(), withReporting(statsTcp(true), '0.1s'), tcpProxy(cluster)],
        }],
      }],
      clusters: [{
        name: cluster, type: 'STATIC', connect_timeout: '1s',
        metadata: { filter_metadata: { istio: { services: [{ host: MONGO_FQDN, name: 'mongodb', namespace: 'default' }] } } },
        load_assignment: { cluster_name: cluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: appPort } } } }] }] },
      }],
    },
  }, diag);
  if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
  const proxy: RunningProxy = await startProxy(b, { log: new Logger('error'), adminPort: 0, drainTimeMs: 100, onQuit: () => undefined });
  t.teardown(() => proxy.stop(0));
  const port = proxy.server.boundPorts.get('virtualInbound')!;

  // The client side of the exchange, as an Envoy sidecar's outbound cluster filter speaks it.
  const sock = tls.connect({
    host: '127.0.0.1', port, ca: ca.certPem, cert: client.chainPem, key: client.keyPem,
    ALPNProtocols: ['istio-peer-exchange', 'istio'], servername: `outbound_.27017_._.${MONGO_FQDN}`, checkServerIdentity: () => undefined,
  });
  t.teardown(() => sock.destroy());
  await new Promise<void>((r, j) => sock.once('secureConnect', r).once('error', j));
  t.equal(sock.alpnProtocol, 'istio-peer-exchange');
  const reader = new ExchangeReader();
  let peer: ReturnType<ExchangeReader['push']> | undefined;
  let after = '';
  sock.on('data', (d: Buffer) => {
    if (peer?.kind !== 'done') {
      peer = reader.push(d);
      if (peer.kind === 'done') after += peer.rest.toString();
    } else after += d.toString();
  });
  sock.write(Buffer.concat([encodeExchange(nodeId(ratings), nodeMetadata(ratings) as Record<string, unknown>), Buffer.from('ping')]));
  await until('the echo after the exchange', () => after === 'echo:ping' || undefined, { timeoutMs: 5000, state: () => JSON.stringify({ peer: peer?.kind, after, appGot }) });
  t.equal(peer?.kind, 'done');
  if (peer?.kind === 'done') {
    t.equal(peer.peer.workloadName, 'mongodb-v1', 'pilotfish sent its own node metadata');
    t.equal(peer.peerId, nodeId(mongodb));
  }
  t.equal(appGot, 'ping', 'the app saw only application bytes');

  // While the connection is open: opened, and the bytes so far by the periodic report; not closed.
  const open = await until('a periodic istio_tcp_received_bytes_total', async () => {
    const s = await scrape(proxy.adminPort!);
    return /istio_tcp_received_bytes_total\{[^}]*\} [1-9]/.test(s) ? s : undefined;
  }, { timeoutMs: 5000 });
  t.match(open, /istio_tcp_connections_opened_total\{[^}]*\} 1\n/);
  t.notMatch(open, /istio_tcp_connections_closed_total\{/, 'not closed yet');

  sock.end();
  const text = await until('istio_tcp_connections_closed_total', async () => {
    const s = await scrape(proxy.adminPort!);
    return /istio_tcp_connections_closed_total\{/.test(s) ? s : undefined;
  }, { timeoutMs: 5000 });
  const line = (m: string) => text.split('\n').find((l) => l.startsWith(`${m}{`)) ?? '';
  const opened = labelsOf(line('istio_tcp_connections_opened_total'));
  t.same(Object.keys(opened), [...TCP_TAGS]);
  t.same(opened, {
    reporter: 'destination',
    source_workload: 'ratings-v1', source_canonical_service: 'ratings', source_canonical_revision: 'v1', source_workload_namespace: 'default',
    source_principal: clientId, source_app: 'ratings', source_version: 'v1', source_cluster: 'Kubernetes',
    destination_workload: 'mongodb-v1', destination_workload_namespace: 'default', destination_principal: serverId,
    destination_app: 'mongodb', destination_version: 'v1', destination_service: MONGO_FQDN, destination_canonical_service: 'mongodb',
    destination_canonical_revision: 'v1', destination_service_name: 'mongodb', destination_service_namespace: 'default', destination_cluster: 'Kubernetes',
    request_protocol: 'tcp', response_flags: '-', connection_security_policy: 'mutual_tls',
  });
  t.match(line('istio_tcp_connections_opened_total'), / 1$/);
  t.match(line('istio_tcp_connections_closed_total'), / 1$/);
  t.match(line('istio_tcp_sent_bytes_total'), / (\d+)$/);
  const sent = Number(/ (\d+)$/.exec(line('istio_tcp_sent_bytes_total'))![1]);
  const received = Number(/ (\d+)$/.exec(line('istio_tcp_received_bytes_total'))![1]);
  t.ok(sent >= 'echo:ping'.length, `sent ${sent}`);
  t.ok(received >= 'ping'.length, `received ${received}`);
});

t.test('outbound TCP: reporter=source with the local workload, the cluster\'s service, the peer unknown', async (t) => {
  let appGot = '';
  const app = net.createServer((s) => {
    s.on('data', (d) => {
      appGot += d;
      s.write(`echo:${d}`);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => app.close(() => r())));
  const cluster = `outbound|27017||${MONGO_FQDN}`;
  const diag = new Diagnostics();
  const b = decodeBootstrap({
    node: { id: nodeId(ratings), cluster: 'ratings.default', metadata: nodeMetadata(ratings) },
    admin: { address: local0() },
    static_resources: {
      listeners: [{
        name: '198.19.0.14_27017', address: local0(), traffic_direction: 'OUTBOUND',
        filter_chains: [{ filters: [withReporting(statsTcp(false), '0.1s'), tcpProxy(cluster)] }],
      }],
      clusters: [{
        name: cluster, type: 'STATIC', connect_timeout: '1s',
        metadata: { filter_metadata: { istio: { services: [{ host: MONGO_FQDN, name: 'mongodb', namespace: 'default' }] } } },
        load_assignment: { cluster_name: cluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: (app.address() as net.AddressInfo).port } } } }] }] },
      }],
    },
  }, diag);
  if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
  const proxy = await startProxy(b, { log: new Logger('error'), adminPort: 0, drainTimeMs: 100, onQuit: () => undefined });
  t.teardown(() => proxy.stop(0));
  const sock = net.connect({ host: '127.0.0.1', port: proxy.server.boundPorts.get('198.19.0.14_27017')! });
  t.teardown(() => sock.destroy());
  let got = '';
  sock.on('data', (d) => (got += d));
  sock.write('hello');
  await until('the echo', () => got === 'echo:hello' || undefined, { timeoutMs: 5000 });
  t.equal(appGot, 'hello');
  const text = await until('istio_tcp_connections_opened_total while open', async () => {
    const s = await scrape(proxy.adminPort!);
    return /istio_tcp_connections_opened_total\{/.test(s) ? s : undefined;
  }, { timeoutMs: 5000 });
  const opened = labelsOf(text.split('\n').find((l) => l.startsWith('istio_tcp_connections_opened_total{'))!);
  t.same(opened, {
    reporter: 'source',
    source_workload: 'ratings-v1', source_canonical_service: 'ratings', source_canonical_revision: 'v1', source_workload_namespace: 'default',
    source_principal: 'unknown', source_app: 'ratings', source_version: 'v1', source_cluster: 'Kubernetes',
    destination_workload: 'unknown', destination_workload_namespace: 'unknown', destination_principal: 'unknown',
    destination_app: 'unknown', destination_version: 'unknown', destination_service: MONGO_FQDN, destination_canonical_service: 'unknown',
    destination_canonical_revision: 'latest', destination_service_name: 'mongodb', destination_service_namespace: 'unknown', destination_cluster: 'unknown',
    request_protocol: 'tcp', response_flags: '-', connection_security_policy: 'unknown',
  });
});

t.test('pilotfish to pilotfish over mTLS: the client side speaks the exchange too, both reporters know their peer, app bytes untouched', async (t) => {
  const ca = await mintRoot({ trustDomain: 'cluster.local' });
  const clientId = spiffeOf('default', ratings.serviceAccount);
  const serverId = spiffeOf('default', mongodb.serviceAccount);
  const client = await issueWorkload({ ca, spiffeId: clientId });
  const server = await issueWorkload({ ca, spiffeId: serverId });
  let appGot = '';
  const app = net.createServer((s) => {
    s.on('data', (d) => {
      appGot += d;
      s.write(`echo:${d}`);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => app.close(() => r())));
  const start = async (b: unknown): Promise<RunningProxy> => {
    const diag = new Diagnostics();
    const decoded = decodeBootstrap(b, diag);
    if (!decoded) throw new Error(diag.errors.map(formatProblem).join('\n'));
    const p = await startProxy(decoded, { log: new Logger('error'), adminPort: 0, drainTimeMs: 100, onQuit: () => undefined });
    t.teardown(() => p.stop(0));
    return p;
  };
  // The mongodb pod's sidecar: istiod's inbound TCP mTLS chain.
  const inboundCluster = 'inbound|27017||';
  const inbound = await start({
    node: { id: nodeId(mongodb), cluster: 'mongodb.default', metadata: nodeMetadata(mongodb) },
    admin: { address: local0() },
    static_resources: {
      listeners: [{
        name: 'virtualInbound', address: local0(), traffic_direction: 'INBOUND',
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': T.tlsInspector } }],
        filter_chains: [{
          filter_chain_match: { transport_protocol: 'tls', application_protocols: ['istio-peer-exchange', 'istio'] },
          transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': T.downstreamTls, require_client_certificate: true, common_tls_context: {
            alpn_protocols: ['istio-peer-exchange', 'h2', 'http/1.1'],
            tls_certificates: [{ certificate_chain: inline(server.chainPem), private_key: inline(server.keyPem) }],
            validation_context: { trusted_ca: inline(ca.certPem), match_subject_alt_names: [{ prefix: 'spiffe://cluster.local/' }] },
          } } },
          filters: [authn(), tcpMx(), statsTcp(true), tcpProxy(inboundCluster)],
        }],
      }],
      clusters: [{ name: inboundCluster, type: 'STATIC', connect_timeout: '1s',
        metadata: { filter_metadata: { istio: { services: [{ host: MONGO_FQDN, name: 'mongodb', namespace: 'default' }] } } },
        load_assignment: { cluster_name: inboundCluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: (app.address() as net.AddressInfo).port } } } }] }] } }],
    },
  });
  // The ratings pod's sidecar: the per-VIP outbound TCP listener and the mTLS cluster with Istio's ALPN.
  const outboundCluster = `outbound|27017||${MONGO_FQDN}`;
  const outbound = await start({
    node: { id: nodeId(ratings), cluster: 'ratings.default', metadata: nodeMetadata(ratings) },
    admin: { address: local0() },
    static_resources: {
      listeners: [{ name: '198.19.0.14_27017', address: local0(), traffic_direction: 'OUTBOUND', filter_chains: [{ filters: [statsTcp(false), tcpProxy(outboundCluster)] }] }],
      clusters: [{ name: outboundCluster, type: 'STATIC', connect_timeout: '2s',
        metadata: { filter_metadata: { istio: { services: [{ host: MONGO_FQDN, name: 'mongodb', namespace: 'default' }] } } },
        transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          sni: `outbound_.27017_._.${MONGO_FQDN}`,
          common_tls_context: {
            alpn_protocols: ['istio-peer-exchange', 'istio'],
            tls_certificates: [{ certificate_chain: inline(client.chainPem), private_key: inline(client.keyPem) }],
            validation_context: { trusted_ca: inline(ca.certPem), match_subject_alt_names: [{ exact: serverId }] },
          } } },
        load_assignment: { cluster_name: outboundCluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: inbound.server.boundPorts.get('virtualInbound')! } } } }] }] } }],
    },
  });
  const sock = net.connect({ host: '127.0.0.1', port: outbound.server.boundPorts.get('198.19.0.14_27017')! });
  t.teardown(() => sock.destroy());
  let got = '';
  sock.on('data', (d) => (got += d));
  sock.write('find');
  await until('the echo through both sidecars', () => got === 'echo:find' || undefined, { timeoutMs: 8000, state: () => JSON.stringify({ got, appGot }) });
  t.equal(appGot, 'find', 'the app saw only its bytes (no exchange header leaked either way)');
  const opened = async (port: number, reporter: string): Promise<Record<string, string>> => {
    const text = await until(`istio_tcp_connections_opened_total (${reporter})`, async () => {
      const s = await scrape(port);
      return s.split('\n').find((l) => l.startsWith('istio_tcp_connections_opened_total{') && l.includes(`reporter="${reporter}"`));
    }, { timeoutMs: 5000 });
    return labelsOf(text);
  };
  const src = await opened(outbound.adminPort!, 'source');
  t.match(src, { source_workload: 'ratings-v1', destination_workload: 'mongodb-v1', destination_app: 'mongodb', destination_version: 'v1', destination_service: MONGO_FQDN },
    'the client sidecar learned its peer from the exchange');
  t.match(src, { source_principal: clientId, destination_principal: serverId, connection_security_policy: 'unknown' },
    'and both principals from its upstream mTLS connection (the source reporter leaves the policy unknown, as Istio does)');
  const dst = await opened(inbound.adminPort!, 'destination');
  t.match(dst, { source_workload: 'ratings-v1', source_principal: clientId, destination_workload: 'mongodb-v1', connection_security_policy: 'mutual_tls' });
});
