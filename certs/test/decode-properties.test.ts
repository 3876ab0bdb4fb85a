import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../config/src/validation.js';
import { snakeToCamel } from '../../config/src/reader.js';
import { decodeDownstreamTlsContext, decodeSecret, decodeUpstreamTlsContext } from '../src/index.js';

// Properties of the TLS decoders now that they run on config's ObjectReader.

type Json = Record<string, unknown>;
const cert = { certificate_chain: { filename: '/etc/certs/tls.crt' }, private_key: { inline_string: 'key' } };
const base = (): Json => structuredClone({
  require_client_certificate: true,
  common_tls_context: {
    tls_params: { tls_minimum_protocol_version: 'TLSv1_2', tls_maximum_protocol_version: 'TLSv1_3' },
    tls_certificates: [cert],
    validation_context: {
      trusted_ca: { filename: '/etc/certs/ca.crt' },
      match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://example.org/' } }],
    },
  },
});

/** The objects of `base()` a field can be added to, by path (relative to the root 'tc'). */
const SPOTS: Record<string, (o: Json) => Json> = {
  tc: (o) => o,
  'tc.common_tls_context': (o) => o['common_tls_context'] as Json,
  'tc.common_tls_context.tls_params': (o) => (o['common_tls_context'] as Json)['tls_params'] as Json,
  'tc.common_tls_context.tls_certificates[0]': (o) => ((o['common_tls_context'] as Json)['tls_certificates'] as Json[])[0]!,
  'tc.common_tls_context.tls_certificates[0].certificate_chain': (o) => (((o['common_tls_context'] as Json)['tls_certificates'] as Json[])[0]!)['certificate_chain'] as Json,
  'tc.common_tls_context.validation_context': (o) => (o['common_tls_context'] as Json)['validation_context'] as Json,
  'tc.common_tls_context.validation_context.match_typed_subject_alt_names[0]': (o) =>
    (((o['common_tls_context'] as Json)['validation_context'] as Json)['match_typed_subject_alt_names'] as Json[])[0]!,
  'tc.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher': (o) =>
    ((((o['common_tls_context'] as Json)['validation_context'] as Json)['match_typed_subject_alt_names'] as Json[])[0]!)['matcher'] as Json,
};

const SHARED = new Set(['tc.common_tls_context.tls_certificates[0].certificate_chain', 'tc.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher']);
const nonNullJson = fc.jsonValue().filter((v) => v !== null);

t.test('property: the TLS decoders never throw on arbitrary JSON, and report only under their path', async (t) => {
  fc.assert(fc.property(fc.jsonValue(), (v) => {
    for (const f of [decodeDownstreamTlsContext, decodeUpstreamTlsContext, decodeSecret] as const) {
      const d = new Diagnostics();
      const r = f(v, d, 'p');
      if (r !== undefined && d.errors.length > 0) return false;
      if (![...d.errors, ...d.warnings].every((p) => p.path === 'p' || p.path.startsWith('p.'))) return false;
    }
    return true;
  }), { numRuns: 1000 });
  t.pass();
});

t.test('property: a field Envoy does not have is reported at its exact path (an error: a typo must not weaken TLS)', async (t) => {
  const unknownKey = fc.stringMatching(/^x[a-z_]{0,12}$/);
  fc.assert(fc.property(fc.constantFrom(...Object.keys(SPOTS)), unknownKey, nonNullJson, (spot, key, value) => {
    const o = base();
    SPOTS[spot]!(o)[key] = value;
    const d = new Diagnostics();
    const r = decodeDownstreamTlsContext(o, d, 'tc');
    // DataSources and string matchers are config's shared decoders, which warn: a typo there cannot
    // weaken anything because their oneof (filename/inline..., exact/prefix...) is required anyway.
    if (SHARED.has(spot)) return r !== undefined && d.errors.length === 0 && d.warnings.some((w) => w.path === `${spot}.${key}`);
    return r === undefined && d.errors.some((e) => e.path === `${spot}.${key}` && e.message === 'unknown field') && d.warnings.length === 1;
  }), { numRuns: 300 });
  t.pass();
});

