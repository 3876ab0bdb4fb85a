import t from 'tap';
import fc from 'fast-check';
import { compileMesh, MeshError, parseMesh } from '../src/index.js';
import { TYPE_URLS, decodeResourceJson, encodeJson } from '../../xds-client/src/index.js';
import { Diagnostics, decodeCluster, decodeListener } from '../../config/src/index.js';

// The mesh YAML's `tls` block: mTLS on the listeners and clusters the control plane serves
// (docker-compose.yml, deploy/k8s). What the proxy receives must decode with our own
// decoders after a wire round trip, and carry the SAN checks the YAML asks for.
const tls = { certificate: '/c/waypoint.chain.crt', private_key: '/c/waypoint.key', ca: '/c/root.crt', trust_domain: 'mesh.test' };
const mesh = {
  tls,
  listeners: [
    { name: 'waypoint', port: 15080, routes: [{ prefix: '/a', service: 'a' }, { prefix: '/b', service: 'b' }] },
    { name: 'plain', port: 8080, tls: false, routes: [{ prefix: '/', service: 'a' }] },
    { name: 'greeter', grpc: true, routes: [{ prefix: '/', service: 'a' }] },
  ],
  services: [
    { name: 'a', peer: 'spiffe://mesh.test/ns/demo/sa/a', endpoints: [{ address: '10.0.0.1', port: 15006 }] },
    { name: 'b', endpoints: [{ address: '10.0.0.2', port: 15006 }] },
    { name: 'c', tls: false, endpoints: [{ address: '10.0.0.3', port: 80 }] },
  ],
};

type Json = Record<string, any>;
const roundTrip = (url: string, json: unknown): Json => decodeResourceJson(url, encodeJson(url, json as Json)) as Json;

t.test('listeners require mesh client certificates; clusters check the peer ID; opt-outs stay plaintext', async (t) => {
  const res = compileMesh(parseMesh(mesh));
  const wp = roundTrip(TYPE_URLS.listener, res.get(TYPE_URLS.listener)!.get('waypoint'));
  const ts = wp.filter_chains[0].transport_socket;
  t.equal(ts.typed_config['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext');
  t.equal(ts.typed_config.require_client_certificate, true);
  const ctx = ts.typed_config.common_tls_context;
  t.equal(ctx.tls_certificates[0].certificate_chain.filename, tls.certificate);
  t.equal(ctx.tls_certificates[0].private_key.filename, tls.private_key);
  t.equal(ctx.validation_context.trusted_ca.filename, tls.ca);
  t.same(ctx.validation_context.match_typed_subject_alt_names[0].matcher, { prefix: 'spiffe://mesh.test/' });
  t.equal((res.get(TYPE_URLS.listener)!.get('plain') as Json).filter_chains[0].transport_socket, undefined, 'tls: false listener is plaintext');
  t.notOk(JSON.stringify(res.get(TYPE_URLS.listener)!.get('greeter')).includes('transport_socket'), 'gRPC API listener untouched');

  const a = roundTrip(TYPE_URLS.cluster, res.get(TYPE_URLS.cluster)!.get('a'));
  t.equal(a.transport_socket.typed_config['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
  t.same(a.transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher, { exact: 'spiffe://mesh.test/ns/demo/sa/a' });
  const b = res.get(TYPE_URLS.cluster)!.get('b')! as Json;
  t.same(b.transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher, { prefix: 'spiffe://mesh.test/' }, 'no peer: any ID in the trust domain');
  t.equal((res.get(TYPE_URLS.cluster)!.get('c') as Json).transport_socket, undefined, 'tls: false service is plaintext');

  for (const [url, dec] of [[TYPE_URLS.listener, decodeListener], [TYPE_URLS.cluster, decodeCluster]] as const) {
    for (const [name, json] of res.get(url)!) {
      if (name === 'greeter') continue; // an API listener: for gRPC clients, not the proxy's decoder
      const diag = new Diagnostics();
      t.ok((dec as (j: unknown, d: Diagnostics, p: string) => unknown)(roundTrip(url, json), diag, name), `${name} decodes`);
      t.same(diag.errors, [], `${name}: no errors`);
    }
  }
});

t.test('without `tls` nothing changes', async (t) => {
  const { tls: _omit, ...plain } = mesh;
  const res = compileMesh(parseMesh(plain));
  t.notOk(JSON.stringify([...res.get(TYPE_URLS.listener)!.values(), ...res.get(TYPE_URLS.cluster)!.values()]).includes('transport_socket'));
});

t.test('bad TLS settings: one-line errors naming the field', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ ...mesh, tls: { ...tls, trust_domain: 'Bad Domain' } }, /^\(mesh\)\.tls\.trust_domain: must be a SPIFFE trust domain/],
    [{ ...mesh, tls: { ...tls, ca: undefined } }, /^\(mesh\)\.tls\.ca: is required$/],
    [{ ...mesh, tls: { ...tls, extra: 1 } }, /^\(mesh\)\.tls\.extra: unknown field/],
    [{ ...mesh, tls: 'yes' }, /^\(mesh\)\.tls: expected a mapping$/],
    [{ ...mesh, services: [{ name: 'a', peer: 'https://x' }] }, /^services\[0\]\.peer: must be a SPIFFE ID/],
    [{ ...mesh, services: [{ name: 'a', peer: 'spiffe://other.test/sa/a' }] }, /^services\[0\]\.peer: is not in the mesh trust domain mesh\.test$/],
    [{ ...mesh, services: [{ name: 'a', tls: 'no' }] }, /^services\[0\]\.tls: must be true or false$/],
    [{ ...mesh, listeners: [{ name: 'l', port: 1, tls: 1 }] }, /^listeners\[0\]\.tls: must be true or false$/],
  ];
  for (const [doc, re] of cases) {
    try {
      parseMesh(doc);
      t.fail(`accepted ${JSON.stringify(doc).slice(0, 80)}`);
    } catch (e) {
      t.ok(e instanceof MeshError, 'MeshError');
      t.match((e as Error).message, re);
      t.notOk((e as Error).message.includes('\n'), 'one line');
    }
  }
});

