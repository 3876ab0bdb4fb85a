/**
 * The peer metadata wire formats: Struct/Any encoding checked against protobufjs (an
 * independent implementation of the same wire format), the TCP exchange's framing under
 * every split of the bytes, and decoders that never throw on arbitrary input.
 */
import t from 'tap';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import {
  decodeAny, decodeStruct, encodeAny, encodeStruct, encodeExchange, ExchangeReader, MX_MAGIC,
  decodePeerHeader, encodePeerHeader, type JsonStruct, type JsonValue,
} from '../src/index.js';

const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto')!);
root.add(protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/any.proto')!).lookup('google.protobuf.Any')!.parent!);
const StructT = root.lookupType('google.protobuf.Struct');

const key = fc.string({ maxLength: 12 });
const jsonValue: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true }),
    fc.string({ maxLength: 20 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(key, tie('v'), { maxKeys: 4 }),
  ),
})).v;
const struct: fc.Arbitrary<JsonStruct> = fc.dictionary(key, jsonValue, { maxKeys: 6 });

/** protobufjs' Struct as plain JSON (its fields/kind representation flattened). */
function fromPbjs(m: Record<string, unknown>): JsonStruct {
  const out: JsonStruct = {};
  for (const [k, v] of Object.entries((m.fields ?? {}) as Record<string, Record<string, unknown>>)) out[k] = valueFromPbjs(v);
  return out;
}
function valueFromPbjs(v: Record<string, unknown>): JsonValue {
  if ('numberValue' in v) return v.numberValue as number;
  if ('stringValue' in v) return v.stringValue as string;
  if ('boolValue' in v) return v.boolValue as boolean;
  if ('structValue' in v) return fromPbjs(v.structValue as Record<string, unknown>);
  if ('listValue' in v) return (((v.listValue as { values?: Record<string, unknown>[] }).values) ?? []).map(valueFromPbjs);
  return null;
}

t.test('Struct: our encoding decodes with protobufjs and with ours to the same value', async (t) => {
  fc.assert(
    fc.property(struct, (s) => {
      const bytes = encodeStruct(s);
      const viaPbjs = fromPbjs(StructT.toObject(StructT.decode(bytes), { oneofs: false }) as Record<string, unknown>);
      const ours = decodeStruct(bytes);
      t.ok(ours.ok);
      // protobufjs turns a map key "__proto__" into a prototype assignment: only ours is checked then
      // (a peer's metadata is untrusted input; our decoder must keep such a key as data).
      if (!JSON.stringify(s).includes('"__proto__"')) t.same(viaPbjs, s);
      if (ours.ok) t.same(ours.value, s);
    }),
    { numRuns: 300 },
  );
});

t.test('Struct: a key named __proto__ is data, not a prototype (untrusted peer metadata)', async (t) => {
  const s = JSON.parse('{"__proto__": {"polluted": true}, "app": "x"}') as JsonStruct;
  const ours = decodeStruct(encodeStruct(s));
  t.ok(ours.ok);
  if (!ours.ok) return;
  t.ok(Object.hasOwn(ours.value, '__proto__'), 'kept as an own key');
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  t.equal((ours.value as Record<string, unknown>).polluted, undefined, 'the decoded object did not inherit from it');
});

t.test('Struct: deterministic (key order does not change the bytes)', async (t) => {
  const a = encodeStruct({ b: 1, a: 'x', c: { z: true, y: null } });
  const b = encodeStruct({ c: { y: null, z: true }, a: 'x', b: 1 });
  t.same(Buffer.from(a), Buffer.from(b));
});

t.test('Struct/Any decoders never throw on arbitrary bytes', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      const s = decodeStruct(b);
      const a = decodeAny(b);
      if (!s.ok && typeof s.reason !== 'string') throw new Error('no reason');
      if (!a.ok && typeof a.reason !== 'string') throw new Error('no reason');
    }),
    { numRuns: 2000 },
  );
});

t.test('Struct decoding refuses deep nesting with a reason', async (t) => {
  let v: JsonValue = 'leaf';
  for (let i = 0; i < 100; i++) v = { k: v };
  const d = decodeStruct(encodeStruct({ k: v }));
  t.notOk(d.ok);
  if (!d.ok) t.match(d.reason, /nested deeper/);
});

t.test('Any round trip', async (t) => {
  const inner = encodeStruct({ a: 'b' });
  const d = decodeAny(encodeAny('type.googleapis.com/google.protobuf.Struct', inner));
  t.ok(d.ok);
  if (d.ok) {
    t.equal(d.value.typeUrl, 'type.googleapis.com/google.protobuf.Struct');
    t.same(Buffer.from(d.value.value), Buffer.from(inner));
  }
});

