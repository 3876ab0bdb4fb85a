/**
 * Decoders for Envoy's TLS protos (proto3-JSON, snake_case): DownstreamTlsContext,
 * UpstreamTlsContext and the SDS Secret. They never throw on bad input: problems go to
 * Diagnostics with Envoy field paths, unsupported fields are warnings naming the field.
 */
import { getCiphers } from 'node:tls';
import type { StringMatcher, TypedExtension } from '../../config/src/model.js';
import type { Diagnostics } from '../../config/src/validation.js';
import { compileRegex } from './match.js';
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

type Obj = Record<string, unknown>;

const join = (path: string, k: string | number): string =>
  typeof k === 'number' ? `${path}[${k}]` : path === '' ? k : `${path}.${k}`;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}` : typeof v;
}

function asObject(v: unknown, path: string, diag: Diagnostics): Obj | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    diag.error(path, `expected an object, got ${describe(v)}`);
    return undefined;
  }
  return v as Obj;
}

/** Unknown fields are errors (typos must not silently weaken TLS); known-but-unsupported ones are warnings. */
function checkFields(o: Obj, path: string, diag: Diagnostics, supported: readonly string[], unsupported: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (k === '@type' || supported.includes(k)) continue;
    if (unsupported.includes(k)) diag.warn(join(path, k), 'is not supported by pilotfish and is ignored');
    else diag.error(join(path, k), 'unknown field');
  }
}

function str(o: Obj, k: string, path: string, diag: Diagnostics): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    diag.error(join(path, k), `expected a string, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function bool(o: Obj, k: string, path: string, diag: Diagnostics, dflt: boolean): boolean {
  let v = o[k];
  // google.protobuf.BoolValue may appear wrapped as {value: bool}.
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && 'value' in (v as Obj)) v = (v as Obj)['value'];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') {
    diag.error(join(path, k), `expected a boolean, got ${describe(v)}`);
    return dflt;
  }
  return v;
}

function uint(o: Obj, k: string, path: string, diag: Diagnostics): number | undefined {
  let v = o[k];
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && 'value' in (v as Obj)) v = (v as Obj)['value'];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    diag.error(join(path, k), `expected a non-negative integer, got ${describe(v)}`);
    return undefined;
  }
  return n;
}

function arr(o: Obj, k: string, path: string, diag: Diagnostics): unknown[] {
  const v = o[k];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    diag.error(join(path, k), `expected an array, got ${describe(v)}`);
    return [];
  }
  return v;
}

function strings(o: Obj, k: string, path: string, diag: Diagnostics): string[] {
  const out: string[] = [];
  arr(o, k, path, diag).forEach((v, i) => {
    if (typeof v === 'string' && v !== '') out.push(v);
    else diag.error(join(join(path, k), i), `expected a non-empty string, got ${describe(v)}`);
  });
  return out;
}

function enumValue<T extends string>(o: Obj, k: string, path: string, diag: Diagnostics, names: readonly T[]): T | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < names.length) return names[v];
  if (typeof v === 'string' && (names as readonly string[]).includes(v)) return v as T;
  diag.error(join(path, k), `must be one of ${names.join(', ')}; got ${describe(v)}`);
  return undefined;
}

/** google.protobuf.Duration in proto3-JSON ("1.5s"), in milliseconds. */
function duration(o: Obj, k: string, path: string, diag: Diagnostics): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  const m = typeof v === 'string' ? /^(\d+)(?:\.(\d{1,9}))?s$/.exec(v) : null;
  if (!m) {
    diag.error(join(path, k), `expected a duration like "3600s", got ${describe(v)}`);
    return undefined;
  }
  return Number(m[1]) * 1000 + Math.floor(Number(`0.${m[2] ?? '0'}`) * 1000);
}

// ---------------------------------------------------------------- DataSource

