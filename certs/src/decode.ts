/**
 * Decoders for Envoy's TLS protos (proto3-JSON, snake_case or lowerCamelCase): DownstreamTlsContext,
 * UpstreamTlsContext and the SDS Secret, on config/'s ObjectReader. They never throw on bad input:
 * problems go to Diagnostics with Envoy field paths. They do no I/O either: certificate, key and
 * bundle files stay DataSource references, read and checked by resolve.ts and watched by material.ts.
 *
 * Unlike the rest of the config, a field Envoy does not have is an error here (a typo such as
 * `requre_client_certificate` must not silently weaken TLS); fields Envoy has and pilotfish does
 * not support are warnings naming the field.
 */
import { getCiphers } from 'node:tls';
import { ObjectReader, describe, snakeToCamel, decodeDataSource as decodeConfigDataSource, decodeStringMatcher, type Diagnostics, type TypedExtension } from '../../config/src/index.js';
import {
  DOWNSTREAM_TLS_CONTEXT_TYPE,
  SPIFFE_VALIDATOR_TYPE,
  UPSTREAM_TLS_CONTEXT_TYPE,
  type CertificateSource,
  type CommonTlsContextSpec,
  type DataSource,
  type DownstreamTlsContextSpec,
  type SanMatcher,
  type SanType,
  type SecretSpec,
  type TlsCertificateSpec,
  type TlsParams,
  type TlsVersion,
  type TrustDomainSpec,
  type UpstreamTlsContextSpec,
  type ValidationContextSpec,
  type ValidationSource,
} from './types.js';

const join = (path: string, k: string): string => (path === '' ? k : `${path}.${k}`);

/** A repeated string field whose entries must be non-empty. */
function nonEmptyStrings(r: ObjectReader, name: string): { value: string; path: string }[] {
  const out: { value: string; path: string }[] = [];
  for (const { value, path } of r.array(name)) {
    if (typeof value === 'string' && value !== '') out.push({ value, path });
    else r.diag.error(path, `expected a non-empty string, got ${describe(value)}`);
  }
  return out;
}

/** Fields that exist in Envoy's proto but select features pilotfish cannot honour safely: errors, not warnings. */
function rejectFields(r: ObjectReader, names: readonly string[], hint: string): void {
  for (const n of names) {
    if (!isSet(r, n)) continue;
    r.accept(n);
    r.diag.error(r.child(n), `is not supported by pilotfish (${hint})`);
  }
}

/** Set to something other than null (proto3 JSON: null means absent). Does not mark the field read. */
function isSet(r: ObjectReader, name: string): boolean {
  const v = Object.hasOwn(r.raw, name) ? r.raw[name] : r.raw[snakeToCamel(name)];
  return v !== undefined && v !== null;
}

/** A required sub-message: reports `is required` when absent (or null). */
function requiredObject(r: ObjectReader, name: string): ObjectReader | undefined {
  if (!isSet(r, name)) {
    r.diag.error(r.child(name), 'is required');
    return undefined;
  }
  return r.object(name);
}

// ---------------------------------------------------------------- DataSource

/** envoy.config.core.v3.DataSource, decoded by config/ (one decoder for the whole proxy). */
export function decodeDataSource(v: unknown, path: string, diag: Diagnostics): DataSource | undefined {
  const r = ObjectReader.of(v, path, diag);
  return r ? decodeConfigDataSource(r) : undefined;
}

function dataSourceField(r: ObjectReader, name: string): DataSource | undefined {
  const o = r.object(name);
  return o ? decodeConfigDataSource(o) : undefined;
}

// ---------------------------------------------------------------- matchers

const SAN_TYPES = ['SAN_TYPE_UNSPECIFIED', 'EMAIL', 'DNS', 'URI', 'IP_ADDRESS', 'OTHER_NAME'] as const;

function decodeSanMatcher(r: ObjectReader): SanMatcher | undefined {
  const before = r.diag.errors.length;
  const t = r.enumOf('san_type', SAN_TYPES, 'SAN_TYPE_UNSPECIFIED');
  const m = requiredObject(r, 'matcher');
  const matcher = m ? decodeStringMatcher(m) : undefined;
  r.finishStrict(['oid']);
  if (t === 'SAN_TYPE_UNSPECIFIED') {
    if (r.diag.errors.length === before || !r.has('san_type')) r.diag.error(r.child('san_type'), 'is required (URI, DNS, EMAIL or IP_ADDRESS)');
    return undefined;
  }
  if (t === 'OTHER_NAME') {
    r.diag.error(r.child('san_type'), 'OTHER_NAME is not supported');
    return undefined;
  }
  return matcher ? { sanType: t as SanType, matcher } : undefined;
}

