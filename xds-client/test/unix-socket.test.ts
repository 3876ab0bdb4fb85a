/**
 * xDS over a Unix domain socket, as Istio's bootstrap reaches pilot-agent: the ADS
 * cluster's endpoint is a `pipe`, our control plane listens on that socket, config
 * arrives and is ACKed, and the stream carries the grpc_service's initial_metadata.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Diagnostics, parseConfigText, decodeBootstrap } from '../../config/src/index.js';
import { ControlPlane, parseMesh } from '../../controlplane/src/index.js';
import { secretType, TYPE_URLS, XdsClient, xdsOptionsFromBootstrap } from '../src/index.js';
import { grpcTarget } from '../src/transport.js';
import { RecordingSink } from './helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilotfish-xds-uds-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Istio's sidecar bootstrap shape: xds-grpc is a STATIC cluster with a pipe endpoint. */
function bootstrapYaml(pipePath: string, apiType: string, metadataKey = 'x-pilotfish-token'): string {
  return `
node: { id: sidecar~10.0.0.7~reviews-v1.default~default.svc.cluster.local, cluster: reviews.default }
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              pipe: { path: "${pipePath}" }
dynamic_resources:
  ads_config:
    api_type: ${apiType}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc: { cluster_name: xds-grpc }
      initial_metadata:
      - { key: ${metadataKey}, value: s3cr3t }
      - { key: ClusterID, value: Kubernetes }
  lds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 2s }
  cds_config: { ads: {}, resource_api_version: V3 }
`;
}

function decode(yaml: string) {
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseConfigText(yaml, 'yaml', diag), diag);
  if (!b || diag.errors.length > 0) throw new Error(JSON.stringify(diag.errors));
  return b;
}

async function controlPlaneOn(socket: string): Promise<{ cp: ControlPlane; metadata: Record<string, unknown>[] }> {
  const cp = new ControlPlane();
  cp.setMesh(parseMesh({
    listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', service: 'web' }] }],
    services: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 80 }] }],
  }));
  const metadata: Record<string, unknown>[] = [];
  cp.server.on('connect', (_id: number, md: Record<string, unknown>) => metadata.push(md));
  await cp.listen(0, `unix:${socket}`);
  return { cp, metadata };
}

for (const apiType of ['GRPC', 'DELTA_GRPC']) {
  for (const kind of ['path', 'abstract'] as const) {
    t.test(`${apiType}: ADS over a ${kind === 'path' ? 'socket path' : 'Linux abstract socket'}, config ACKed, initial_metadata seen`, async (t) => {
      const name = `pilotfish-xds-${process.pid}-${apiType}`;
      const envoyPath = kind === 'path' ? path.join(dir, `XDS-${apiType}`) : `@${name}`;
      const { cp, metadata } = await controlPlaneOn(kind === 'path' ? envoyPath : `\0${name}`);
      t.teardown(() => cp.close());
      const sink = new RecordingSink();
      const opts = xdsOptionsFromBootstrap(decode(bootstrapYaml(envoyPath, apiType)), { sink });
      t.ok(opts);
      t.same(opts!.servers.map((s) => [s.address, s.port]), [[envoyPath, 0]]);
      const client = new XdsClient({ ...opts!, backoff: { baseMs: 50, maxMs: 200 } });
      client.start();
      t.teardown(() => client.stop());
      await sink.until(() => sink.listeners.has('ingress') && sink.clusters.has('web'));
      await client.initialized;
      t.same(sink.endpointKeys('web'), ['10.0.0.1:80']);
      const node = 'sidecar~10.0.0.7~reviews-v1.default~default.svc.cluster.local';
      await cp.server.waitForAck(node, TYPE_URLS.cluster);
      await cp.server.waitForAck(node, TYPE_URLS.listener);
      t.equal(metadata.length, 1, 'one stream');
      t.equal(metadata[0]!['x-pilotfish-token'], 's3cr3t', 'the control plane saw initial_metadata');
      t.equal(metadata[0]!['clusterid'], 'Kubernetes', 'keys travel lower-cased (HTTP/2)');
    });
  }
}

t.test('grpcTarget: IPs, names, pipes', async (t) => {
  t.equal(grpcTarget({ address: '127.0.0.1', port: 15010 }), '127.0.0.1:15010');
  t.equal(grpcTarget({ address: '::1', port: 15010 }), '[::1]:15010');
  t.equal(grpcTarget({ address: 'istiod.istio-system.svc', port: 15012 }), 'istiod.istio-system.svc:15012');
  t.equal(grpcTarget({ address: './etc/istio/proxy/XDS', port: 0 }), 'unix:./etc/istio/proxy/XDS');
  t.equal(grpcTarget({ address: '/var/run/xds.sock', port: 0 }), 'unix:/var/run/xds.sock');
  t.equal(grpcTarget({ address: '@xds', port: 0 }), 'unix:\0xds');
});

t.test('an initial_metadata key gRPC refuses is a one-line error naming the field', async (t) => {
  // The decoder refuses it in YAML; a bootstrap model built in code is checked again here.
  const diag = new Diagnostics();
  decodeBootstrap(parseConfigText(bootstrapYaml('/tmp/none', 'GRPC', 'grpc-timeout'), 'yaml', diag), diag);
  t.match(diag.errors.map((e) => e.path), ['dynamic_resources.ads_config.grpc_services[0].initial_metadata[0].key']);
  const b = decode(bootstrapYaml('/tmp/none', 'GRPC'));
  const ads = b.dynamicResources!.adsConfig!;
  const broken = { ...b, dynamicResources: { ...b.dynamicResources!, adsConfig: { ...ads, grpcServices: [{ ...ads.grpcServices[0]!, initialMetadata: [{ key: 'grpc-timeout', value: '1S' }] }] } } };
  t.throws(() => xdsOptionsFromBootstrap(broken, { sink: new RecordingSink() }),
    /^dynamic_resources\.ads_config\.grpc_services\[0\]\.initial_metadata\[0\]: metadata key "grpc-timeout" is reserved by gRPC$/);
});

t.test('an SDS-only stream over a pipe (Istio\'s sds-grpc to pilot-agent): secrets by name, nothing else', async (t) => {
  const sock = path.join(dir, 'sds.sock');
  const cp = new ControlPlane();
  await cp.listen(0, `unix:${sock}`);
  t.teardown(() => cp.close());
  cp.server.setResources(TYPE_URLS.secret, {
    default: { name: 'default', tls_certificate: { certificate_chain: { inline_string: 'CHAIN' }, private_key: { inline_string: 'KEY' } } },
    ROOTCA: { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: 'ROOT' } } },
    other: { name: 'other', validation_context: { trusted_ca: { inline_string: 'NOT ASKED FOR' } } },
  });
  const sink = new RecordingSink();
  const client = new XdsClient({
    node: { id: 'sds-node', cluster: 'c', metadata: {} },
    servers: [{ address: sock, port: 0 }],
    apiType: 'GRPC',
    sink,
    listeners: false,
    clusters: false,
    resourceTypes: [{ type: secretType(), subscribe: ['default', 'ROOTCA'] }],
    backoff: { baseMs: 50, maxMs: 200 },
  });
  client.start();
  t.teardown(() => client.stop());
  await sink.until(() => sink.secrets.has('default') && sink.secrets.has('ROOTCA'));
  await cp.server.waitForAck('sds-node', TYPE_URLS.secret);
  t.same([...sink.secrets.keys()].sort(), ['ROOTCA', 'default'], 'only the subscribed secrets');
  t.notOk(sink.ops().includes('upsertCluster') || sink.ops().includes('upsertListener'), 'no LDS/CDS on this stream');
});
