/**
 * Secrets from their own config source, as Istio's sidecar gets them: istiod's clusters
 * name `default` / `ROOTCA` with an sds_config whose api_config_source is the `sds-grpc`
 * cluster (pilot-agent's Unix socket). The secrets must be requested on an SDS stream to
 * that socket (SecretDiscoveryService), never on the ADS stream, and the TLS cluster
 * warms when they arrive there.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { XdsServer } from '../../controlplane/src/index.js';
import { XdsClient, TYPE_URLS, secretType } from '../src/index.js';
import { RecordingSink } from './helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilotfish-sds-src-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

function agentSource(apiType: string) {
  return {
    api_config_source: { api_type: apiType, transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] },
    resource_api_version: 'V3',
    initial_fetch_timeout: '0s',
  };
}

function tlsCluster(name: string, apiType: string) {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 9080 } } } }] }] },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': UPSTREAM_TLS,
        common_tls_context: {
          tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: agentSource(apiType) }],
          combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: agentSource(apiType) } },
        },
      },
    },
  };
}

const cert = (name: string) => ({ name, tls_certificate: { certificate_chain: { inline_string: 'PEM' }, private_key: { inline_string: 'KEY' } } });
const root = (name: string) => ({ name, validation_context: { trusted_ca: { inline_string: 'PEM' } } });

for (const sdsApi of ['GRPC', 'DELTA_GRPC'] as const) {
  t.test(`secrets from pilot-agent's SDS socket (${sdsApi}), not from ADS`, async (t) => {
    const node = { id: `sidecar~10.0.0.7~reviews-v1.default~default.svc.cluster.local-${sdsApi}`, cluster: 'reviews.default', metadata: {} };
    const istiod = new XdsServer();
    const agent = new XdsServer();
    const xdsPath = path.join(dir, `XDS-${sdsApi}`);
    const sdsPath = path.join(dir, `SDS-${sdsApi}`);
    await istiod.listen(0, `unix:${xdsPath}`);
    await agent.listen(0, `unix:${sdsPath}`);
    const adsSecretAsks: string[][] = [];
    istiod.on('request', (_n: string, req: { type_url?: string; resource_names?: string[]; resource_names_subscribe?: string[] }) => {
      if (req.type_url === TYPE_URLS.secret) adsSecretAsks.push([...(req.resource_names ?? []), ...(req.resource_names_subscribe ?? [])]);
    });
    istiod.setResources(TYPE_URLS.cluster, { 'outbound|9080||reviews': tlsCluster('outbound|9080||reviews', sdsApi) });
    const sink = new RecordingSink();
    const decoded: string[] = [];
    const client = new XdsClient({
      node,
      servers: [{ address: xdsPath, port: 0 }],
      apiType: 'DELTA_GRPC',
      sink,
      listeners: false,
      resolveCluster: (name) => (name === 'sds-grpc' ? [{ address: sdsPath, port: 0 }] : undefined),
      resourceTypes: [{ type: secretType((json, _diag, _path) => {
        decoded.push(json.name as string);
        return { name: json.name as string, typeUrl: TYPE_URLS.secret, config: json };
      }) }],
    });
    client.start();
    t.teardown(async () => {
      client.stop();
      await Promise.all([istiod.close(), agent.close()]);
    });
    await istiod.waitForAck(node.id, TYPE_URLS.cluster);
    await new Promise((r) => setTimeout(r, 300));
    t.notOk(sink.clusters.has('outbound|9080||reviews'), 'the TLS cluster waits for its secrets');
    t.equal(agent.connections, 1, 'one SDS stream to the agent');

    agent.setResources(TYPE_URLS.secret, { default: cert('default'), ROOTCA: root('ROOTCA') });
    await sink.until(() => sink.clusters.has('outbound|9080||reviews'));
    t.same([...sink.secrets.keys()].sort(), ['ROOTCA', 'default'], 'both secrets reached the sink');
    await agent.waitForAck(node.id, TYPE_URLS.secret);
    t.ok(sink.ops().indexOf('upsertSecret') < sink.ops().indexOf('upsertCluster'), 'secrets before the cluster that uses them');
    t.same(adsSecretAsks.flat(), [], 'no secret was asked of istiod on the ADS stream');
    t.equal(client.stats()['sds_source.sds-grpc.control_plane.connected_state'], 1, 'the SDS source shows in the stats');

    // Rotation on the agent reaches the sink; istiod still sees no secret request.
    agent.setResources(TYPE_URLS.secret, { default: { ...cert('default'), tls_certificate: { certificate_chain: { inline_string: 'PEM2' }, private_key: { inline_string: 'KEY2' } } }, ROOTCA: root('ROOTCA') });
    await sink.until(() => JSON.stringify(sink.secrets.get('default')?.config ?? {}).includes('PEM2'));
    t.pass('a rotated certificate from the agent reached the sink');
    t.same(adsSecretAsks.flat(), []);
    t.ok(client.configDump().some((d) => d.typeUrl === TYPE_URLS.secret && d.resources.some((r) => r.name === 'default')), 'config_dump shows the secret');
  });
}

t.test('an SDS source whose cluster has no addresses: the secret never arrives, a clear log line says why', async (t) => {
  const node = { id: 'no-sds-source', cluster: 'c', metadata: {} };
  const istiod = new XdsServer();
  const xdsPath = path.join(dir, 'XDS-missing');
  await istiod.listen(0, `unix:${xdsPath}`);
  istiod.setResources(TYPE_URLS.cluster, { web: tlsCluster('web', 'GRPC') });
  const sink = new RecordingSink();
  const logs: string[] = [];
  const client = new XdsClient({ node, servers: [{ address: xdsPath, port: 0 }], apiType: 'GRPC', sink, listeners: false, log: (_l, m) => logs.push(m) });
  client.start();
  t.teardown(async () => {
    client.stop();
    await istiod.close();
  });
  await istiod.waitForAck(node.id, TYPE_URLS.cluster);
  t.notOk(sink.clusters.has('web'));
  t.ok(logs.some((l) => /SDS source cluster "sds-grpc" has no static endpoints; its secrets \((default, ROOTCA|ROOTCA, default)\) cannot be fetched/.test(l)), logs.join('\n'));
});