t.test('property: any tls block either parses into resources that decode, or fails with a MeshError', async () => {
  const value = fc.oneof(fc.constant(undefined), fc.string({ maxLength: 12 }), fc.boolean(), fc.integer(), fc.constant('mesh.test'), fc.constant('/c/x.pem'), fc.constant('spiffe://mesh.test/ns/a/sa/b'));
  const tlsArb = fc.oneof(fc.constant(undefined), value, fc.record({ certificate: value, private_key: value, ca: value, trust_domain: value }, { requiredKeys: [] }));
  const svc = fc.record({ name: fc.constant('a'), tls: value, peer: value }, { requiredKeys: ['name'] });
  fc.assert(
    fc.property(tlsArb, svc, fc.oneof(fc.constant(undefined), value), (tlsDoc, s, ltls) => {
      let parsed;
      try {
        parsed = parseMesh({ tls: tlsDoc, services: [{ ...s, endpoints: [{ address: '10.0.0.1', port: 1 }] }], listeners: [{ name: 'l', port: 1, tls: ltls, routes: [{ prefix: '/', service: 'a' }] }] });
      } catch (e) {
        if (!(e instanceof MeshError) || e.message.includes('\n')) throw e;
        return;
      }
      const res = compileMesh(parsed);
      for (const [url, dec] of [[TYPE_URLS.listener, decodeListener], [TYPE_URLS.cluster, decodeCluster]] as const) {
        for (const [name, json] of res.get(url)!) {
          const diag = new Diagnostics();
          (dec as (j: unknown, d: Diagnostics, p: string) => unknown)(roundTrip(url, json), diag, name);
          if (diag.errors.length > 0) throw new Error(`${name}: ${JSON.stringify(diag.errors[0])}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});
