import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import type { TlsSource } from '../upstream/transport-match.js';
import { applyTcpKeepalive } from '../upstream/pool.js';
import { tlsPrincipals } from '../upstream/tls-connector.js';

/**
 * How the raw HTTP/1.1 pool of one host opens its connections: plaintext TCP, or TLS with
 * the host's transport socket (a mesh's mTLS hop: Istio's `tlsMode: istio` endpoints). One
 * per pool, made for one version of the TLS material: a rotation makes a new pool, so
 * connections already open keep the material they were verified with, as Envoy's do.
 */
export class UpstreamSocketFactory {
  /** The TLS options (certs/ UpstreamTlsProvider's snapshot), undefined for plaintext. */
  private readonly tlsOptions: tls.ConnectionOptions | undefined;
  /** Which TLS snapshot this factory was made for (-1: plaintext, or TLS whose secret has not arrived). */
  readonly tlsVersion: number;
  /** The last session ticket from this host: the next connection resumes instead of a full handshake. */
  private session: Buffer | undefined;

  constructor(private readonly cluster: ClusterRuntime, private readonly host: Host, readonly tlsSource: TlsSource | undefined) {
    const snap = tlsSource?.current();
    this.tlsVersion = snap?.version ?? -1;
    // A TLS host whose secret has not arrived: every handshake fails verification (as undici's pool does).
    this.tlsOptions = tlsSource === undefined ? undefined : h1Only((snap?.connect ?? { rejectUnauthorized: true, ca: [] }) as tls.ConnectionOptions);
  }

  get isTls(): boolean {
    return this.tlsOptions !== undefined;
  }

  /** True while the TLS material this factory uses is still the source's current one. */
  get current(): boolean {
    return this.tlsSource === undefined || (this.tlsSource.current()?.version ?? -1) === this.tlsVersion;
  }

  /**
   * A new connection to the host; `onReady` runs once it can carry a request verified end to
   * end (TCP connect for plaintext; for TLS, the handshake with the peer's certificate checked).
   */
  open(onReady: () => void): net.Socket {
    const e = this.host.endpoint;
    const bind = this.cluster.config.upstreamBindConfig;
    const where = { host: e.address, port: e.port, ...(bind ? { localAddress: bind.sourceAddress } : {}) };
    let socket: net.Socket;
    if (this.tlsOptions === undefined) {
      socket = net.connect({ ...where, noDelay: true });
      socket.once('connect', onReady);
    } else {
      const s = tls.connect({ ...this.tlsOptions, ...where, ...(this.session ? { session: this.session } : {}) });
      s.setNoDelay(true);
      s.on('session', (ticket: Buffer) => (this.session = ticket));
      s.once('secureConnect', () => {
        // Envoy's uriSanPeerCertificate / uriSanLocalCertificate: Istio's client-side principals.
        const p = tlsPrincipals(s);
        this.host.tlsPeerPrincipal = p.peer;
        this.host.tlsLocalPrincipal = p.local;
        onReady();
      });
      // A failed handshake must not be resumed from.
      s.once('error', () => (this.session = undefined));
      socket = s;
    }
    applyTcpKeepalive(socket, this.cluster.config);
    return socket;
  }
}

/**
 * The context's ALPN list as this pool may offer it: it speaks HTTP/1.1 only, so `h2` is
 * never offered (a peer choosing it would get HTTP/1.1 bytes). Istio's `istio-peer-exchange,
 * istio` stay, as Envoy offers them; an empty list offers `http/1.1`, as undici does.
 */
function h1Only(options: tls.ConnectionOptions): tls.ConnectionOptions {
  const alpn = options.ALPNProtocols;
  const list = Array.isArray(alpn) ? (alpn as unknown[]).filter((p): p is string => typeof p === 'string' && p !== 'h2') : [];
  return { ...options, ALPNProtocols: list.length > 0 ? list : ['http/1.1'] };
}
