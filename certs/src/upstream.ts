/**
 * Client side of mTLS for a cluster: `connect` options for undici's Client/Pool (or
 * tls.connect). OpenSSL verifies the chain against the union of all anchors; the
 * per-trust-domain binding, SAN policy and pins are checked in checkServerIdentity by
 * the same cached verifier the downstream side uses.
 */
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { PeerCertificate } from 'node:tls';
import { TlsMaterial } from './material.js';
import type { SecretStore } from './secret-store.js';
import { countFailure, createTlsStats, defaultLogger, RateLimitedLog, REASON_TEXT, type TlsLogger, type TlsStats } from './stats.js';
import type { TlsVersion, UpstreamTlsContextSpec } from './types.js';
import { PeerVerifier, type VerifierOptions } from './verify.js';

/** Structurally a tls.ConnectionOptions subset; pass as undici `connect: {...}`. */
export interface UpstreamConnectOptions {
  readonly ca?: string[];
  readonly cert?: string;
  readonly key?: string;
  readonly passphrase?: string;
  readonly servername?: string;
  /** undici replaces this with its own (['http/1.1'] or with 'h2' when allowH2); tls.connect honours it. */
  readonly ALPNProtocols?: string[];
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  readonly ciphers?: string;
  readonly ecdhCurve?: string;
  readonly sigalgs?: string;
  readonly rejectUnauthorized: boolean;
  readonly checkServerIdentity: (hostname: string, cert: PeerCertificate) => Error | undefined;
  /** undici's TLS session cache size per origin (Envoy max_session_keys). */
  readonly maxCachedSessions: number;
}

export interface UpstreamSnapshot {
  /** Changes whenever certificate or trust material changes: rebuild pools only then. */
  readonly version: number;
  readonly connect: UpstreamConnectOptions;
}

export interface UpstreamProviderOptions {
  readonly name?: string;
  readonly stats?: TlsStats;
  readonly log?: TlsLogger;
  readonly verifyCache?: VerifierOptions;
}

export class UpstreamTlsProvider extends EventEmitter {
  readonly stats: TlsStats;
  readonly verifier: PeerVerifier;
  private readonly material: TlsMaterial;
  private readonly log: TlsLogger;
  private readonly refusals: RateLimitedLog;
  private readonly label: string;
  private snapshot: UpstreamSnapshot | undefined;

  constructor(readonly spec: UpstreamTlsContextSpec, store: SecretStore, opts: UpstreamProviderOptions = {}) {
    super();
    this.stats = opts.stats ?? createTlsStats();
    this.log = opts.log ?? defaultLogger;
    this.refusals = new RateLimitedLog(this.log);
    this.label = opts.name ?? 'upstream tls';
    this.verifier = new PeerVerifier(this.stats, opts.verifyCache);
    this.material = new TlsMaterial(spec.common, store, this.stats, this.log, this.label);
    if (this.material.trust) this.verifier.setPolicy(this.material.trust.policy);
    this.material.on('change', (c: { cert: boolean; trust: boolean }) => {
      if (c.trust && this.material.trust) this.verifier.setPolicy(this.material.trust.policy);
      this.snapshot = undefined;
      const s = this.current();
      if (s) this.emit('change', s);
    });
  }

  ready(): boolean {
    return this.material.ready();
  }

  whenReady(timeoutMs?: number): Promise<boolean> {
    return this.material.whenReady(timeoutMs);
  }

  /** Latest options, or undefined while SDS material is still missing (cluster warming). */
  current(): UpstreamSnapshot | undefined {
    if (!this.material.ready()) return undefined;
    if (this.snapshot?.version === this.material.version) return this.snapshot;
    const p = this.spec.common.tlsParams;
    const c = this.material.cert;
    const t = this.material.trust;
    const connect: Record<string, unknown> = {
      minVersion: p.minVersion,
      maxVersion: p.maxVersion,
      rejectUnauthorized: t !== undefined && !t.policy.acceptUntrusted,
      checkServerIdentity: (host: string, cert: PeerCertificate) => this.checkServerIdentity(host, cert),
      maxCachedSessions: this.spec.maxSessionKeys,
    };
    if (t) connect['ca'] = [...t.caPems];
    if (c) {
      connect['cert'] = c.chainPem;
      connect['key'] = c.keyPem;
      if (c.passphrase !== undefined) connect['passphrase'] = c.passphrase;
    }
    if (this.spec.sni !== undefined) connect['servername'] = this.spec.sni;
    if (this.spec.common.alpnProtocols.length > 0) connect['ALPNProtocols'] = [...this.spec.common.alpnProtocols];
    if (p.cipherSuites.length > 0) connect['ciphers'] = p.cipherSuites.join(':');
    if (p.ecdhCurves.length > 0) connect['ecdhCurve'] = p.ecdhCurves.join(':');
    if (p.signatureAlgorithms.length > 0) connect['sigalgs'] = p.signatureAlgorithms.join(':');
    this.snapshot = { version: this.material.version, connect: Object.freeze(connect) as unknown as UpstreamConnectOptions };
    return this.snapshot;
  }

  /**
   * Called by Node after OpenSSL accepted the chain (not on resumed sessions). Envoy
   * semantics: the hostname is not checked; SAN matchers, pins and trust-domain binding are.
   */
  checkServerIdentity(_hostname: string, cert: PeerCertificate): Error | undefined {
    if (!this.material.trust) {
      this.stats['ssl.handshake']++;
      return undefined;
    }
    let leaf: X509Certificate;
    const intermediates: X509Certificate[] = [];
    try {
      leaf = new X509Certificate(cert.raw);
      let c = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate;
      for (let i = 0; c && c !== cert && i < 10; i++) {
        intermediates.push(new X509Certificate(c.raw));
        const next: PeerCertificate | undefined = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate;
        if (!next || next === c) break;
        c = next;
      }
    } catch (e) {
      countFailure(this.stats, 'malformed');
      return Object.assign(new Error(`upstream certificate is malformed: ${(e as Error).message}`), { code: 'ERR_TLS_CERT_MALFORMED' });
    }
    const r = this.verifier.verify(leaf, intermediates);
    if (r.ok) {
      this.stats['ssl.handshake']++;
      return undefined;
    }
    countFailure(this.stats, r.reason);
    this.refusals.line(r.reason, 'warn', `${this.label}: refused upstream certificate: ${REASON_TEXT[r.reason]} (${r.detail})`);
    return Object.assign(new Error(`upstream ${REASON_TEXT[r.reason]}: ${r.detail}`), {
      code: r.reason === 'san_mismatch' ? 'ERR_TLS_CERT_ALTNAME_INVALID' : 'ERR_TLS_CERT_VERIFY',
    });
  }

  close(): void {
    this.material.close();
    this.removeAllListeners();
  }
}