export function decodeDataSource(v: unknown, path: string, diag: Diagnostics): DataSource | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag, ['filename', 'inline_bytes', 'inline_string', 'environment_variable'], ['watched_directory']);
  const set = ['filename', 'inline_bytes', 'inline_string', 'environment_variable'].filter((k) => o[k] !== undefined && o[k] !== null);
  if (set.length !== 1) {
    diag.error(path, set.length === 0
      ? 'needs one of filename, inline_string, inline_bytes, environment_variable'
      : `only one of ${set.join(', ')} may be set`);
    return undefined;
  }
  const which = set[0]!;
  const s = str(o, which, path, diag);
  if (s === undefined) return undefined;
  switch (which) {
    case 'filename':
      if (s === '') { diag.error(join(path, which), 'must not be empty'); return undefined; }
      return { kind: 'file', path: s };
    case 'inline_string':
      return { kind: 'inline', bytes: Buffer.from(s, 'utf8') };
    case 'inline_bytes':
      // proto3-JSON bytes are base64 (standard or URL-safe).
      if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s.replace(/\s+/g, ''))) {
        diag.error(join(path, which), 'is not valid base64');
        return undefined;
      }
      return { kind: 'inline', bytes: Buffer.from(s.replace(/\s+/g, ''), 'base64') };
    default:
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) { diag.error(join(path, which), 'is not a valid variable name'); return undefined; }
      return { kind: 'env', name: s };
  }
}

// ---------------------------------------------------------------- matchers

function decodeStringMatcher(v: unknown, path: string, diag: Diagnostics): StringMatcher | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag, ['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'ignore_case'], ['custom']);
  const kinds = ['exact', 'prefix', 'suffix', 'contains', 'safe_regex'].filter((k) => o[k] !== undefined && o[k] !== null);
  if (kinds.length !== 1) {
    diag.error(path, kinds.length === 0 ? 'needs one of exact, prefix, suffix, contains, safe_regex' : `only one of ${kinds.join(', ')} may be set`);
    return undefined;
  }
  const ignoreCase = bool(o, 'ignore_case', path, diag, false);
  const kind = kinds[0]!;
  if (kind === 'safe_regex') {
    const rp = join(path, 'safe_regex');
    const ro = asObject(o['safe_regex'], rp, diag);
    if (!ro) return undefined;
    checkFields(ro, rp, diag, ['regex', 'google_re2'], []);
    const regex = str(ro, 'regex', rp, diag);
    if (regex === undefined) { diag.error(join(rp, 'regex'), 'is required'); return undefined; }
    const compiled = compileRegex(regex);
    if (typeof compiled === 'string') { diag.error(join(rp, 'regex'), `invalid RE2 regular expression: ${compiled}`); return undefined; }
    if (ignoreCase) diag.error(join(path, 'ignore_case'), 'cannot be combined with safe_regex');
    return { kind: 'safe_regex', regex, ignoreCase: false };
  }
  const value = str(o, kind, path, diag);
  if (value === undefined) return undefined;
  if (kind !== 'exact' && value === '') { diag.error(join(path, kind), 'must not be empty'); return undefined; }
  return { kind: kind as 'exact' | 'prefix' | 'suffix' | 'contains', value, ignoreCase };
}

const SAN_TYPES = ['SAN_TYPE_UNSPECIFIED', 'EMAIL', 'DNS', 'URI', 'IP_ADDRESS', 'OTHER_NAME'] as const;

function decodeSanMatcher(v: unknown, path: string, diag: Diagnostics): SanMatcher | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag, ['san_type', 'matcher'], ['oid']);
  const t = enumValue(o, 'san_type', path, diag, SAN_TYPES);
  if (t === undefined || t === 'SAN_TYPE_UNSPECIFIED') {
    if (o['san_type'] === undefined || t === 'SAN_TYPE_UNSPECIFIED') diag.error(join(path, 'san_type'), 'is required (URI, DNS, EMAIL or IP_ADDRESS)');
    return undefined;
  }
  if (t === 'OTHER_NAME') { diag.error(join(path, 'san_type'), 'OTHER_NAME is not supported'); return undefined; }
  if (o['matcher'] === undefined) { diag.error(join(path, 'matcher'), 'is required'); return undefined; }
  const matcher = decodeStringMatcher(o['matcher'], join(path, 'matcher'), diag);
  return matcher ? { sanType: t as SanType, matcher } : undefined;
}

