import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../config/src/validation.js';
import {
  decodeDownstreamTlsContext,
  decodeSecret,
  decodeSecretExtension,
  decodeTransportSocket,
  decodeUpstreamTlsContext,
  DOWNSTREAM_TLS_CONTEXT_TYPE,
  SECRET_TYPE,
  SPIFFE_VALIDATOR_TYPE,
  UPSTREAM_TLS_CONTEXT_TYPE,
} from '../src/index.js';

const cert = { certificate_chain: { filename: '/etc/certs/tls.crt' }, private_key: { filename: '/etc/certs/tls.key' } };

t.test('full DownstreamTlsContext decodes', async (t) => {
  const d = new Diagnostics();
  const s = decodeDownstreamTlsContext({
    require_client_certificate: true,
    session_timeout: '600s',
    common_tls_context: {
      tls_params: {
        tls_minimum_protocol_version: 'TLSv1_3',
        tls_maximum_protocol_version: 'TLSv1_3',
        cipher_suites: ['TLS_AES_128_GCM_SHA256', '[TLS_AES_256_GCM_SHA384|TLS_CHACHA20_POLY1305_SHA256]'],
        ecdh_curves: ['X25519', 'P-256'],
      },
      tls_certificates: [cert],
      validation_context: {
        trusted_ca: { inline_bytes: Buffer.from('pem').toString('base64') },
        match_typed_subject_alt_names: [
          { san_type: 'URI', matcher: { prefix: 'spiffe://example.org/' } },
          { san_type: 'DNS', matcher: { suffix: '.svc', ignore_case: true } },
          { san_type: 'URI', matcher: { safe_regex: { regex: 'spiffe://example\\.org/ns/.*' } } },
          { san_type: 'DNS', matcher: { contains: 'web' } },
        ],
      },
      alpn_protocols: ['h2', 'http/1.1'],
    },
  }, d, 'listeners[0].filter_chains[0].transport_socket.typed_config');
  t.same(d.errors, []);
  t.ok(s);
  t.equal(s!.requireClientCertificate, true);
  t.equal(s!.sessionTimeoutMs, 600_000);
  t.same(s!.common.tlsParams.cipherSuites, ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']);
  t.same(s!.common.tlsParams.ecdhCurves, ['X25519', 'P-256']);
  t.equal(s!.common.validation!.static!.sanMatchers.length, 4);
  t.same(s!.common.validation!.static!.trustedCa, { kind: 'inline', bytes: Buffer.from('pem') });
  t.same(s!.common.alpnProtocols, ['h2', 'http/1.1']);
  t.equal(d.warnings.length, 1, 'bracketed cipher group flattened with a warning');
});

t.test('defaults: TLS 1.3 only', async (t) => {
  const d = new Diagnostics();
  const s = decodeDownstreamTlsContext({ common_tls_context: { tls_certificates: [cert] } }, d);
  t.equal(s!.common.tlsParams.minVersion, 'TLSv1.3');
  t.equal(s!.common.tlsParams.maxVersion, 'TLSv1.3');
  t.equal(s!.requireClientCertificate, false);
  const u = decodeUpstreamTlsContext({}, d);
  t.equal(u!.common.tlsParams.minVersion, 'TLSv1.3');
  t.match(d.warnings[0]!.message, /not verified/);
});

t.test('unsupported fields warn, naming the field; unknown fields and bad values are errors', async (t) => {
  const d = new Diagnostics();
  const s = decodeDownstreamTlsContext({
    require_sni: true,
    ocsp_staple_policy: 'LENIENT_STAPLING',
    common_tls_context: {
      tls_certificates: [cert],
      key_log: {},
      validation_context: { trusted_ca: { filename: '/ca' }, crl: { filename: '/crl' } },
    },
  }, d, 'tc');
  t.ok(s);
  t.same(d.warnings.map((w) => w.path).sort(), [
    'tc.common_tls_context.key_log',
    'tc.common_tls_context.validation_context.crl',
    'tc.ocsp_staple_policy',
    'tc.require_sni',
  ]);
  t.ok(d.warnings.every((w) => /not supported/.test(w.message)));

  const bad = new Diagnostics();
  const r = decodeDownstreamTlsContext({
    require_client_certificate: 'yes',
    requre_client_certificate: true,
    common_tls_context: {
      tls_params: { tls_minimum_protocol_version: 'TLSv1_3', tls_maximum_protocol_version: 'TLSv1_2', cipher_suites: ['NOPE'], ecdh_curves: ['X25519Kyber768Draft00'] },
      tls_certificates: [{ certificate_chain: { filename: '/a', inline_string: 'b' } }],
      validation_context: {
        match_typed_subject_alt_names: [{ san_type: 'URL', matcher: { exact: 'x' } }, { san_type: 'URI', matcher: { safe_regex: { regex: '(' } } }],
      },
      alpn_protocols: [''],
    },
  }, bad, 'tc');
  t.equal(r, undefined);
  const paths = bad.errors.map((e) => e.path);
  for (const p of [
    'tc.require_client_certificate',
    'tc.requre_client_certificate',
    'tc.common_tls_context.tls_params.tls_minimum_protocol_version',
    'tc.common_tls_context.tls_params.cipher_suites[0]',
    'tc.common_tls_context.tls_params.ecdh_curves[0]',
    'tc.common_tls_context.tls_certificates[0].certificate_chain',
    'tc.common_tls_context.tls_certificates[0].private_key',
    'tc.common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type',
    'tc.common_tls_context.validation_context.match_typed_subject_alt_names[1].matcher.safe_regex.regex',
    'tc.common_tls_context.alpn_protocols[0]',
  ]) t.ok(paths.includes(p), `error at ${p}: ${JSON.stringify(bad.errors)}`);
});

t.test('require_client_certificate needs a validation context; a server needs a certificate', async (t) => {
  const d = new Diagnostics();
  t.equal(decodeDownstreamTlsContext({ require_client_certificate: true, common_tls_context: { tls_certificates: [cert] } }, d), undefined);
  t.match(d.errors[0]!.path, 'require_client_certificate');
  const d2 = new Diagnostics();
  t.equal(decodeDownstreamTlsContext({ common_tls_context: {} }, d2), undefined);
  t.match(d2.errors[0]!.message, /tls_certificates/);
});

t.test('SDS sources, combined validation context, SPIFFE validator', async (t) => {
  const d = new Diagnostics();
  const s = decodeDownstreamTlsContext({
    common_tls_context: {
      tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } }],
      combined_validation_context: {
        default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://a/b' } }] },
        validation_context_sds_secret_config: { name: 'ROOTCA' },
      },
    },
  }, d);
  t.same(d.errors, []);
  t.same(s!.common.certificates, [{ kind: 'sds', name: 'default' }]);
  t.equal(s!.common.validation!.sdsName, 'ROOTCA');
  t.equal(s!.common.validation!.static!.sanMatchers.length, 1);

  const d2 = new Diagnostics();
  const v = decodeDownstreamTlsContext({
    common_tls_context: {
      tls_certificates: [cert],
      validation_context: {
        custom_validator_config: {
          name: 'envoy.tls.cert_validator.spiffe',
          typed_config: { '@type': SPIFFE_VALIDATOR_TYPE, trust_domains: [{ name: 'a.org', trust_bundle: { filename: '/a' } }, { name: 'B.org', trust_bundle: { filename: '/b' } }] },
        },
      },
    },
  }, d2, 'x');
  t.equal(v, undefined);
  t.same(d2.errors.map((e) => e.path), ['x.common_tls_context.validation_context.custom_validator_config.typed_config.trust_domains[1].name']);
});