// ---------------------------------------------------------------- validation context

const CHAIN_VERIFICATION = ['VERIFY_TRUST_CHAIN', 'ACCEPT_UNTRUSTED'] as const;

function decodeSpiffeValidator(r: ObjectReader): TrustDomainSpec[] {
  r.accept('name');
  const tc = r.object('typed_config');
  r.finishStrict([]);
  if (!tc) {
    if (!isSet(r, 'typed_config')) r.diag.error(r.child('typed_config'), 'is required');
    return [];
  }
  const type = tc.raw['@type'];
  if (type !== SPIFFE_VALIDATOR_TYPE) {
    r.diag.error(join(tc.path, '@type'), `only ${SPIFFE_VALIDATOR_TYPE} is supported, got ${describe(type)}`);
    return [];
  }
  const out: TrustDomainSpec[] = [];
  const seen = new Set<string>();
  const domains = tc.objects('trust_domains');
  for (const d of domains) {
    const name = d.string('name');
    const bundleReader = requiredObject(d, 'trust_bundle');
    const bundle = bundleReader ? decodeConfigDataSource(bundleReader) : undefined;
    d.finishStrict([]);
    if (name === undefined || !/^[a-z0-9._-]+$/.test(name)) {
      d.diag.error(d.child('name'), 'must be a trust domain name (lower-case letters, digits, ".", "-", "_")');
      continue;
    }
    if (seen.has(name)) {
      d.diag.error(d.child('name'), `duplicate trust domain "${name}"`);
      continue;
    }
    seen.add(name);
    if (bundle) out.push({ name, bundle });
  }
  if (Array.isArray(tc.raw['trust_domains'] ?? tc.raw['trustDomains']) && domains.length === 0) {
    tc.diag.error(tc.child('trust_domains'), 'must not be empty');
  }
  tc.finishStrict(['trust_bundles']);
  return out;
}

function decodeValidationContextReader(r: ObjectReader): ValidationContextSpec {
  const trustedCa = dataSourceField(r, 'trusted_ca');
  const cv = r.object('custom_validator_config');
  const trustDomains = cv ? decodeSpiffeValidator(cv) : [];
  const sanMatchers: SanMatcher[] = [];
  for (const m of r.objects('match_typed_subject_alt_names')) {
    const d = decodeSanMatcher(m);
    if (d) sanMatchers.push(d);
  }
  const legacy = r.objects('match_subject_alt_names');
  if (legacy.length > 0) r.diag.warn(r.child('match_subject_alt_names'), 'is deprecated; use match_typed_subject_alt_names');
  for (const m of legacy) {
    const d = decodeStringMatcher(m);
    if (d) sanMatchers.push({ sanType: 'ANY', matcher: d });
  }
  const certificateHashes: string[] = [];
  for (const { value, path } of nonEmptyStrings(r, 'verify_certificate_hash')) {
    const hex = value.replace(/:/g, '').toLowerCase();
    if (/^[0-9a-f]{64}$/.test(hex)) certificateHashes.push(hex);
    else r.diag.error(path, 'must be a hex SHA-256 digest');
  }
  const tcv = r.enumOf('trust_chain_verification', CHAIN_VERIFICATION, 'VERIFY_TRUST_CHAIN');
  if (tcv === 'ACCEPT_UNTRUSTED') r.diag.warn(r.child('trust_chain_verification'), 'ACCEPT_UNTRUSTED: peer chains are not verified');
  const depth = r.optionalInt('max_verify_depth', 0, 32);
  const allowExpired = r.bool('allow_expired_certificate', false);
  r.finishStrict(['watched_directory', 'verify_certificate_spki', 'require_signed_certificate_timestamp', 'crl', 'only_verify_leaf_cert_crl',
    'system_root_certs', 'ca_certificate_provider_instance']);
  return {
    ...(trustedCa ? { trustedCa } : {}),
    trustDomains,
    sanMatchers,
    certificateHashes,
    allowExpired,
    acceptUntrusted: tcv === 'ACCEPT_UNTRUSTED',
    maxVerifyDepth: depth ?? 8,
  };
}

export function decodeValidationContext(v: unknown, path: string, diag: Diagnostics): ValidationContextSpec | undefined {
  const r = ObjectReader.of(v, path, diag);
  return r ? decodeValidationContextReader(r) : undefined;
}

