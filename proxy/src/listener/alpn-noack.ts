import type * as net from 'node:net';
import * as tls from 'node:tls';
import { connectionInfo } from '../net/connection-info.js';

/**
 * Envoy's TLS server declines ALPN (SSL_TLSEXT_ERR_NOACK) when the client offers no
 * protocol it supports, and the handshake goes on without one; Node's TLS server sends a
 * fatal no_application_protocol alert instead. Istio depends on Envoy's way: a client
 * sidecar offers `istio-peer-exchange, istio` (or `istio-http/1.1, istio, http/1.1`) and the
 * inbound HTTP chain's context lists `h2, http/1.1`. So a chain keeps a twin server without
 * ALPN, created on first need, and sends the connections whose ClientHello (read by
 * tls_inspector) offers nothing in common to it.
 */
export class AlpnNoackTls {
  private twin: tls.Server | undefined;
  private readonly supported: readonly string[];

  constructor(
    readonly server: tls.Server,
    private readonly options: tls.TlsOptions,
    private readonly onSecure: (socket: tls.TLSSocket) => void,
    private readonly prepare: (server: tls.Server) => void,
  ) {
    const alpn = options.ALPNProtocols;
    this.supported = Array.isArray(alpn) ? (alpn as string[]) : [];
  }

  /** Hands a raw connection to the server that will complete its handshake as Envoy would. */
  emitConnection(socket: net.Socket): void {
    const offered = connectionInfo(socket)?.applicationProtocols;
    if (this.supported.length === 0 || offered === undefined || offered.length === 0 || offered.some((p) => this.supported.includes(p))) {
      this.server.emit('connection', socket);
      return;
    }
    if (this.twin === undefined) {
      const { ALPNProtocols: _declined, ...rest } = this.options;
      this.twin = tls.createServer(rest, this.onSecure);
      this.prepare(this.twin);
    }
    this.twin.emit('connection', socket);
  }
}
