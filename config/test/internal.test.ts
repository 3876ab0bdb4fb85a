import t from 'tap';
import fc from 'fast-check';
import { decodeBootstrap, decodeListener, decodeLbEndpoint, Diagnostics, ObjectReader, flattenLoadAssignment } from '../src/index.js';
import { decodeAddress } from '../src/address.js';
import { decodeInternalUpstream, decodeTunnelingConfig } from '../src/internal.js';

// Internal listeners, envoy_internal_address endpoints, internal_upstream and
// tunneling_config: the decoders of a waypoint's configuration (config/src/internal.ts).

const runs = { numRuns: 300 };

function reader(v: unknown): { r: ObjectReader; diag: Diagnostics } {
  const diag = new Diagnostics();
  return { r: ObjectReader.of(v, 'x', diag)!, diag };
}

const listenerName = fc.stringMatching(/^[a-z][a-z0-9_.|-]{0,30}$/);
const endpointId = fc.oneof(fc.constant(''), fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([a, p]) => `${a}:${p}`));

t.test('envoy_internal_address decodes to an internal SocketAddress keyed by listener and endpoint id', async () => {
  fc.assert(fc.property(listenerName, endpointId, (name, id) => {
    const { r, diag } = reader({ envoy_internal_address: { server_listener_name: name, ...(id ? { endpoint_id: id } : {}) } });
    const a = decodeAddress(r, false);
    return diag.errors.length === 0 && a?.internal?.serverListenerName === name && a.internal.endpointId === id
      && a.port === 0 && a.address === `envoy://${name}/${id}`;
  }), runs);
});

t.test('envoy_internal_address: anything else in it is reported, never thrown', async () => {
  fc.assert(fc.property(fc.jsonValue(), (v) => {
    const { r, diag } = reader({ envoy_internal_address: v });
    const a = decodeAddress(r, false);
    // Decoded only with a non-empty listener name; otherwise an error names the field.
    return a !== undefined ? typeof a.internal?.serverListenerName === 'string' && a.internal.serverListenerName !== '' : diag.errors.length > 0;
  }), runs);
});

t.test('an internal endpoint keeps its filter_metadata and is keyed by its address', async (t) => {
  const diag = new Diagnostics();
  const lb = decodeLbEndpoint(ObjectReader.of({
    endpoint: { address: { envoy_internal_address: { server_listener_name: 'connect_originate', endpoint_id: '10.0.0.7:8080' } } },
    metadata: { filter_metadata: { 'envoy.filters.listener.original_dst': { local: '10.0.0.7:8080' } } },
  }, 'e', diag)!, false);
  t.same(diag.errors, []);
  const [ep] = flattenLoadAssignment({ clusterName: 'c', endpoints: [{ locality: { region: '', zone: '', subZone: '' }, lbEndpoints: [lb!], priority: 0 }], overprovisioningFactor: 140 });
  t.equal(ep?.key, 'envoy://connect_originate/10.0.0.7:8080');
  t.same(ep?.internal, { serverListenerName: 'connect_originate', endpointId: '10.0.0.7:8080', metadata: { 'envoy.filters.listener.original_dst': { local: '10.0.0.7:8080' } } });
});

t.test('a listener with internal_listener needs a name, has no address and never binds', async (t) => {
  const base = { filter_chains: [{ filters: [{ name: 'tcp', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'c' } }] }] };
  let diag = new Diagnostics();
  const l = decodeListener({ name: 'main_internal', internal_listener: {}, ...base }, diag, 'l');
  t.same(diag.errors, []);
  t.equal(l?.internal, true);
  t.equal(l?.bindToPort, false);
  diag = new Diagnostics();
  t.equal(decodeListener({ internal_listener: {}, ...base }, diag, 'l'), undefined);
  t.match(diag.errors.map((e) => `${e.path}: ${e.message}`).join('\n'), /l\.name: is required for an internal listener/);
  diag = new Diagnostics();
  decodeListener({ name: 'x', internal_listener: {}, address: { envoy_internal_address: { server_listener_name: 'x' } }, ...base }, diag, 'l');
  t.match(diag.errors.map((e) => e.message).join('\n'), /internal_listener set and no address/);
});

t.test('internal_upstream: host and cluster passthrough metadata; a TLS socket inside is refused (double HBONE)', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('host', 'cluster'), fc.string({ minLength: 1, maxLength: 20 })), { maxLength: 5 }), (list) => {
    const diag = new Diagnostics();
    const spec = decodeInternalUpstream({ passthrough_metadata: list.map(([k, name]) => ({ kind: { [k]: {} }, name })), transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } }, diag, 'ts');
    return diag.errors.length === 0 && spec !== undefined && spec.passthroughMetadata.every((p, i) => p.kind === list[i]![0] && p.name === list[i]![1]);
  }), runs);
  const diag = new Diagnostics();
  t.equal(decodeInternalUpstream({ transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext' } } }, diag, 'ts'), undefined);
  t.match(diag.errors[0]?.message, /double HBONE/);
  const d2 = new Diagnostics();
  decodeInternalUpstream({ passthrough_metadata: [{ kind: { route: {} }, name: 'x' }] }, d2, 'ts');
  t.match(d2.errors[0]?.message, /only host and cluster metadata/);
});

t.test('tunneling_config: hostname required; use_post / post_path checked; any JSON is decoded or reported', async (t) => {
  fc.assert(fc.property(fc.string({ minLength: 1 }), fc.boolean(), (hostname, usePost) => {
    const { r, diag } = reader({ hostname, use_post: usePost, headers_to_add: [{ header: { key: 'baggage', value: '%DOWNSTREAM_PEER_URI_SAN%' } }] });
    const c = decodeTunnelingConfig(r);
    return diag.errors.length === 0 && c?.hostname === hostname && c.usePost === usePost && c.headersToAdd[0]?.key === 'baggage';
  }), runs);
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('hostname', 'use_post', 'post_path', 'headers_to_add', 'propagate_response_headers', 'other'), fc.jsonValue()), (v) => {
    const { r, diag } = reader(v);
    const c = decodeTunnelingConfig(r);
    return c !== undefined || diag.errors.length > 0;
  }), runs);
  const { r, diag } = reader({ hostname: 'h', post_path: '/p' });
  t.equal(decodeTunnelingConfig(r), undefined);
  t.match(diag.errors[0]?.message, /requires use_post/);
});

t.test('the internal_listener bootstrap extension is known', async (t) => {
  const diag = new Diagnostics();
  const b = decodeBootstrap({ bootstrap_extensions: [{ name: 'envoy.bootstrap.internal_listener', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener', buffer_size_kb: 64 } }] }, diag);
  t.same(diag.errors, []);
  t.equal(b?.bootstrapExtensions.length, 1);
});