// ---------------------------------------------------------------- validation context

const CHAIN_VERIFICATION = ['VERIFY_TRUST_CHAIN', 'ACCEPT_UNTRUSTED'] as const;

function decodeSpiffeValidator(v: unknown, path: string, diag: Diagnostics): TrustDomainSpec[] {
  const o = asObject(v, path, diag);
  if (!o) return [];
  checkFields(o, path, diag, ['name', 'typed_config'], []);
  const tp = join(path, 'typed_config');
  const tc = asObject(o['typed_config'], tp, diag);
  if (!tc) return [];
  if (tc['@type'] !== SPIFFE_VALIDATOR_TYPE) {
    diag.error(join(tp, '@type'), `only ${SPIFFE_VALIDATOR_TYPE} is supported, got ${describe(tc['@type'])}`);
    return [];
  }
  checkFields(tc, tp, diag, ['trust_domains'], ['trust_bundles']);
  const out: TrustDomainSpec[] = [];
  const seen = new Set<string>();
  arr(tc, 'trust_domains', tp, diag).forEach((d, i) => {
    const dp = join(join(tp, 'trust_domains'), i);
    const dobj = asObject(d, dp, diag);
    if (!dobj) return;
    checkFields(dobj, dp, diag, ['name', 'trust_bundle'], []);
    const name = str(dobj, 'name', dp, diag);
    if (name === undefined || !/^[a-z0-9._-]+$/.test(name)) {
      diag.error(join(dp, 'name'), 'must be a trust domain name (lower-case letters, digits, ".", "-", "_")');
      return;
    }
    if (seen.has(name)) { diag.error(join(dp, 'name'), `duplicate trust domain "${name}"`); return; }
    seen.add(name);
    if (dobj['trust_bundle'] === undefined) { diag.error(join(dp, 'trust_bundle'), 'is required'); return; }
    const bundle = decodeDataSource(dobj['trust_bundle'], join(dp, 'trust_bundle'), diag);
    if (bundle) out.push({ name, bundle });
  });
  if (out.length === 0 && tc['trust_domains'] !== undefined && Array.isArray(tc['trust_domains']) && tc['trust_domains'].length === 0) {
    diag.error(join(tp, 'trust_domains'), 'must not be empty');
  }
  return out;
}

