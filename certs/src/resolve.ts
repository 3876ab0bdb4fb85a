/**
 * The read step for decoded TLS configs: every file and environment variable a context or secret
 * names is read once, before a listener or cluster is built from it, so that an unreadable
 * certificate is a start-up (or update) error naming its field, as in Envoy, instead of a
 * listener that never completes a handshake. TlsMaterial reads them again when it loads and
 * whenever a watched file changes (rotation); this step only decides whether the config is usable.
 */
import { readDataSource, type Diagnostics } from '../../config/src/index.js';
import type { CommonTlsContextSpec, DataSource, DownstreamTlsContextSpec, SecretSpec, TlsCertificateSpec, UpstreamTlsContextSpec, ValidationContextSpec } from './types.js';

function certificateSources(c: TlsCertificateSpec): DataSource[] {
  return [c.certificateChain, c.privateKey, ...(c.password ? [c.password] : [])];
}

function validationSources(v: ValidationContextSpec): DataSource[] {
  return [...(v.trustedCa ? [v.trustedCa] : []), ...v.trustDomains.map((d) => d.bundle)];
}

function commonSources(c: CommonTlsContextSpec): DataSource[] {
  const out: DataSource[] = [];
  for (const s of c.certificates) if (s.kind === 'static') out.push(...certificateSources(s.spec));
  if (c.validation?.static) out.push(...validationSources(c.validation.static));
  return out;
}

function check(sources: readonly DataSource[], diag: Diagnostics, path: string): boolean {
  const before = diag.errors.length;
  for (const ds of sources) readDataSource(ds, diag, path);
  return diag.errors.length === before;
}

/** Reads every file/variable of a decoded transport socket; false (with errors by field path) if one cannot be read. */
export function checkTlsContextSources(spec: DownstreamTlsContextSpec | UpstreamTlsContextSpec, diag: Diagnostics, path = ''): boolean {
  return check(commonSources(spec.common), diag, path);
}

/** Same for an SDS/static Secret. */
export function checkSecretSources(spec: SecretSpec, diag: Diagnostics, path = ''): boolean {
  return check(spec.kind === 'tls_certificate' ? certificateSources(spec.tlsCertificate) : validationSources(spec.validationContext), diag, path);
}
