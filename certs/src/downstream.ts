/**
 * Server side of mTLS for a listener / filter chain. OpenSSL is told to request a client
 * certificate but accept anything (`rejectUnauthorized: false`, empty CA store, so its own
 * check fails fast and costs nothing); pilotfish verifies the peer itself - with a cache -
 * before the connection reaches any 'secureConnection' listener (HTTP, HTTP/2, TCP proxy),
 * by intercepting the server's emit. An unverified peer is destroyed before a single byte
 * of application data is read from it.
 */
import { constants as cryptoConstants, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import tls from 'node:tls';
import { setLocalUriSans, setPeerIdentity } from './identity.js';
import { sansOf } from './match.js';
import { TlsMaterial, type CertMaterial } from './material.js';
import type { SecretStore } from './secret-store.js';
import { countFailure, createTlsStats, defaultLogger, RateLimitedLog, REASON_TEXT, type FailReason, type TlsLogger, type TlsStats } from './stats.js';
import type { DownstreamTlsContextSpec } from './types.js';
import { PeerVerifier, type VerifierOptions } from './verify.js';

export interface DownstreamProviderOptions {
  /** Used in log lines, e.g. the listener / filter chain name. */
  readonly name?: string;
  /** ALPN the proxy's codec supports, e.g. ['h2', 'http/1.1']; the context's alpn_protocols win if set. */
  readonly alpnProtocols?: readonly string[];
  /** Share one stats object across providers of a listener if wanted. */
  readonly stats?: TlsStats;
  readonly log?: TlsLogger;
  readonly verifyCache?: VerifierOptions;
  /** Session ticket key rotation period (default 1 h; 0 = never). Old tickets then fall back to a full handshake. */
  readonly ticketKeyRotationMs?: number;
}

const PROTOCOL_VERSION_ERR = /unsupported protocol|version too low|wrong version number|no protocols available|alert protocol version/i;

export class DownstreamTlsProvider extends EventEmitter {
  readonly stats: TlsStats;
  readonly verifier: PeerVerifier;
  private readonly material: TlsMaterial;
  private readonly log: TlsLogger;
  private readonly refusals: RateLimitedLog;
  private readonly label: string;
  private ticketKeys = randomBytes(48);
  private ticketTimer: NodeJS.Timeout | undefined;
  private readonly servers = new Map<tls.Server, () => void>();
  private ctxCache: { version: number; ctx: tls.SecureContext } | undefined;
  /** Our certificate's URI SANs, read once per certificate (not per connection). */
  private ownSans: { readonly cert: CertMaterial; readonly uris: readonly string[] } | undefined;

  constructor(readonly spec: DownstreamTlsContextSpec, store: SecretStore, private readonly opts: DownstreamProviderOptions = {}) {
    super();
    this.stats = opts.stats ?? createTlsStats();
    this.log = opts.log ?? defaultLogger;
    this.refusals = new RateLimitedLog(this.log);
    this.label = opts.name ?? 'downstream tls';
    this.verifier = new PeerVerifier(this.stats, opts.verifyCache);
    this.material = new TlsMaterial(spec.common, store, this.stats, this.log, this.label);
    if (this.material.trust) this.verifier.setPolicy(this.material.trust.policy);
    this.material.on('change', (c: { cert: boolean; trust: boolean }) => {
      if (c.trust && this.material.trust) this.verifier.setPolicy(this.material.trust.policy);
      if (c.cert) this.applyToServers();
      this.emit('change', { version: this.version, ...c });
    });
    const every = opts.ticketKeyRotationMs ?? 3_600_000;
    if (every > 0) {
      this.ticketTimer = setInterval(() => this.rotateTicketKeys(), every);
      this.ticketTimer.unref();
    }
  }

  /** Bumps on every certificate or trust change. */
  get version(): number {
    return this.material.version;
  }

  ready(): boolean {
    return this.material.ready();
  }

  /** Resolves true when certificate (and trust bundle, if any) are loaded; false on timeout. */
  whenReady(timeoutMs?: number): Promise<boolean> {
    return this.material.whenReady(timeoutMs);
  }

  private get verifiesPeers(): boolean {
    return this.spec.common.validation !== undefined;
  }

  /** Options for tls.createSecureContext / server.setSecureContext: the part that rotates. */
  secureContextOptions(): tls.SecureContextOptions {
    const p = this.spec.common.tlsParams;
    const c = this.material.cert;
    const o: tls.SecureContextOptions = {
      minVersion: p.minVersion,
      maxVersion: p.maxVersion,
      ticketKeys: this.ticketKeys,
      sessionTimeout: Math.max(1, Math.round((this.spec.sessionTimeoutMs ?? 300_000) / 1000)),
      // No anchors for OpenSSL: its verdict is ignored, so make it fail fast instead of walking the system store.
      ca: [],
    };
    if (c) {
      o.cert = c.chainPem;
      o.key = c.keyPem;
      if (c.passphrase !== undefined) o.passphrase = c.passphrase;
    }
    if (p.cipherSuites.length > 0) o.ciphers = p.cipherSuites.join(':');
    if (p.ecdhCurves.length > 0) o.ecdhCurve = p.ecdhCurves.join(':');
    if (p.signatureAlgorithms.length > 0) o.sigalgs = p.signatureAlgorithms.join(':');
    if (this.spec.disableStatelessSessionResumption) o.secureOptions = cryptoConstants.SSL_OP_NO_TICKET;
    return o;
  }

  /**
   * Options for tls.createServer / https.createServer / http2.createSecureServer.
   * Call attach(server) afterwards: it does the peer verification and rotation.
   */
  serverOptions(alpnProtocols?: readonly string[]): tls.TlsOptions {
    const alpn = this.spec.common.alpnProtocols.length > 0 ? this.spec.common.alpnProtocols : (alpnProtocols ?? this.opts.alpnProtocols ?? []);
    const o: tls.TlsOptions = {
      ...this.secureContextOptions(),
      requestCert: this.verifiesPeers,
      rejectUnauthorized: false,
    };
    if (alpn.length > 0) o.ALPNProtocols = [...alpn];
    return o;
  }

  /** A SecureContext for the current material, for proxies that pick contexts in an SNICallback. */
  secureContext(): tls.SecureContext {
    if (this.ctxCache?.version !== this.version) this.ctxCache = { version: this.version, ctx: tls.createSecureContext(this.secureContextOptions()) };
    return this.ctxCache.ctx;
  }

  /**
   * Wires a server to this provider: peer verification before 'secureConnection'
   * listeners run, handshake-failure accounting, and rotation (setSecureContext, so
   * new handshakes use new material at once and established connections carry on).
   * Returns a detach function.
   */
  attach(server: tls.Server): () => void {
    if (this.servers.has(server)) return this.servers.get(server)!;
    const origEmit = server.emit;
    const self = this;
    const patched = function (this: tls.Server, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'secureConnection' && !self.verifySocket(args[0] as tls.TLSSocket)) return false;
      return origEmit.apply(this, [event, ...args] as Parameters<typeof origEmit>);
    };
    server.emit = patched as typeof server.emit;
    const onClientError = (err: Error & { code?: string }, socket: tls.TLSSocket) => this.onHandshakeError(err, socket);
    server.on('tlsClientError', onClientError);
    if (this.material.cert) server.setSecureContext(this.secureContextOptions());
    const detach = () => {
      if (server.emit === patched) server.emit = origEmit;
      server.off('tlsClientError', onClientError);
      this.servers.delete(server);
    };
    this.servers.set(server, detach);
    return detach;
  }

  /**
   * Verifies the peer of a freshly handshaken socket; on failure counts, logs and
   * destroys it. attach() calls this; exposed for proxies that own the TLS socket
   * (e.g. new tls.TLSSocket(..., {isServer: true})).
   */
  verifySocket(socket: tls.TLSSocket): boolean {
    if (socket.isSessionReused()) this.stats['ssl.session_reused']++;
    if (!this.verifiesPeers) {
      this.stats['ssl.handshake']++;
      return true;
    }
    const leaf = socket.getPeerX509Certificate();
    if (!leaf) {
      if (!this.spec.requireClientCertificate) {
        this.stats['ssl.handshake']++;
        return true;
      }
      return this.refuse(socket, 'no_cert', 'the client sent no certificate');
    }
    const r = this.verifier.verify(leaf);
    if (!r.ok) return this.refuse(socket, r.reason, r.detail);
    setPeerIdentity(socket, r.identity);
    const own = this.ownUriSans();
    if (own) setLocalUriSans(socket, own);
    this.stats['ssl.handshake']++;
    return true;
  }

  /**
   * The URI SANs of the certificate this provider serves. A handshake that began before a
   * rotation and ends after it presented the previous certificate but is tagged with the
   * new one's SANs; a rotation renews a workload's certificate, its SPIFFE ID stays.
   */
  private ownUriSans(): readonly string[] | undefined {
    const c = this.material.cert;
    if (!c) return undefined;
    if (this.ownSans?.cert !== c) this.ownSans = { cert: c, uris: sansOf(c.leaf).uri };
    return this.ownSans.uris;
  }

  private refuse(socket: tls.TLSSocket, reason: FailReason, detail: string): false {
    countFailure(this.stats, reason);
    this.refusals.line(reason, 'warn', `${this.label}: refused TLS peer ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}: ${REASON_TEXT[reason]} (${detail})`);
    socket.destroy();
    return false;
  }

  private onHandshakeError(err: Error & { code?: string }, socket: tls.TLSSocket): void {
    const text = `${err.code ?? ''} ${err.message}`;
    // OpenSSL messages carry source paths and addresses; keep just the reason.
    const reason = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1] ?? err.message.split('\n')[0];
    const peer = `${socket?.remoteAddress ?? '?'}:${socket?.remotePort ?? '?'}`;
    if (PROTOCOL_VERSION_ERR.test(text)) {
      countFailure(this.stats, 'protocol_version');
      this.refusals.line('protocol_version', 'warn',
        `${this.label}: refused TLS peer ${peer}: ${REASON_TEXT.protocol_version} (${this.spec.common.tlsParams.minVersion} required; ${reason})`);
    } else {
      this.stats['ssl.connection_error']++;
      this.refusals.line('handshake', 'warn', `${this.label}: TLS handshake with ${peer} failed: ${reason}`);
    }
  }

  /** New session-ticket key: tickets issued before fall back to a full handshake. */
  rotateTicketKeys(): void {
    this.ticketKeys = randomBytes(48);
    for (const s of this.servers.keys()) s.setTicketKeys(this.ticketKeys);
    this.ctxCache = undefined;
  }

  private applyToServers(): void {
    if (!this.material.cert) return;
    const o = this.secureContextOptions();
    for (const s of this.servers.keys()) {
      try {
        s.setSecureContext(o);
      } catch (e) {
        this.stats['ssl.rotation_error']++;
        this.log('error', `${this.label}: could not install the new certificate: ${(e as Error).message}`);
      }
    }
  }

  close(): void {
    if (this.ticketTimer) clearInterval(this.ticketTimer);
    for (const detach of [...this.servers.values()]) detach();
    this.material.close();
    this.removeAllListeners();
  }
}