export function decodeValidationContext(v: unknown, path: string, diag: Diagnostics): ValidationContextSpec | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag,
    ['trusted_ca', 'match_typed_subject_alt_names', 'match_subject_alt_names', 'verify_certificate_hash', 'allow_expired_certificate',
      'trust_chain_verification', 'custom_validator_config', 'max_verify_depth'],
    ['watched_directory', 'verify_certificate_spki', 'require_signed_certificate_timestamp', 'crl', 'only_verify_leaf_cert_crl',
      'system_root_certs', 'ca_certificate_provider_instance']);
  const trustedCa = o['trusted_ca'] !== undefined ? decodeDataSource(o['trusted_ca'], join(path, 'trusted_ca'), diag) : undefined;
  const trustDomains = o['custom_validator_config'] !== undefined ? decodeSpiffeValidator(o['custom_validator_config'], join(path, 'custom_validator_config'), diag) : [];
  const sanMatchers: SanMatcher[] = [];
  arr(o, 'match_typed_subject_alt_names', path, diag).forEach((m, i) => {
    const d = decodeSanMatcher(m, join(join(path, 'match_typed_subject_alt_names'), i), diag);
    if (d) sanMatchers.push(d);
  });
  const legacy = arr(o, 'match_subject_alt_names', path, diag);
  if (legacy.length > 0) diag.warn(join(path, 'match_subject_alt_names'), 'is deprecated; use match_typed_subject_alt_names');
  legacy.forEach((m, i) => {
    const d = decodeStringMatcher(m, join(join(path, 'match_subject_alt_names'), i), diag);
    if (d) sanMatchers.push({ sanType: 'ANY', matcher: d });
  });
  const certificateHashes: string[] = [];
  strings(o, 'verify_certificate_hash', path, diag).forEach((h, i) => {
    const hex = h.replace(/:/g, '').toLowerCase();
    if (/^[0-9a-f]{64}$/.test(hex)) certificateHashes.push(hex);
    else diag.error(join(join(path, 'verify_certificate_hash'), i), 'must be a hex SHA-256 digest');
  });
  const tcv = enumValue(o, 'trust_chain_verification', path, diag, CHAIN_VERIFICATION) ?? 'VERIFY_TRUST_CHAIN';
  if (tcv === 'ACCEPT_UNTRUSTED') diag.warn(join(path, 'trust_chain_verification'), 'ACCEPT_UNTRUSTED: peer chains are not verified');
  const depth = uint(o, 'max_verify_depth', path, diag);
  if (depth !== undefined && depth > 32) diag.error(join(path, 'max_verify_depth'), 'must be at most 32');
  return {
    ...(trustedCa ? { trustedCa } : {}),
    trustDomains,
    sanMatchers,
    certificateHashes,
    allowExpired: bool(o, 'allow_expired_certificate', path, diag, false),
    acceptUntrusted: tcv === 'ACCEPT_UNTRUSTED',
    maxVerifyDepth: depth !== undefined && depth <= 32 ? depth : 8,
  };
}

function decodeSdsName(v: unknown, path: string, diag: Diagnostics): string | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag, ['name', 'sds_config'], []);
  const name = str(o, 'name', path, diag);
  if (name === undefined || name === '') { diag.error(join(path, 'name'), 'is required'); return undefined; }
  return name;
}

// ---------------------------------------------------------------- certificates

export function decodeTlsCertificate(v: unknown, path: string, diag: Diagnostics): TlsCertificateSpec | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag, ['certificate_chain', 'private_key', 'password'],
    ['watched_directory', 'ocsp_staple', 'signed_certificate_timestamp']);
  for (const k of ['pkcs12', 'private_key_provider']) {
    if (o[k] !== undefined) diag.error(join(path, k), 'is not supported by pilotfish (use certificate_chain and private_key)');
  }
  if (o['certificate_chain'] === undefined) diag.error(join(path, 'certificate_chain'), 'is required');
  if (o['private_key'] === undefined) diag.error(join(path, 'private_key'), 'is required');
  const certificateChain = o['certificate_chain'] !== undefined ? decodeDataSource(o['certificate_chain'], join(path, 'certificate_chain'), diag) : undefined;
  const privateKey = o['private_key'] !== undefined ? decodeDataSource(o['private_key'], join(path, 'private_key'), diag) : undefined;
  const password = o['password'] !== undefined ? decodeDataSource(o['password'], join(path, 'password'), diag) : undefined;
  if (!certificateChain || !privateKey) return undefined;
  return password ? { certificateChain, privateKey, password } : { certificateChain, privateKey };
}

// ---------------------------------------------------------------- tls params