function decodeSdsName(r: ObjectReader): string | undefined {
  const name = r.requiredString('name');
  r.accept('sds_config'); // every secret comes from the proxy's own SDS/ADS stream or the bootstrap
  r.finishStrict([]);
  return name === '' ? undefined : name;
}

// ---------------------------------------------------------------- certificates

function decodeTlsCertificateReader(r: ObjectReader): TlsCertificateSpec | undefined {
  rejectFields(r, ['pkcs12', 'private_key_provider'], 'use certificate_chain and private_key');
  const chainReader = requiredObject(r, 'certificate_chain');
  const keyReader = requiredObject(r, 'private_key');
  const certificateChain = chainReader ? decodeConfigDataSource(chainReader) : undefined;
  const privateKey = keyReader ? decodeConfigDataSource(keyReader) : undefined;
  const password = dataSourceField(r, 'password');
  r.finishStrict(['watched_directory', 'ocsp_staple', 'signed_certificate_timestamp']);
  if (!certificateChain || !privateKey) return undefined;
  return password ? { certificateChain, privateKey, password } : { certificateChain, privateKey };
}

export function decodeTlsCertificate(v: unknown, path: string, diag: Diagnostics): TlsCertificateSpec | undefined {
  const r = ObjectReader.of(v, path, diag);
  return r ? decodeTlsCertificateReader(r) : undefined;
}

// ---------------------------------------------------------------- tls params

