import t from 'tap';
import { get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

// HTTP RBAC as istiod configures it: envoy.filters.http.rbac twice under the same name
// (DENY policies, then ALLOW ones: both enforced, in order), with principals on the
// connection's filter state (here written by the set_filter_state network filter in
// front of the connection manager) and on dynamic metadata.

t.test('two HTTP RBAC filters with one name both apply; filter_state and metadata principals', async (t) => {
  const up = await startUpstream(t, 'up', (_req, res) => res.end('ok'));
  const rbac = (action: string, policies: string) => `
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ${action}
                policies:${policies}`;
  const p = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.set_filter_state
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config
          on_new_connection:
          - { object_key: example.client, format_string: { text_format_source: { inline_string: "ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" } } }
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config: { virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: up } }] }] }
          http_filters:${rbac('DENY', `
                  no-admin-from-loopback:
                    permissions: [{ url_path: { path: { prefix: /admin } } }]
                    principals: [{ filter_state: { key: example.client, string_match: { exact: "ip=127.0.0.1" } } }]
                  never:
                    permissions: [{ any: true }]
                    principals: [{ metadata: { filter: example.ns, path: [{ key: k }], value: { string_match: { exact: v } } } }]`)}${rbac('ALLOW', `
                  only-get:
                    permissions: [{ header: { name: ":method", string_match: { exact: GET } } }]
                    principals: [{ any: true }]`)}
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
${staticCluster('up', [up.port])}
`);
  const port = p.port('l');
  t.equal((await get(port, '/app')).status, 200, 'GET /app passes both filters');
  const admin = await get(port, '/admin');
  t.equal(admin.status, 403, 'the first (DENY) filter matches the connection filter state');
  t.equal(admin.body, 'RBAC: access denied');
  t.equal((await get(port, '/app', {}, 'POST', 'x')).status, 403, 'the second (ALLOW) filter of the same name applies too');
  t.equal(up.requests.length, 1, 'only the allowed request reached the upstream');
});
