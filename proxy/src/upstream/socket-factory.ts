import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/endpoint-set.js';
import type { TlsSource } from './transport-match.js';
import { applyTcpKeepalive } from './pool.js';
import { tlsPrincipals } from './tls-connector.js';

/** An upstream error carrying the code the router's failure mapping reads (http/upstream-failure.ts). */
export class UpstreamSocketError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Codes that already say "no connection was made" (a connect failure to the router). */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

export function isConnectCode(code: string | undefined): boolean {
  return code !== undefined && CONNECT_CODES.has(code);
}

/**
 * An error on a TLS connection before it could carry a request. A failed handshake (bad
 * certificate, wrong SAN, no common protocol) is a connection failure, as in Envoy (UF,
 * "TLS error: ..."), so retry_on connect-failure may replay the request; TCP errors keep
 * their codes.
 */
export function tlsErrorBeforeReady(err: NodeJS.ErrnoException): Error {
  if (isConnectCode(err.code)) return err;
  return new UpstreamSocketError('ECONNRESET_BEFORE_CONNECT', `TLS error: ${err.message}`);
}

/** Which ALPN list a pool offers, from the context's own list (the pool's protocol decides). */
export type AlpnPolicy = (contextList: readonly string[]) => string[];

/**
 * The raw HTTP/1.1 pool speaks HTTP/1.1 only, so `h2` is never offered (a peer choosing it
 * would get HTTP/1.1 bytes). Istio's `istio-peer-exchange, istio` stay, as Envoy offers
 * them; an empty list offers `http/1.1`, as undici does.
 */
export const HTTP1_ALPN: AlpnPolicy = (list) => {
  const h1 = list.filter((p) => p !== 'h2');
  return h1.length > 0 ? h1 : ['http/1.1'];
};

/** The HTTP/2 pool offers `h2` beside the context's list (istio.alpn's override does the same). */
export const HTTP2_ALPN: AlpnPolicy = (list) => (list.includes('h2') ? [...list] : [...list, 'h2']);

/**
 * Reads of a socket opened with one (net's `onread`): `n` bytes at the start of `buf`,
 * which the next read overwrites, so anything kept past the call must be copied. Returns
 * true (false would stop reading, as pause() does).
 */
export type ReadInto = (n: number, buf: Buffer) => boolean;

/**
 * Plaintext sockets opened with a ReadInto all read into this one buffer: libuv fills it
 * only from the event loop's poll phase, immediately before that socket's callback, never
 * during JavaScript, so one read's bytes cannot be overwritten by another socket's while
 * its callback runs. 64 KB, as node's own reads.
 */
const PLAIN_READ_BYTES = 64 * 1024;
let plainReadBuffer: Buffer | undefined;

/**
 * A TLS socket's cleartext is copied out of OpenSSL 16 KB at a time (TLSWrap::ClearOut),
 * and ClearOut can also run synchronously from JavaScript (an empty write to that socket),
 * so each TLS socket gets a buffer of its own: another socket's callback can never
 * overwrite the bytes one is parsing.
 */
const TLS_READ_BYTES = 16 * 1024;

/**
 * How a pool of pilotfish's own (the raw HTTP/1.1 pool, the core-API HTTP/2 pool) opens a
 * host's connections: plaintext TCP, or TLS with the host's transport socket (a mesh's mTLS
 * hop: Istio's `tlsMode: istio` endpoints). One per pool, made for one version of the TLS
 * material: a rotation makes a new pool, so connections already open keep the material
 * they were verified with, as Envoy's do.
 */
export class UpstreamSocketFactory {
  /** The TLS options (certs/ UpstreamTlsProvider's snapshot), undefined for plaintext. */
  private readonly tlsOptions: tls.ConnectionOptions | undefined;
  /** Which TLS snapshot this factory was made for (-1: plaintext, or TLS whose secret has not arrived). */
  readonly tlsVersion: number;
  /** The last session ticket from this host: the next connection resumes instead of a full handshake. */
  private session: Buffer | undefined;

  constructor(private readonly cluster: ClusterRuntime, private readonly host: Host, readonly tlsSource: TlsSource | undefined, alpn: AlpnPolicy) {
    const snap = tlsSource?.current();
    this.tlsVersion = snap?.version ?? -1;
    // A TLS host whose secret has not arrived: every handshake fails verification (as undici's pool does).
    this.tlsOptions = tlsSource === undefined ? undefined : withAlpn((snap?.connect ?? { rejectUnauthorized: true, ca: [] }) as tls.ConnectionOptions, alpn);
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
   * With `onRead`, the socket's bytes (cleartext, for TLS) go to it instead of 'data' events:
   * no Readable push and no new buffer per read. 'end', 'error', 'close', pause() and
   * resume() work as before.
   */
  open(onReady: (socket: net.Socket) => void, onRead?: ReadInto): net.Socket {
    const e = this.host.endpoint;
    const bind = this.cluster.config.upstreamBindConfig;
    const where = { host: e.address, port: e.port, ...(bind ? { localAddress: bind.sourceAddress } : {}) };
    let socket: net.Socket;
    if (this.tlsOptions === undefined) {
      const read = onRead === undefined ? {} : { onread: { buffer: (plainReadBuffer ??= Buffer.allocUnsafe(PLAIN_READ_BYTES)), callback: onRead as net.OnReadOpts['callback'] } };
      const s = net.connect({ ...where, noDelay: true, ...read });
      s.once('connect', () => onReady(s));
      socket = s;
    } else {
      // tls.connect hands onread to its net.Socket (node 20: TLSSocket's constructor), checked in proxy/test/http1/upstream-read.test.ts.
      const read = onRead === undefined ? {} : { onread: { buffer: Buffer.allocUnsafe(TLS_READ_BYTES), callback: onRead as net.OnReadOpts['callback'] } };
      const s = tls.connect({ ...this.tlsOptions, ...where, ...(this.session ? { session: this.session } : {}), ...read } as tls.ConnectionOptions);
      s.setNoDelay(true);
      s.on('session', (ticket: Buffer) => (this.session = ticket));
      s.once('secureConnect', () => {
        // Envoy's uriSanPeerCertificate / uriSanLocalCertificate: Istio's client-side principals.
        const p = tlsPrincipals(s);
        this.host.tlsPeerPrincipal = p.peer;
        this.host.tlsLocalPrincipal = p.local;
        onReady(s);
      });
      // A failed handshake must not be resumed from.
      s.once('error', () => (this.session = undefined));
      socket = s;
    }
    applyTcpKeepalive(socket, this.cluster.config);
    return socket;
  }
}

function withAlpn(options: tls.ConnectionOptions, alpn: AlpnPolicy): tls.ConnectionOptions {
  const offered = options.ALPNProtocols;
  const list = Array.isArray(offered) ? (offered as unknown[]).filter((p): p is string => typeof p === 'string') : [];
  return { ...options, ALPNProtocols: alpn(list) };
}
