import type * as net from 'node:net';
import * as tls from 'node:tls';
import type { DownstreamTls } from '../http/listener.js';
import type { ChainHandler } from '../listener/chain-handler.js';
import { connectionInfo, setConnectionInfo, type ConnectionInfo } from '../net/connection-info.js';
import { setPeerPrincipal } from '../listener/peer-principal.js';
import type { ListenerStats } from '../listener/network-listener.js';
import { AlpnNoackTls } from '../listener/alpn-noack.js';

/**
 * A filter chain with a DownstreamTlsContext in front of tcp_proxy (Istio's inbound mTLS
 * TCP chains): the handshake is done here, with the chain's certificate and peer
 * verification, and the decrypted stream goes to the TCP proxy. A client that fails the
 * handshake never reaches the upstream.
 */
export class TlsTcpChain implements ChainHandler {
  readonly kind = 'tcp';
  private server: AlpnNoackTls;

  constructor(
    /** The TCP proxy behind the handshake; swapped with update(). */
    public inner: ChainHandler,
    private tlsTermination: DownstreamTls,
    private readonly stats: ListenerStats,
  ) {
    this.server = this.makeServer(tlsTermination);
  }

  private makeServer(t: DownstreamTls): AlpnNoackTls {
    // No application protocol of our own: the context's alpn_protocols (Istio: istio-peer-exchange, istio) are offered as configured.
    const options = t.serverOptions([]);
    const onSecure = (socket: tls.TLSSocket): void => {
      this.stats.downstream_cx_ssl_total.inc();
      const info = connectionInfo((socket as unknown as { _parent?: net.Socket })._parent) ?? fallbackInfo(socket);
      setConnectionInfo(socket, info);
      setPeerPrincipal(socket, info);
      socket.on('error', () => undefined);
      // Network filters (RBAC, istio_authn, ...) run behind the handshake, in the TCP proxy.
      this.inner.accept(socket, info);
    };
    const prepare = (server: tls.Server): void => {
      server.on('tlsClientError', (_err, socket) => socket.destroy());
      t.attach(server);
    };
    const server = tls.createServer(options, onSecure);
    prepare(server);
    return new AlpnNoackTls(server, options, onSecure, prepare);
  }

  update(inner: ChainHandler, tlsTermination: DownstreamTls): void {
    this.inner = inner;
    if (tlsTermination !== this.tlsTermination) {
      this.tlsTermination = tlsTermination;
      this.server = this.makeServer(tlsTermination);
    }
  }

  accept(socket: net.Socket, _info: ConnectionInfo): void {
    // tls.Server reads the (possibly unshifted) ClientHello itself.
    this.server.emitConnection(socket);
  }

  drain(): void {
    this.inner.drain();
  }

  closeIdle(): void {
    this.inner.closeIdle();
  }

  destroy(): void {
    this.inner.destroy();
  }
}

function fallbackInfo(socket: tls.TLSSocket): ConnectionInfo {
  return {
    remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0,
    localAddress: socket.localAddress ?? '', localPort: socket.localPort ?? 0,
    transportProtocol: 'tls', applicationProtocols: [], filterChainName: '',
  };
}