const TLS_VERSIONS = ['TLS_AUTO', 'TLSv1_0', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3'] as const;
const NODE_VERSION: Record<string, TlsVersion> = { TLSv1_0: 'TLSv1', TLSv1_1: 'TLSv1.1', TLSv1_2: 'TLSv1.2', TLSv1_3: 'TLSv1.3' };
const VERSION_RANK: Record<TlsVersion, number> = { TLSv1: 0, 'TLSv1.1': 1, 'TLSv1.2': 2, 'TLSv1.3': 3 };
const CURVES = new Set(['X25519', 'X448', 'P-256', 'P-384', 'P-521', 'prime256v1', 'secp384r1', 'secp521r1']);
let cipherSet: Set<string> | undefined;

export const DEFAULT_TLS_PARAMS: TlsParams = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', cipherSuites: [], ecdhCurves: [], signatureAlgorithms: [] };

function decodeTlsParams(v: unknown, path: string, diag: Diagnostics): TlsParams {
  const o = asObject(v, path, diag);
  if (!o) return DEFAULT_TLS_PARAMS;
  checkFields(o, path, diag, ['tls_minimum_protocol_version', 'tls_maximum_protocol_version', 'cipher_suites', 'ecdh_curves', 'signature_algorithms'],
    ['compliance_policies']);
  const minE = enumValue(o, 'tls_minimum_protocol_version', path, diag, TLS_VERSIONS);
  const maxE = enumValue(o, 'tls_maximum_protocol_version', path, diag, TLS_VERSIONS);
  // TLS_AUTO means "pilotfish default", which is TLS 1.3 only.
  const minVersion = minE && minE !== 'TLS_AUTO' ? NODE_VERSION[minE]! : 'TLSv1.3';
  const maxVersion = maxE && maxE !== 'TLS_AUTO' ? NODE_VERSION[maxE]! : 'TLSv1.3';
  if (VERSION_RANK[minVersion] > VERSION_RANK[maxVersion]) {
    diag.error(join(path, 'tls_minimum_protocol_version'),
      `${minE ?? 'the default (TLSv1_3)'} is above tls_maximum_protocol_version ${maxE ?? 'TLSv1_3'}; set tls_minimum_protocol_version explicitly`);
  } else if (VERSION_RANK[minVersion] < 3) {
    diag.warn(join(path, 'tls_minimum_protocol_version'), `allows ${minVersion}; pilotfish defaults to TLS 1.3 only`);
  }
  cipherSet ??= new Set(getCiphers());
  const cipherSuites: string[] = [];
  strings(o, 'cipher_suites', path, diag).forEach((c, i) => {
    const cp = join(join(path, 'cipher_suites'), i);
    let names = [c];
    if (c.startsWith('[') && c.endsWith(']')) {
      diag.warn(cp, 'equal-preference groups are flattened to their listed order');
      names = c.slice(1, -1).split('|');
    }
    for (const n of names) {
      if (cipherSet!.has(n.toLowerCase())) cipherSuites.push(n);
      else diag.error(cp, `unknown cipher suite "${n}"`);
    }
  });
  const ecdhCurves: string[] = [];
  strings(o, 'ecdh_curves', path, diag).forEach((c, i) => {
    if (CURVES.has(c)) ecdhCurves.push(c);
    else diag.error(join(join(path, 'ecdh_curves'), i), `unsupported curve "${c}" (supported: ${[...CURVES].join(', ')})`);
  });
  const signatureAlgorithms = strings(o, 'signature_algorithms', path, diag);
  return { minVersion, maxVersion, cipherSuites, ecdhCurves, signatureAlgorithms };
}

// ---------------------------------------------------------------- common

function decodeCommonTlsContext(v: unknown, path: string, diag: Diagnostics): CommonTlsContextSpec | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag,
    ['tls_params', 'tls_certificates', 'tls_certificate_sds_secret_configs', 'validation_context', 'validation_context_sds_secret_config',
      'combined_validation_context', 'alpn_protocols'],
    ['custom_handshaker', 'key_log']);
  for (const k of ['tls_certificate_provider_instance', 'tls_certificate_certificate_provider', 'tls_certificate_certificate_provider_instance',
    'custom_tls_certificate_selector', 'validation_context_certificate_provider', 'validation_context_certificate_provider_instance']) {
    if (o[k] !== undefined) diag.error(join(path, k), 'is not supported by pilotfish (use tls_certificates or SDS)');
  }
  const tlsParams = o['tls_params'] !== undefined ? decodeTlsParams(o['tls_params'], join(path, 'tls_params'), diag) : DEFAULT_TLS_PARAMS;
  const certificates: CertificateSource[] = [];
  arr(o, 'tls_certificates', path, diag).forEach((c, i) => {
    const spec = decodeTlsCertificate(c, join(join(path, 'tls_certificates'), i), diag);
    if (spec) certificates.push({ kind: 'static', spec });
  });
  arr(o, 'tls_certificate_sds_secret_configs', path, diag).forEach((c, i) => {
    const name = decodeSdsName(c, join(join(path, 'tls_certificate_sds_secret_configs'), i), diag);
    if (name) certificates.push({ kind: 'sds', name });
  });
  if (certificates.length > 1) {
    diag.warn(path, 'only the first certificate is served (pilotfish does not select certificates by key type or SNI)');
  }
  const vkinds = ['validation_context', 'validation_context_sds_secret_config', 'combined_validation_context'].filter((k) => o[k] !== undefined);
  let validation: ValidationSource | undefined;
  if (vkinds.length > 1) {
    diag.error(path, `only one of ${vkinds.join(', ')} may be set`);
  } else if (vkinds[0] === 'validation_context') {
    const s = decodeValidationContext(o['validation_context'], join(path, 'validation_context'), diag);
    if (s) validation = { static: s };
  } else if (vkinds[0] === 'validation_context_sds_secret_config') {
    const n = decodeSdsName(o['validation_context_sds_secret_config'], join(path, 'validation_context_sds_secret_config'), diag);
    if (n) validation = { sdsName: n };
  } else if (vkinds[0] === 'combined_validation_context') {
    const cp = join(path, 'combined_validation_context');
    const co = asObject(o['combined_validation_context'], cp, diag);
    if (co) {
      checkFields(co, cp, diag, ['default_validation_context', 'validation_context_sds_secret_config'], ['validation_context_certificate_provider', 'validation_context_certificate_provider_instance']);
      const s = co['default_validation_context'] !== undefined ? decodeValidationContext(co['default_validation_context'], join(cp, 'default_validation_context'), diag) : undefined;
      if (co['validation_context_sds_secret_config'] === undefined) diag.error(join(cp, 'validation_context_sds_secret_config'), 'is required');
      const n = co['validation_context_sds_secret_config'] !== undefined ? decodeSdsName(co['validation_context_sds_secret_config'], join(cp, 'validation_context_sds_secret_config'), diag) : undefined;
      if (n) validation = s ? { static: s, sdsName: n } : { sdsName: n };
    }
  }
  const alpnProtocols = strings(o, 'alpn_protocols', path, diag).filter((p, i) => {
    if (Buffer.byteLength(p) <= 255) return true;
    diag.error(join(join(path, 'alpn_protocols'), i), 'is longer than 255 bytes');
    return false;
  });
  return validation ? { tlsParams, certificates, validation, alpnProtocols } : { tlsParams, certificates, alpnProtocols };
}

