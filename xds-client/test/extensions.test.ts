import t from 'tap';
import { ControlPlane, parseMesh } from '../../controlplane/src/index.js';
import type { TypedExtension } from '../../config/src/index.js';
import { XdsClient, TYPE_URLS, extensionConfigType, secretType, type ResourceChanges } from '../src/index.js';
import { RecordingSink } from './helpers.js';
import { until } from '../../test-support/wait.js';

const node = { id: 'ext', cluster: 'c', metadata: {} };
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

for (const apiType of ['GRPC', 'DELTA_GRPC'] as const) {
  t.test(`${apiType}: SDS (pluggable decoder) and ECDS (generic hook)`, async (t) => {
    const cp = new ControlPlane();
    cp.setMesh(parseMesh({ services: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 443 }] }] }));
    cp.setResources(TYPE_URLS.cluster, {
      web: {
        name: 'web',
        type: 'EDS',
        connect_timeout: '1s',
        eds_cluster_config: { eds_config: { ads: {} } },
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: { '@type': UPSTREAM_TLS, common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'web-cert', sds_config: { ads: {}, resource_api_version: 'V3' } }] } },
        },
      },
    });
    cp.setResources(TYPE_URLS.extensionConfig, {
      'authz-v1': { name: 'authz-v1', typed_config: { '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url: 'pilotfish.filters.Authz', value: { allow: ['/public'] } } },
    });
    const port = await cp.listen(0);
    const sink = new RecordingSink();
    const ecds: ResourceChanges[] = [];
    const secretsSeen: string[] = [];
    const client = new XdsClient({
      node,
      servers: [{ address: '127.0.0.1', port }],
      apiType,
      sink,
      resourceTypes: [
        {
          type: secretType((json, diag, path) => {
            const name = json.name as string;
            if (!json.tls_certificate) {
              diag.error(`${path}.tls_certificate`, 'is required');
              return undefined;
            }
            secretsSeen.push(name);
            return { name, typeUrl: TYPE_URLS.secret, config: { decodedBy: 'certs' } };
          }),
        },
        { type: extensionConfigType(), subscribe: ['authz-v1'], onChanges: (c) => ecds.push(c) },
      ],
    });
    client.start();
    t.teardown(async () => {
      client.stop();
      await cp.close();
    });
    await sink.until(() => ecds.length > 0);
    const ext = ecds[0]!.upserted[0]!.value as TypedExtension;
    t.same(ext, { name: 'authz-v1', typeUrl: 'pilotfish.filters.Authz', config: { allow: ['/public'] } });

    // the TLS cluster waits for its secret
    await new Promise((r) => setTimeout(r, 200));
    t.notOk(sink.clusters.has('web'), 'cluster not pushed before its secret');
    // a secret without a certificate is NACKed by the plugged decoder
    const nack = cp.server.waitForNack(node.id, TYPE_URLS.secret);
    cp.setResources(TYPE_URLS.secret, { 'web-cert': { name: 'web-cert' } });
    t.match((await nack).error, /tls_certificate: is required/);
    cp.setResources(TYPE_URLS.secret, { 'web-cert': { name: 'web-cert', tls_certificate: { certificate_chain: { inline_string: 'PEM' }, private_key: { inline_string: 'KEY' } } } });
    await sink.until(() => sink.clusters.has('web'));
    t.same(sink.secrets.get('web-cert')?.config, { decodedBy: 'certs' });
    const ops = sink.ops();
    t.ok(ops.indexOf('upsertSecret') < ops.indexOf('upsertCluster'));

    // the filters module changes the ECDS names it needs
    cp.setResources(TYPE_URLS.extensionConfig, {
      'authz-v1': { name: 'authz-v1', typed_config: { '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url: 'pilotfish.filters.Authz', value: { allow: ['/public'] } } },
      'authz-v2': { name: 'authz-v2', typed_config: { '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url: 'pilotfish.filters.Authz', value: { allow: [] } } },
    });
    client.subscribe(TYPE_URLS.extensionConfig, ['authz-v2']);
    await sink.until(() => ecds.some((c) => c.upserted.some((e) => e.name === 'authz-v2')));
    t.ok(ecds.some((c) => c.removed.includes('authz-v1')), 'unsubscribed v1 reported removed');
  });
}

t.test('DELTA_GRPC resume: a restarted control plane with the same content sends nothing new', async (t) => {
  const mesh = parseMesh({
    listeners: [{ name: 'in', port: 10001, routes: [{ prefix: '/', service: 'web' }] }],
    services: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 80 }] }],
  });
  const cp = new ControlPlane();
  cp.setMesh(mesh);
  const port = await cp.listen(0);
  const sink = new RecordingSink();
  const client = new XdsClient({ node, servers: [{ address: '127.0.0.1', port }], apiType: 'DELTA_GRPC', sink, backoff: { baseMs: 50, maxMs: 100 } });
  client.start();
  t.teardown(() => client.stop());
  await sink.until(() => sink.listeners.has('in') && sink.clusters.has('web'));
  const n = sink.calls.length;
  const attempts = client.stats()['cds.update_attempt'] as number;
  await cp.close();
  const cp2 = new ControlPlane();
  t.teardown(() => cp2.close());
  cp2.setMesh(mesh);
  await cp2.listen(port);
  await cp2.server.waitForAck(node.id, TYPE_URLS.cluster, 1, 30_000).catch(() => {});
  await until('the client to reconnect and be answered', () => (client.stats()['cds.update_attempt'] as number) > attempts, { state: () => client.stats() });
  t.ok((client.stats()['cds.update_attempt'] as number) > attempts, 'reconnected and got answered');
  t.equal(sink.calls.length, n, 'initial_resource_versions: nothing re-pushed to the sink');
});
