import t from 'tap';
import fc from 'fast-check';
import { codecs, decodeResourceJson, encodeJson, envoyRoot } from '../src/protos.js';
import { T } from './helpers.js';

t.test('round trip keeps Any, Struct, durations and enums in proto3-JSON shape', async (t) => {
  const json = {
    name: 'c',
    type: 'EDS',
    connect_timeout: '1.5s',
    lb_policy: 'MAGLEV',
    metadata: { filter_metadata: { m: { a: 1, b: [true, 'x', null], c: { d: 'e' } } } },
    per_connection_buffer_limit_bytes: 1024,
  };
  const back = decodeResourceJson(T.cluster, encodeJson(T.cluster, json));
  t.same(back, { ...json, connect_timeout: { seconds: 1, nanos: 500_000_000 } });
});

t.test('a nested Any of an unknown type decodes to just its @type', async (t) => {
  const root = envoyRoot();
  const Listener = root.lookupType('envoy.config.listener.v3.Listener');
  const msg = Listener.fromObject({
    name: 'l',
    filter_chains: [{ filters: [{ name: 'x', typed_config: { type_url: 'type.googleapis.com/istio.nope.v1.Stats', value: new Uint8Array([8, 1]) } }] }],
  });
  const back = decodeResourceJson(T.listener, Listener.encode(msg).finish());
  t.same(back, { name: 'l', filter_chains: [{ filters: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/istio.nope.v1.Stats' } }] }] });
});

t.test('discovery messages keep resources as raw bytes', async (t) => {
  const value = encodeJson(T.cluster, { name: 'c' });
  const r = codecs.deltaResponse.decode(codecs.deltaResponse.encode({ system_version_info: '1', nonce: 'n', type_url: T.cluster, removed_resources: ['gone'], resources: [{ name: 'c', version: 'v', resource: { type_url: T.cluster, value } }] }));
  t.equal(r.resources[0]?.name, 'c');
  t.same(Buffer.from(r.resources[0]!.resource!.value), Buffer.from(value));
  t.same(r.removed_resources, ['gone']);
  const q = codecs.request.decode(codecs.request.encode({ version_info: '', resource_names: ['a'], type_url: T.endpoint, response_nonce: 'x', node: { id: 'n', cluster: 'c', metadata: { k: 'v' } }, error_detail: { code: 3, message: 'bad' } }));
  t.same(q.node?.metadata, { k: 'v' });
  t.equal(q.error_detail?.message, 'bad');
});

t.test('property: random bytes never throw anything but an Error, and a valid cluster round-trips', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        decodeResourceJson(T.cluster, bytes);
      } catch (e) {
        if (!(e instanceof Error)) throw new Error('non-Error thrown');
      }
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.integer({ min: 0, max: 1e6 }), (name, limit) => {
      const back = decodeResourceJson(T.cluster, encodeJson(T.cluster, { name, per_connection_buffer_limit_bytes: limit }));
      return back.name === name && (limit === 0 ? back.per_connection_buffer_limit_bytes === 0 || back.per_connection_buffer_limit_bytes === undefined : back.per_connection_buffer_limit_bytes === limit);
    }),
  );
  t.pass();
});
