import t from 'tap';
import { decodeBootstrap, Diagnostics } from '../../config/src/index.js';
import { ControlPlane, parseMesh } from '../../controlplane/src/index.js';
import { XdsClient, xdsOptionsFromBootstrap } from '../src/index.js';
import { RecordingSink } from './helpers.js';

function bootstrap(port: number, apiType: string) {
  const diag = new Diagnostics();
  const b = decodeBootstrap(
    {
      node: { id: 'boot', cluster: 'c' },
      static_resources: {
        clusters: [
          {
            name: 'xds',
            type: 'STATIC',
            connect_timeout: '1s',
            typed_extension_protocol_options: {
              'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
                '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
                explicit_http_config: { http2_protocol_options: {} },
              },
            },
            load_assignment: { cluster_name: 'xds', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
          },
        ],
      },
      dynamic_resources: {
        ads_config: { api_type: apiType, transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds' } }] },
        lds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '2s' },
        cds_config: { ads: {}, resource_api_version: 'V3' },
      },
    },
    diag,
  );
  if (!b) throw new Error(JSON.stringify(diag.errors));
  return b;
}

t.test('options from a bootstrap reach the control plane', async (t) => {
  const cp = new ControlPlane();
  cp.setMesh(parseMesh({ services: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 80 }] }] }));
  const port = await cp.listen(0);
  t.teardown(() => cp.close());
  for (const apiType of ['GRPC', 'DELTA_GRPC']) {
    const sink = new RecordingSink();
    const opts = xdsOptionsFromBootstrap(bootstrap(port, apiType), { sink });
    t.ok(opts);
    t.same(opts!.servers, [{ address: '127.0.0.1', port }]);
    t.equal(opts!.apiType, apiType);
    t.equal(opts!.initialFetchTimeoutMs, 15_000);
    const client = new XdsClient(opts!);
    client.start();
    t.teardown(() => client.stop());
    await sink.until(() => sink.clusters.has('web'));
    await client.initialized;
    t.same(sink.endpointKeys('web'), ['10.0.0.1:80']);
  }
});

t.test('no dynamic_resources: no options; unknown cluster: an error naming the field', async (t) => {
  const diag = new Diagnostics();
  const b = decodeBootstrap({ node: { id: 'x', cluster: 'c' }, static_resources: {} }, diag)!;
  t.equal(xdsOptionsFromBootstrap(b, { sink: new RecordingSink() }), undefined);
  const b2 = bootstrap(1, 'GRPC');
  const broken = { ...b2, staticResources: { ...b2.staticResources, clusters: [] } };
  t.throws(() => xdsOptionsFromBootstrap(broken, { sink: new RecordingSink() }), /grpc_services\[0\]\.envoy_grpc\.cluster_name: no static cluster "xds"/);
});