// ---------------------------------------------------------------- top level

export function decodeDownstreamTlsContext(config: unknown, diag: Diagnostics, path = ''): DownstreamTlsContextSpec | undefined {
  const errorsBefore = diag.errors.length;
  const o = asObject(config, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag,
    ['common_tls_context', 'require_client_certificate', 'session_timeout', 'disable_stateless_session_resumption', 'disable_stateful_session_resumption'],
    ['require_sni', 'session_ticket_keys', 'session_ticket_keys_sds_secret_config', 'ocsp_staple_policy', 'full_scan_certs_on_sni_mismatch', 'prefer_client_ciphers']);
  const common = decodeCommonTlsContext(o['common_tls_context'] ?? {}, join(path, 'common_tls_context'), diag);
  const requireClientCertificate = bool(o, 'require_client_certificate', path, diag, false);
  const sessionTimeoutMs = duration(o, 'session_timeout', path, diag);
  const disableStatelessSessionResumption = bool(o, 'disable_stateless_session_resumption', path, diag, false);
  bool(o, 'disable_stateful_session_resumption', path, diag, false); // TLS 1.3 has no stateful (session-id) resumption here
  if (common && common.certificates.length === 0) diag.error(join(path, 'common_tls_context'), 'a server needs tls_certificates or tls_certificate_sds_secret_configs');
  if (common && requireClientCertificate && !common.validation) {
    diag.error(join(path, 'require_client_certificate'), 'needs a validation context to verify client certificates against');
  }
  if (!common || diag.errors.length > errorsBefore) return undefined;
  return {
    kind: 'downstream', common, requireClientCertificate, disableStatelessSessionResumption,
    ...(sessionTimeoutMs !== undefined ? { sessionTimeoutMs } : {}),
  };
}

