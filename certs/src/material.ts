/**
 * Resolves a CommonTlsContext against the SecretStore into usable material (certificate
 * + key, trust policy) and keeps it current: SDS pushes and file changes re-resolve it.
 * Each half is replaced only by a good successor - a bad rotation (unparseable PEM, key
 * not matching the certificate, missing bundle) is logged and counted while the last
 * good material keeps serving.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { compileSanMatchers } from './match.js';
import type { SecretStore, Unsubscribe } from './secret-store.js';
import type { TlsLogger, TlsStats } from './stats.js';
import type { CommonTlsContextSpec, DataSource, TlsCertificateSpec, ValidationContextSpec } from './types.js';
import { policyKey, type TrustPolicy } from './verify.js';

export interface CertMaterial {
  /** Leaf followed by intermediates, PEM. */
  readonly chainPem: string;
  readonly keyPem: string;
  readonly passphrase?: string;
  readonly leaf: X509Certificate;
  readonly key: string;
}

export interface TrustMaterial {
  readonly policy: TrustPolicy;
  /** Every anchor (all trust domains), PEM: what OpenSSL gets where it verifies (upstream). */
  readonly caPems: readonly string[];
}

export interface MaterialChange {
  readonly cert: boolean;
  readonly trust: boolean;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function parsePemCertificates(buf: Buffer | string, what: string): X509Certificate[] {
  const text = buf.toString();
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    // A single DER certificate is also accepted.
    if (Buffer.isBuffer(buf) && buf[0] === 0x30) {
      try { return [new X509Certificate(buf)]; } catch { /* fall through */ }
    }
    throw new Error(`${what}: no PEM certificate found`);
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new Error(`${what}: certificate #${i + 1} is malformed (${(e as Error).message})`);
    }
  });
}

function describeSource(ds: DataSource): string {
  return ds.kind === 'file' ? ds.path : ds.kind === 'env' ? `$${ds.name}` : 'inline';
}

export class TlsMaterial extends EventEmitter {
  private certMat: CertMaterial | undefined;
  private trustMat: TrustMaterial | undefined;
  private ver = 0;
  private readonly secretSubs: Unsubscribe[] = [];
  private readonly fileSubs = new Map<string, Unsubscribe>();
  private closed = false;

  constructor(
    private readonly spec: CommonTlsContextSpec,
    private readonly store: SecretStore,
    private readonly stats: TlsStats,
    private readonly log: TlsLogger,
    private readonly label: string,
  ) {
    super();
    const first = spec.certificates[0];
    if (first?.kind === 'sds') this.secretSubs.push(store.watch(first.name, () => this.refresh()));
    if (spec.validation?.sdsName !== undefined) this.secretSubs.push(store.watch(spec.validation.sdsName, () => this.refresh()));
    this.refresh();
  }

  get cert(): CertMaterial | undefined { return this.certMat; }
  get trust(): TrustMaterial | undefined { return this.trustMat; }
  get version(): number { return this.ver; }
  get needsCert(): boolean { return this.spec.certificates.length > 0; }
  get needsTrust(): boolean { return this.spec.validation !== undefined; }

  ready(): boolean {
    return (!this.needsCert || this.certMat !== undefined) && (!this.needsTrust || this.trustMat !== undefined);
  }