const TLS_VERSIONS = ['TLS_AUTO', 'TLSv1_0', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3'] as const;
const NODE_VERSION: Record<string, TlsVersion> = { TLSv1_0: 'TLSv1', TLSv1_1: 'TLSv1.1', TLSv1_2: 'TLSv1.2', TLSv1_3: 'TLSv1.3' };
const VERSION_RANK: Record<TlsVersion, number> = { TLSv1: 0, 'TLSv1.1': 1, 'TLSv1.2': 2, 'TLSv1.3': 3 };
const CURVES = new Set(['X25519', 'X448', 'P-256', 'P-384', 'P-521', 'prime256v1', 'secp384r1', 'secp521r1']);
let cipherSet: Set<string> | undefined;

export const DEFAULT_TLS_PARAMS: TlsParams = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', cipherSuites: [], ecdhCurves: [], signatureAlgorithms: [] };

function decodeTlsParams(r: ObjectReader): TlsParams {
  // TLS_AUTO means "pilotfish default", which is TLS 1.3 only.
  const minE = r.enumOf('tls_minimum_protocol_version', TLS_VERSIONS, 'TLS_AUTO');
  const maxE = r.enumOf('tls_maximum_protocol_version', TLS_VERSIONS, 'TLS_AUTO');
  const minVersion = minE !== 'TLS_AUTO' ? NODE_VERSION[minE]! : 'TLSv1.3';
  const maxVersion = maxE !== 'TLS_AUTO' ? NODE_VERSION[maxE]! : 'TLSv1.3';
  if (VERSION_RANK[minVersion] > VERSION_RANK[maxVersion]) {
    r.diag.error(r.child('tls_minimum_protocol_version'),
      `${minE !== 'TLS_AUTO' ? minE : 'the default (TLSv1_3)'} is above tls_maximum_protocol_version ${maxE !== 'TLS_AUTO' ? maxE : 'TLSv1_3'}; set tls_minimum_protocol_version explicitly`);
  } else if (VERSION_RANK[minVersion] < 3) {
    r.diag.warn(r.child('tls_minimum_protocol_version'), `allows ${minVersion}; pilotfish defaults to TLS 1.3 only`);
  }
  cipherSet ??= new Set(getCiphers());
  const cipherSuites: string[] = [];
  for (const { value: c, path: cp } of nonEmptyStrings(r, 'cipher_suites')) {
    let names = [c];
    if (c.startsWith('[') && c.endsWith(']')) {
      r.diag.warn(cp, 'equal-preference groups are flattened to their listed order');
      names = c.slice(1, -1).split('|');
    }
    for (const n of names) {
      if (cipherSet.has(n.toLowerCase())) cipherSuites.push(n);
      else r.diag.error(cp, `unknown cipher suite "${n}"`);
    }
  }
  const ecdhCurves: string[] = [];
  for (const { value: c, path: cp } of nonEmptyStrings(r, 'ecdh_curves')) {
    if (CURVES.has(c)) ecdhCurves.push(c);
    else r.diag.error(cp, `unsupported curve "${c}" (supported: ${[...CURVES].join(', ')})`);
  }
  const signatureAlgorithms = nonEmptyStrings(r, 'signature_algorithms').map((s) => s.value);
  r.finishStrict(['compliance_policies']);
  return { minVersion, maxVersion, cipherSuites, ecdhCurves, signatureAlgorithms };
}

// ---------------------------------------------------------------- common

const VALIDATION_KINDS = ['validation_context', 'validation_context_sds_secret_config', 'combined_validation_context'] as const;

function decodeValidationSource(r: ObjectReader): ValidationSource | undefined {
  const which = r.oneof(VALIDATION_KINDS.filter((k) => isSet(r, k)), false);
  if (which === undefined) return undefined;
  const present = VALIDATION_KINDS.filter((k) => isSet(r, k));
  if (present.length > 1) {
    r.accept(...present);
    return undefined;
  }
  const o = r.object(which);
  if (!o) return undefined;
  if (which === 'validation_context') return { static: decodeValidationContextReader(o) };
  if (which === 'validation_context_sds_secret_config') {
    const n = decodeSdsName(o);
    return n !== undefined ? { sdsName: n } : undefined;
  }
  const d = o.object('default_validation_context');
  const s = d ? decodeValidationContextReader(d) : undefined;
  const sds = requiredObject(o, 'validation_context_sds_secret_config');
  const n = sds ? decodeSdsName(sds) : undefined;
  o.finishStrict(['validation_context_certificate_provider', 'validation_context_certificate_provider_instance']);
  if (n === undefined) return undefined;
  return s ? { static: s, sdsName: n } : { sdsName: n };
}

function decodeCommonTlsContext(r: ObjectReader): CommonTlsContextSpec {
  rejectFields(r, ['tls_certificate_provider_instance', 'tls_certificate_certificate_provider', 'tls_certificate_certificate_provider_instance',
    'custom_tls_certificate_selector', 'validation_context_certificate_provider', 'validation_context_certificate_provider_instance'],
  'use tls_certificates or SDS');
  const tp = r.object('tls_params');
  const tlsParams = tp ? decodeTlsParams(tp) : DEFAULT_TLS_PARAMS;
  const certificates: CertificateSource[] = [];
  for (const c of r.objects('tls_certificates')) {
    const spec = decodeTlsCertificateReader(c);
    if (spec) certificates.push({ kind: 'static', spec });
  }
  for (const c of r.objects('tls_certificate_sds_secret_configs')) {
    const name = decodeSdsName(c);
    if (name !== undefined) certificates.push({ kind: 'sds', name });
  }
  if (certificates.length > 1) {
    r.diag.warn(r.path, 'only the first certificate is served (pilotfish does not select certificates by key type or SNI)');
  }
  const validation = decodeValidationSource(r);
  const alpnProtocols: string[] = [];
  for (const { value, path } of nonEmptyStrings(r, 'alpn_protocols')) {
    if (Buffer.byteLength(value) <= 255) alpnProtocols.push(value);
    else r.diag.error(path, 'is longer than 255 bytes');
  }
  r.finishStrict(['custom_handshaker', 'key_log']);
  return validation ? { tlsParams, certificates, validation, alpnProtocols } : { tlsParams, certificates, alpnProtocols };
}

/** common_tls_context may be absent (an UpstreamTlsContext with defaults): decode it as an empty message. */
function commonOf(r: ObjectReader): CommonTlsContextSpec | undefined {
  const c = isSet(r, 'common_tls_context') ? r.object('common_tls_context') : ObjectReader.of({}, r.child('common_tls_context'), r.diag);
  return c ? decodeCommonTlsContext(c) : undefined;
}

// ---------------------------------------------------------------- top level

export function decodeDownstreamTlsContext(config: unknown, diag: Diagnostics, path = ''): DownstreamTlsContextSpec | undefined {
  const errorsBefore = diag.errors.length;
  const r = ObjectReader.of(config, path, diag);
  if (!r) return undefined;
  const common = commonOf(r);
  const requireClientCertificate = r.bool('require_client_certificate', false);
  const sessionTimeoutMs = r.duration('session_timeout');
  const disableStatelessSessionResumption = r.bool('disable_stateless_session_resumption', false);
  r.bool('disable_stateful_session_resumption', false); // TLS 1.3 has no stateful (session-id) resumption here
  r.finishStrict(['require_sni', 'session_ticket_keys', 'session_ticket_keys_sds_secret_config', 'ocsp_staple_policy',
    'full_scan_certs_on_sni_mismatch', 'prefer_client_ciphers']);
  if (common && common.certificates.length === 0) diag.error(r.child('common_tls_context'), 'a server needs tls_certificates or tls_certificate_sds_secret_configs');
  if (common && requireClientCertificate && !common.validation) {
    diag.error(r.child('require_client_certificate'), 'needs a validation context to verify client certificates against');
  }
  if (!common || diag.errors.length > errorsBefore) return undefined;
  return {
    kind: 'downstream', common, requireClientCertificate, disableStatelessSessionResumption,
    ...(sessionTimeoutMs !== undefined ? { sessionTimeoutMs } : {}),
  };
}

export function decodeUpstreamTlsContext(config: unknown, diag: Diagnostics, path = ''): UpstreamTlsContextSpec | undefined {
  const errorsBefore = diag.errors.length;
  const r = ObjectReader.of(config, path, diag);
  if (!r) return undefined;
  const common = commonOf(r);
  const sni = r.string('sni');
  if (sni !== undefined && (sni.length > 255 || /[\s/]/.test(sni))) diag.error(r.child('sni'), 'is not a valid server name');
  if (r.bool('allow_renegotiation', false)) diag.warn(r.child('allow_renegotiation'), 'renegotiation does not exist in TLS 1.3 and is never allowed');
  const maxSessionKeys = r.int('max_session_keys', 1);
  r.finishStrict(['auto_host_sni', 'auto_sni_san_validation', 'enforce_rsa_key_usage']);
  if (common && !common.validation) diag.warn(r.child('common_tls_context'), 'no validation context: the upstream certificate is not verified');
  if (!common || diag.errors.length > errorsBefore) return undefined;
  return { kind: 'upstream', common, maxSessionKeys, ...(sni !== undefined && sni !== '' ? { sni } : {}) };
}

/** Decodes an SDS `Secret` (with or without `@type`). */
export function decodeSecret(v: unknown, diag: Diagnostics, path = ''): SecretSpec | undefined {
  const errorsBefore = diag.errors.length;
  const r = ObjectReader.of(v, path, diag);
  const s = r ? decodeSecretReader(r) : undefined;
  return diag.errors.length > errorsBefore ? undefined : s;
}

function decodeSecretReader(r: ObjectReader): SecretSpec | undefined {
  const name = r.string('name');
  if (name === undefined || name === '') r.diag.error(r.child('name'), 'is required');
  const kinds = ['tls_certificate', 'validation_context'] as const;
  const present = kinds.filter((k) => isSet(r, k));
  let out: SecretSpec | undefined;
  if (present.length > 1) {
    r.accept(...present);
    r.diag.error(r.path, `only one of ${present.join(', ')} may be set`);
  } else if (present[0] === 'tls_certificate') {
    const c = r.object('tls_certificate');
    const tlsCertificate = c ? decodeTlsCertificateReader(c) : undefined;
    if (tlsCertificate && name) out = { name, kind: 'tls_certificate', tlsCertificate };
  } else if (present[0] === 'validation_context') {
    const c = r.object('validation_context');
    const validationContext = c ? decodeValidationContextReader(c) : undefined;
    if (validationContext && name) out = { name, kind: 'validation_context', validationContext };
  } else if (!isSet(r, 'session_ticket_keys') && !isSet(r, 'generic_secret') && name) {
    r.diag.error(r.path, 'needs tls_certificate or validation_context');
  }
  r.finishStrict(['session_ticket_keys', 'generic_secret']);
  return out;
}

/** Decodes a `transport_socket` TypedExtension from a listener filter chain or a cluster. */
export function decodeTransportSocket(ext: TypedExtension, diag: Diagnostics, path: string):
  DownstreamTlsContextSpec | UpstreamTlsContextSpec | undefined {
  const tp = join(path, 'typed_config');
  if (ext.typeUrl === DOWNSTREAM_TLS_CONTEXT_TYPE) return decodeDownstreamTlsContext(ext.config, diag, tp);
  if (ext.typeUrl === UPSTREAM_TLS_CONTEXT_TYPE) return decodeUpstreamTlsContext(ext.config, diag, tp);
  diag.error(join(tp, '@type'), `unsupported transport socket type ${ext.typeUrl}`);
  return undefined;
}

/** A `static_resources.secrets[]` entry (its own `name` wins over the extension name). */
export function decodeSecretExtension(ext: TypedExtension, diag: Diagnostics, path: string): SecretSpec | undefined {
  const o: Record<string, unknown> = { ...ext.config };
  if (o['name'] === undefined && ext.name !== '') o['name'] = ext.name;
  return decodeSecret(o, diag, path);
}
