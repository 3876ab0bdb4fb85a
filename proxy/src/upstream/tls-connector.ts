import * as net from 'node:net';
import * as tls from 'node:tls';

/** What undici hands a connector (lib/core/connect.js): where to connect and from where. */
interface ConnectTarget {
  readonly hostname: string;
  readonly port: string | number;
  readonly servername?: string | null;
  readonly localAddress?: string | null;
  readonly httpSocket?: net.Socket;
}

type Callback = (err: Error | null, socket: tls.TLSSocket | null) => void;

const SESSIONS_PER_CONNECTOR = 100;

/**
 * A TLS connector for undici that offers the cluster's own ALPN. undici's built-in
 * connector always offers ['http/1.1'] (or adds 'h2'), replacing the UpstreamTlsContext's
 * alpn_protocols; Envoy offers exactly what the context lists, and Istio's inbound
 * listeners choose their mTLS chain by it (`istio-peer-exchange`, `istio`, `istio-http/1.1`).
 * Everything else follows undici's connector: SNI from the options or the host name,
 * session resumption per target, TCP keep-alive, no Nagle, a connect timeout.
 */
export function alpnTlsConnector(
  options: Record<string, unknown> & { servername?: string; timeout?: number; keepAlive?: boolean; keepAliveInitialDelay?: number },
  /** Called with each connected (verified) socket, before undici gets it. */
  onSecure?: (socket: tls.TLSSocket) => void,
) {
  const sessions = new Map<string, Buffer>();
  return (target: ConnectTarget, cb: Callback): void => {
    const servername = options.servername ?? target.servername ?? (net.isIP(target.hostname) ? undefined : target.hostname);
    const key = `${servername ?? ''}|${target.hostname}:${target.port}`;
    const { timeout, keepAlive, keepAliveInitialDelay, ...tlsOptions } = options;
    const session = sessions.get(key);
    const socket = tls.connect({
      ...(tlsOptions as tls.ConnectionOptions),
      ...(servername ? { servername } : {}),
      ...(session ? { session } : {}),
      ...(target.localAddress ? { localAddress: target.localAddress } : {}),
      ...(target.httpSocket ? { socket: target.httpSocket } : {}),
      host: target.hostname,
      port: Number(target.port) || 443,
    });
    socket.on('session', (s: Buffer) => {
      if (sessions.size >= SESSIONS_PER_CONNECTOR && !sessions.has(key)) sessions.delete(sessions.keys().next().value as string);
      sessions.set(key, s);
    });
    socket.setNoDelay(true);
    if (keepAlive !== false) socket.setKeepAlive(true, keepAliveInitialDelay ?? 60_000);
    let settled = false;
    const settle = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (err) {
        sessions.delete(key);
        socket.destroy();
        cb(err, null);
      } else cb(null, socket);
    };
    const timer = timeout ? setTimeout(() => settle(Object.assign(new Error('Connect Timeout Error'), { name: 'ConnectTimeoutError', code: 'UND_ERR_CONNECT_TIMEOUT' })), timeout) : undefined;
    socket.once('secureConnect', () => {
      onSecure?.(socket);
      settle(null);
    });
    socket.once('error', (err) => settle(err));
  };
}

/**
 * The URI SANs (a SPIFFE ID first) of both certificates of a connected upstream TLS socket:
 * Envoy's uriSanPeerCertificate / uriSanLocalCertificate, which Istio's client-side stats
 * report as destination_principal / source_principal.
 */
export function tlsPrincipals(socket: tls.TLSSocket): { peer: string | undefined; local: string | undefined } {
  const uri = (cert: { subjectaltname?: string } | null | undefined): string | undefined => {
    const uris = (cert?.subjectaltname ?? '').split(', ').filter((x) => x.startsWith('URI:')).map((x) => x.slice(4));
    return uris.find((u) => u.startsWith('spiffe://')) ?? uris[0];
  };
  return { peer: uri(socket.getPeerCertificate() as { subjectaltname?: string }), local: uri(socket.getCertificate() as { subjectaltname?: string } | null) };
}