t.test('UpstreamTlsContext and transport_socket dispatch', async (t) => {
  const d = new Diagnostics();
  const u = decodeTransportSocket({ name: 'envoy.transport_sockets.tls', typeUrl: UPSTREAM_TLS_CONTEXT_TYPE, config: {
    sni: 'db.example.org', max_session_keys: 4,
    common_tls_context: { tls_certificates: [cert], validation_context: { trusted_ca: { filename: '/ca' } } },
  } }, d, 'clusters[0].transport_socket');
  t.same(d.errors, []);
  t.equal(u!.kind, 'upstream');
  t.equal((u as { sni: string }).sni, 'db.example.org');
  t.equal((u as { maxSessionKeys: number }).maxSessionKeys, 4);
  const dn = decodeTransportSocket({ name: 'tls', typeUrl: DOWNSTREAM_TLS_CONTEXT_TYPE, config: { common_tls_context: { tls_certificates: [cert] } } }, d, 'p');
  t.equal(dn!.kind, 'downstream');
  const d2 = new Diagnostics();
  t.equal(decodeTransportSocket({ name: 'raw', typeUrl: 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer', config: {} }, d2, 'p'), undefined);
  t.equal(d2.errors[0]!.path, 'p.typed_config.@type');
});

t.test('Secret resources', async (t) => {
  const d = new Diagnostics();
  const c = decodeSecret({ '@type': SECRET_TYPE, name: 'default', tls_certificate: cert }, d);
  t.equal(c!.kind, 'tls_certificate');
  const v = decodeSecretExtension({ name: 'ROOTCA', typeUrl: SECRET_TYPE, config: { validation_context: { trusted_ca: { environment_variable: 'ROOT_PEM' } } } }, d, 'static_resources.secrets[0]');
  t.equal(v!.name, 'ROOTCA');
  t.equal(v!.kind, 'validation_context');
  t.same(d.errors, []);
  const bad = new Diagnostics();
  t.equal(decodeSecret({ name: 'x', tls_certificate: cert, validation_context: {} }, bad, 's'), undefined);
  t.equal(decodeSecret({ tls_certificate: cert }, bad, 's'), undefined);
  t.same(bad.errors.map((e) => e.path), ['s', 's.name']);
  const warn = new Diagnostics();
  t.equal(decodeSecret({ name: 'k', session_ticket_keys: { keys: [] } }, warn, 's'), undefined);
  t.same(warn.warnings.map((w) => w.path), ['s.session_ticket_keys']);
  t.same(warn.errors, []);
});

t.test('property: decoders never throw, and errors/values are exclusive', async (t) => {
  const leaf = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant('TLSv1_3'), fc.constant('URI'));
  const keys = fc.constantFrom('common_tls_context', 'tls_certificates', 'validation_context', 'trusted_ca', 'filename', 'inline_string',
    'inline_bytes', 'match_typed_subject_alt_names', 'san_type', 'matcher', 'exact', 'safe_regex', 'regex', 'tls_params',
    'tls_minimum_protocol_version', 'cipher_suites', 'require_client_certificate', 'sni', 'name', 'tls_certificate', 'certificate_chain', 'private_key');
  const tree = fc.letrec((tie) => ({
    node: fc.oneof({ maxDepth: 5 }, leaf, fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(keys, tie('node'), { maxKeys: 4 })),
  })).node;
  fc.assert(fc.property(tree, (v) => {
    for (const f of [decodeDownstreamTlsContext, decodeUpstreamTlsContext, decodeSecret] as const) {
      const d = new Diagnostics();
      const r = f(v, d, 'p');
      if (r !== undefined && d.errors.length > 0) return false;
      if (r === undefined && d.errors.length === 0 && f !== decodeSecret) return false;
      if (![...d.errors, ...d.warnings].every((p) => p.path.startsWith('p'))) return false;
    }
    return true;
  }), { numRuns: 500 });
  t.pass();
});
