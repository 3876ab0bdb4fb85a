import t from 'tap';
import { decodeListener, Diagnostics } from '../src/index.js';

// istiod sets request_id_extension to the UUID extension on every HCM: that is what
// pilotfish does anyway, so it passes silently; another extension is named in a warning.

function hcm(ext: unknown): unknown {
  return {
    name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: 's', route_config: { virtual_hosts: [] }, http_filters: [{ name: 'envoy.filters.http.router' }],
      request_id_extension: ext,
    } }] }],
  };
}

t.test('request_id_extension: UUID accepted silently, others warned by name', async (t) => {
  const d1 = new Diagnostics();
  t.ok(decodeListener(hcm({ typed_config: { '@type': 'type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig', use_request_id_for_trace_sampling: true } }), d1, 'l'));
  t.same(d1.warnings, []);
  const d2 = new Diagnostics();
  t.ok(decodeListener(hcm({ typed_config: { '@type': 'type.googleapis.com/example.OtherRequestId' } }), d2, 'l'));
  t.match(d2.warnings.map((w) => `${w.path}: ${w.message}`).join('\n'), /request_id_extension: type\.googleapis\.com\/example\.OtherRequestId is not supported by pilotfish; ignored/);
});