const NODE = {
  NAME: 'reviews-v1-5d9f', NAMESPACE: 'default', WORKLOAD_NAME: 'reviews-v1', CLUSTER_ID: 'Kubernetes', MESH_ID: 'cluster.local',
  OWNER: 'kubernetes://apis/apps/v1/namespaces/default/deployments/reviews-v1',
  LABELS: { app: 'reviews', version: 'v1', 'service.istio.io/canonical-name': 'reviews', 'service.istio.io/canonical-revision': 'v1' },
  PROXY_CONFIG: { concurrency: 2 }, // not exchanged
};

t.test('TCP exchange: framing, then the same peer under every split of the bytes', async (t) => {
  const frame = encodeExchange('sidecar~10.0.0.1~reviews-v1-5d9f.default~default.svc.cluster.local', NODE);
  t.equal(frame.readUInt32BE(0), MX_MAGIC);
  t.equal(frame.readUInt32BE(4), frame.length - 8);
  const app = Buffer.from('GET / HTTP/1.1\r\n\r\n');
  const all = Buffer.concat([frame, app]);
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: all.length - 1 }), { maxLength: 6 }), (cuts) => {
      const points = [0, ...cuts.sort((a, b) => a - b), all.length];
      const reader = new ExchangeReader();
      let result;
      for (let i = 1; i < points.length; i++) {
        result = reader.push(all.subarray(points[i - 1], points[i]));
        if (result.kind !== 'more') {
          // What came after the exchange in this chunk, plus the chunks still to come, is the application's.
          const rest = Buffer.concat([result.rest, all.subarray(points[i])]);
          t.same(rest, app);
          break;
        }
      }
      if (result?.kind !== 'done') throw new Error(`exchange not complete: ${result?.kind}`);
      t.equal(result.peer.workloadName, 'reviews-v1');
      t.equal(result.peer.namespace, 'default');
      t.equal(result.peer.appVersion, 'v1');
      t.equal(result.peer.canonicalName, 'reviews');
      t.equal(result.peerId, 'sidecar~10.0.0.1~reviews-v1-5d9f.default~default.svc.cluster.local');
    }),
    { numRuns: 200 },
  );
});

t.test('TCP exchange: a peer without the filter (wrong magic) passes its bytes on untouched', async (t) => {
  const r = new ExchangeReader();
  const bytes = Buffer.from('SSH-2.0-OpenSSH_9.6\r\n');
  const res = r.push(bytes);
  t.equal(res.kind, 'invalid');
  if (res.kind === 'invalid') {
    t.same(res.rest, bytes);
    t.match(res.reason, /magic/);
  }
});

t.test('TCP exchange: an oversized length is refused without buffering it', async (t) => {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(MX_MAGIC, 0);
  h.writeUInt32BE(0x7fffffff, 4);
  const res = new ExchangeReader().push(h);
  t.equal(res.kind, 'invalid');
});

t.test('TCP exchange reader never throws on arbitrary input after a valid magic', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
      const h = Buffer.alloc(8);
      h.writeUInt32BE(MX_MAGIC, 0);
      h.writeUInt32BE(tail.length, 4);
      const res = new ExchangeReader().push(Buffer.concat([h, tail]));
      if (res.kind === 'more') throw new Error('complete frame reported incomplete');
    }),
    { numRuns: 1000 },
  );
});

t.test('x-envoy-peer-metadata: base64 Struct of the exchanged node keys', async (t) => {
  const v = encodePeerHeader(NODE);
  const raw = decodeStruct(Buffer.from(v, 'base64'));
  t.ok(raw.ok);
  if (raw.ok) {
    t.same(Object.keys(raw.value).sort(), ['CLUSTER_ID', 'LABELS', 'MESH_ID', 'NAME', 'NAMESPACE', 'OWNER', 'WORKLOAD_NAME']);
  }
  const w = decodePeerHeader(v);
  t.same(w, {
    instanceName: 'reviews-v1-5d9f', namespace: 'default', workloadName: 'reviews-v1', clusterId: 'Kubernetes',
    canonicalName: 'reviews', canonicalRevision: 'v1', appName: 'reviews', appVersion: 'v1',
    owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/reviews-v1',
  });
  t.equal(decodePeerHeader('not base64 !!'), undefined);
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => void decodePeerHeader(s)), { numRuns: 500 });
});