export function decodeUpstreamTlsContext(config: unknown, diag: Diagnostics, path = ''): UpstreamTlsContextSpec | undefined {
  const errorsBefore = diag.errors.length;
  const o = asObject(config, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag, ['common_tls_context', 'sni', 'max_session_keys', 'allow_renegotiation'],
    ['auto_host_sni', 'auto_sni_san_validation', 'enforce_rsa_key_usage']);
  const common = decodeCommonTlsContext(o['common_tls_context'] ?? {}, join(path, 'common_tls_context'), diag);
  const sni = str(o, 'sni', path, diag);
  if (sni !== undefined && (sni.length > 255 || /[\s/]/.test(sni))) diag.error(join(path, 'sni'), 'is not a valid server name');
  if (bool(o, 'allow_renegotiation', path, diag, false)) diag.warn(join(path, 'allow_renegotiation'), 'renegotiation does not exist in TLS 1.3 and is never allowed');
  const maxSessionKeys = uint(o, 'max_session_keys', path, diag) ?? 1;
  if (common && !common.validation) diag.warn(join(path, 'common_tls_context'), 'no validation context: the upstream certificate is not verified');
  if (!common || diag.errors.length > errorsBefore) return undefined;
  return { kind: 'upstream', common, maxSessionKeys, ...(sni !== undefined && sni !== '' ? { sni } : {}) };
}

/** Decodes an SDS `Secret` (with or without `@type`). */
export function decodeSecret(v: unknown, diag: Diagnostics, path = ''): SecretSpec | undefined {
  const errorsBefore = diag.errors.length;
  const s = decodeSecretInner(v, diag, path);
  return diag.errors.length > errorsBefore ? undefined : s;
}

function decodeSecretInner(v: unknown, diag: Diagnostics, path: string): SecretSpec | undefined {
  const o = asObject(v, path, diag);
  if (!o) return undefined;
  checkFields(o, path, diag, ['name', 'tls_certificate', 'validation_context'], ['session_ticket_keys', 'generic_secret']);
  const name = str(o, 'name', path, diag);
  if (name === undefined || name === '') { diag.error(join(path, 'name'), 'is required'); return undefined; }
  const kinds = ['tls_certificate', 'validation_context'].filter((k) => o[k] !== undefined);
  if (kinds.length !== 1) {
    if (kinds.length > 1) diag.error(path, `only one of ${kinds.join(', ')} may be set`);
    else if (o['session_ticket_keys'] === undefined && o['generic_secret'] === undefined) diag.error(path, 'needs tls_certificate or validation_context');
    return undefined;
  }
  if (kinds[0] === 'tls_certificate') {
    const tlsCertificate = decodeTlsCertificate(o['tls_certificate'], join(path, 'tls_certificate'), diag);
    return tlsCertificate ? { name, kind: 'tls_certificate', tlsCertificate } : undefined;
  }
  const validationContext = decodeValidationContext(o['validation_context'], join(path, 'validation_context'), diag);
  return validationContext ? { name, kind: 'validation_context', validationContext } : undefined;
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
  const o = { ...ext.config } as Obj;
  if (o['name'] === undefined && ext.name !== '') o['name'] = ext.name;
  return decodeSecret(o, diag, path);
}