  /** Resolves true once ready, false on timeout or close. */
  whenReady(timeoutMs = 15_000): Promise<boolean> {
    if (this.ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(t);
        this.off('change', onChange);
        this.off('close', onClose);
        resolve(v);
      };
      const onChange = () => { if (this.ready()) done(true); };
      const onClose = () => done(false);
      const t = setTimeout(() => done(false), timeoutMs);
      t.unref();
      this.on('change', onChange);
      this.on('close', onClose);
    });
  }

  /** Re-resolves everything from the store; emits 'change' if anything differs. */
  refresh(): void {
    if (this.closed) return;
    const files = new Set<string>();
    const read = (ds: DataSource): Buffer => {
      if (ds.kind === 'file') files.add(ds.path);
      return this.store.readData(ds);
    };
    let certChanged = false;
    let trustChanged = false;
    if (this.needsCert) {
      try {
        const spec = this.certificateSpec();
        if (spec) {
          const m = loadCertificate(spec, read);
          if (m.key !== this.certMat?.key) {
            certChanged = true;
            this.certMat = m;
          }
        }
      } catch (e) {
        this.fail('certificate', e);
      }
    }
    if (this.needsTrust) {
      try {
        const spec = this.validationSpec();
        if (spec) {
          const t = loadTrust(spec, read);
          if (t.policy.key !== this.trustMat?.policy.key) {
            trustChanged = true;
            this.trustMat = t;
          }
        }
      } catch (e) {
        this.fail('trust bundle', e);
      }
    }
    this.syncFileWatches(files);
    if (certChanged || trustChanged) {
      this.ver++;
      if (this.ver > 1) {
        this.stats['ssl.rotation']++;
        this.log('info', `${this.label}: rotated ${[certChanged && 'certificate', trustChanged && 'trust bundle'].filter(Boolean).join(' and ')} (version ${this.ver})`);
      }
      this.emit('change', { cert: certChanged, trust: trustChanged } satisfies MaterialChange);
    }
  }

  private fail(what: string, e: unknown): void {
    const had = what === 'certificate' ? this.certMat !== undefined : this.trustMat !== undefined;
    if (had) this.stats['ssl.rotation_error']++;
    this.log(had ? 'error' : 'warn', `${this.label}: ${what} not loaded${had ? ' (keeping the previous one)' : ''}: ${(e as Error).message}`);
  }

  /** Undefined = still waiting for SDS (not an error). */
  private certificateSpec(): TlsCertificateSpec | undefined {
    const src = this.spec.certificates[0];
    if (!src) return undefined;
    if (src.kind === 'static') return src.spec;
    const s = this.store.get(src.name);
    if (!s) return undefined;
    if (s.kind !== 'tls_certificate') throw new Error(`secret "${src.name}" is a ${s.kind}, not a tls_certificate`);
    return s.tlsCertificate;
  }

  private validationSpec(): ValidationContextSpec | undefined {
    const v = this.spec.validation;
    if (!v) return undefined;
    if (v.sdsName === undefined) return v.static;
    const s = this.store.get(v.sdsName);
    if (!s) return undefined;
    if (s.kind !== 'validation_context') throw new Error(`secret "${v.sdsName}" is a ${s.kind}, not a validation_context`);
    const dyn = s.validationContext;
    if (!v.static) return dyn;
    // combined_validation_context: trust material from SDS, policy from the default context.
    const d = v.static;
    return {
      ...d,
      ...(dyn.trustedCa ?? d.trustedCa ? { trustedCa: (dyn.trustedCa ?? d.trustedCa)! } : {}),
      trustDomains: dyn.trustDomains.length > 0 ? dyn.trustDomains : d.trustDomains,
      sanMatchers: d.sanMatchers.length > 0 ? d.sanMatchers : dyn.sanMatchers,
      certificateHashes: d.certificateHashes.length > 0 ? d.certificateHashes : dyn.certificateHashes,
    };
  }

  private syncFileWatches(files: Set<string>): void {
    for (const [p, unsub] of this.fileSubs) {
      if (!files.has(p)) { unsub(); this.fileSubs.delete(p); }
    }
    for (const p of files) {
      if (!this.fileSubs.has(p)) this.fileSubs.set(p, this.store.watchData({ kind: 'file', path: p }, () => this.refresh()));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const u of this.secretSubs) u();
    for (const u of this.fileSubs.values()) u();
    this.fileSubs.clear();
    this.emit('close');
    this.removeAllListeners();
  }
}

function loadCertificate(spec: TlsCertificateSpec, read: (ds: DataSource) => Buffer): CertMaterial {
  const chainBuf = read(spec.certificateChain);
  const keyBuf = read(spec.privateKey);
  const passphrase = spec.password ? read(spec.password).toString().trim() : undefined;
  const chain = parsePemCertificates(chainBuf, `certificate_chain (${describeSource(spec.certificateChain)})`);
  let key;
  try {
    key = createPrivateKey(passphrase !== undefined ? { key: keyBuf, passphrase } : { key: keyBuf });
  } catch (e) {
    throw new Error(`private_key (${describeSource(spec.privateKey)}) is unreadable: ${(e as Error).message}`);
  }
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) throw new Error('private_key does not match the certificate');
  const chainPem = chain.map((c) => c.toString()).join('');
  const keyPem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
  const digest = createHash('sha256').update(chainPem).update(keyPem).digest('base64');
  return passphrase !== undefined ? { chainPem, keyPem, leaf, key: digest, passphrase } : { chainPem, keyPem, leaf, key: digest };
}

function loadTrust(spec: ValidationContextSpec, read: (ds: DataSource) => Buffer): TrustMaterial {
  const anchors = spec.trustedCa ? parsePemCertificates(read(spec.trustedCa), `trusted_ca (${describeSource(spec.trustedCa)})`) : [];
  const domains = new Map<string, X509Certificate[]>();
  for (const d of spec.trustDomains) {
    domains.set(d.name, parsePemCertificates(read(d.bundle), `trust bundle of "${d.name}" (${describeSource(d.bundle)})`));
  }
  if (anchors.length === 0 && domains.size === 0 && !spec.acceptUntrusted) {
    throw new Error('validation context has neither trusted_ca nor trust domains');
  }
  const rest = {
    san: spec.sanMatchers,
    hashes: spec.certificateHashes,
    allowExpired: spec.allowExpired,
    acceptUntrusted: spec.acceptUntrusted,
    depth: spec.maxVerifyDepth,
  };
  const policy: TrustPolicy = {
    anchors,
    domains,
    sanMatchers: compileSanMatchers(spec.sanMatchers),
    certificateHashes: new Set(spec.certificateHashes),
    allowExpired: spec.allowExpired,
    acceptUntrusted: spec.acceptUntrusted,
    maxVerifyDepth: spec.maxVerifyDepth,
    key: policyKey({ anchors, domains, rest }),
  };
  const caPems = [...anchors, ...[...domains.values()].flat()].map((c) => c.toString());
  return { policy, caPems };
}