t.test('property: a field Envoy has and pilotfish does not support is a warning at its exact path', async (t) => {
  const known: [string, string][] = [
    ['tc', 'require_sni'], ['tc', 'ocsp_staple_policy'], ['tc.common_tls_context', 'key_log'], ['tc.common_tls_context.tls_params', 'compliance_policies'],
    ['tc.common_tls_context.validation_context', 'crl'], ['tc.common_tls_context.tls_certificates[0]', 'ocsp_staple'],
    ['tc.common_tls_context.validation_context.match_typed_subject_alt_names[0]', 'oid'],
  ];
  fc.assert(fc.property(fc.constantFrom(...known), nonNullJson, fc.boolean(), ([spot, key], value, camel) => {
    const o = base();
    const name = camel ? snakeToCamel(key) : key;
    SPOTS[spot]!(o)[name] = value;
    const d = new Diagnostics();
    const r = decodeDownstreamTlsContext(o, d, 'tc');
    // The base context allows TLS 1.2, which is itself one warning.
    return r !== undefined && d.errors.length === 0 && d.warnings.some((w) => w.path === `${spot}.${name}` && /not supported/.test(w.message));
  }), { numRuns: 200 });
  t.pass();
});

const randomCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length })
  .map((flips) => [...s].map((c, i) => (flips[i] ? c.toUpperCase() : c.toLowerCase())).join(''));

t.test('property: enums match case-insensitively (and by number), as Envoy\'s loader does', async (t) => {
  const want = decodeDownstreamTlsContext(base(), new Diagnostics(), 'tc');
  t.ok(want);
  fc.assert(fc.property(randomCase('TLSv1_2'), randomCase('URI'), (version, sanType) => {
    const o = base();
    SPOTS['tc.common_tls_context.tls_params']!(o)['tls_minimum_protocol_version'] = version;
    SPOTS['tc.common_tls_context.validation_context.match_typed_subject_alt_names[0]']!(o)['san_type'] = sanType;
    const d = new Diagnostics();
    const got = decodeDownstreamTlsContext(o, d, 'tc');
    return d.errors.length === 0 && JSON.stringify(got) === JSON.stringify(want);
  }), { numRuns: 200 });
  const byNumber = base();
  SPOTS['tc.common_tls_context.tls_params']!(byNumber)['tls_minimum_protocol_version'] = 3;
  t.same(decodeDownstreamTlsContext(byNumber, new Diagnostics(), 'tc'), want, 'TLSv1_2 is 3 in the proto');
});

t.test('property: lowerCamelCase names decode as snake_case ones', async (t) => {
  const camelize = (v: unknown, flip: () => boolean): unknown => {
    if (Array.isArray(v)) return v.map((x) => camelize(x, flip));
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [flip() ? snakeToCamel(k) : k, camelize(x, flip)]));
  };
  const want = JSON.stringify(decodeDownstreamTlsContext(base(), new Diagnostics(), 'tc'));
  fc.assert(fc.property(fc.array(fc.boolean(), { minLength: 32, maxLength: 32 }), (flips) => {
    let i = 0;
    const d = new Diagnostics();
    const got = decodeDownstreamTlsContext(camelize(base(), () => flips[i++ % flips.length]!), d, 'tc');
    return d.errors.length === 0 && JSON.stringify(got) === want;
  }), { numRuns: 100 });
  t.pass();
});

t.test('null means absent (proto3 JSON): a null required message is reported, not silently dropped', async (t) => {
  const d = new Diagnostics();
  t.equal(decodeDownstreamTlsContext({ common_tls_context: null }, d, 'tc'), undefined);
  t.same(d.errors.map((e) => e.path), ['tc.common_tls_context']);
  const u = new Diagnostics();
  t.equal(decodeUpstreamTlsContext({ common_tls_context: { tls_certificates: [{ certificate_chain: null, private_key: { inline_string: 'k' } }] } }, u, 'tc'), undefined);
  t.same(u.errors.map((e) => e.path), ['tc.common_tls_context.tls_certificates[0].certificate_chain']);
  const s = new Diagnostics();
  t.equal(decodeSecret({ name: 'x', tls_certificate: null }, s, 's'), undefined);
  t.same(s.errors.map((e) => e.path), ['s']);
});
