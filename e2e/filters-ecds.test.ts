/**
 * ECDS: a listener's user filter whose config comes from the control plane by name
 * (`config_discovery`). New versions swap in without a chain rebuild; a version that fails
 * its integrity check is NACKed with the reason and the previous one keeps serving.
 */
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, formatProblem } from '../config/src/index.js';
import { ControlPlane, parseMesh } from '../controlplane/src/index.js';
import { sha256Hex } from '../filters/src/index.js';
import { TYPE_URLS } from '../xds-client/src/index.js';
import { Logger, startProxy } from '../proxy/src/index.js';
import { get } from '../proxy/test/helpers.js';
import { until } from '../test-support/wait.js';

const source = (tag: string) => `exports.onRequest = (req) => ({ status: 200, body: ${JSON.stringify(tag)} });\n`;
const ecdsResource = (tag: string, sha = sha256Hex(source(tag))) => ({
  name: 'tagger',
  typed_config: {
    '@type': 'type.googleapis.com/xds.type.v3.TypedStruct',
    type_url: 'pilotfish.filters.http.module',
    value: { inline_source: source(tag), sha256: sha, version: tag, api_version_range: '^1.0.0' },
  },
});


t.test('a user filter delivered over ECDS, swapped, and a bad version NACKed', async (t) => {
  const cp = new ControlPlane();
  cp.setMesh(parseMesh({ services: [] }));
  cp.setResources(TYPE_URLS.extensionConfig, { tagger: ecdsResource('v1') });
  const cpPort = await cp.listen(0);
  t.teardown(() => cp.close());

  const diag = new Diagnostics();
  const bootstrap = decodeBootstrap(parseYaml(`
node: { id: ecds-proxy, cluster: e2e }
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
dynamic_resources:
  ads_config: { api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: { virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 204 } }] }] }
          http_filters:
          - name: tagger
            config_discovery:
              config_source: { ads: {} }
              type_urls: [type.googleapis.com/pilotfish.filters.http.module]
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: xds
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment: { cluster_name: xds, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${cpPort} } } } }] }] }
`), diag);
  t.same(diag.errors.map(formatProblem), []);
  const proxy = await startProxy(bootstrap!, { log: new Logger('error'), adminPort: 0, drainTimeMs: 200, onQuit: () => undefined });
  t.teardown(() => proxy.stop(0)); // stops the proxy's own user filter workers too
  const port = proxy.server.boundPorts.get('main')!;

  await until('the ECDS version v1 to serve', async () => (await get(port, '/', { host: 'x' })).body === 'v1');
  t.pass('v1 delivered over ECDS answers requests');

  cp.setResources(TYPE_URLS.extensionConfig, { tagger: ecdsResource('v2') });
  await until('v2 to replace v1', async () => (await get(port, '/', { host: 'x' })).body === 'v2');
  t.pass('v2 swapped in without a listener change');

  cp.setResources(TYPE_URLS.extensionConfig, { tagger: ecdsResource('v3', 'f'.repeat(64)) });
  const nack = await cp.server.waitForNack('ecds-proxy', TYPE_URLS.extensionConfig);
  t.match(JSON.stringify(nack), /integrity check failed/, 'a version failing its sha256 is NACKed with the reason');
  for (let i = 0; i < 5; i++) t.equal((await get(port, '/', { host: 'x' })).body, 'v2', 'the previous version keeps serving');
  t.match((await get(proxy.adminPort!, '/stats')).body, /ecds\.update_rejected: [1-9]/, 'the rejection is counted');
});
