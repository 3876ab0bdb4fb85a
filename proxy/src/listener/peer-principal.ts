import type * as tls from 'node:tls';
import { localUriSans, peerIdentity } from '../../../certs/src/index.js';
import type { ConnectionInfo } from '../net/connection-info.js';

/**
 * After a chain's TLS handshake: the client certificate's URI SAN (its SPIFFE ID, else
 * the first URI SAN) becomes the connection's peerPrincipal, as Envoy's
 * `Ssl::ConnectionInfo::uriSanPeerCertificate()` feeds RBAC `authenticated` principals and
 * Istio's telemetry. Only a certificate the chain verified counts (certs/ tags the socket
 * with the identity when it verified it); without one the principal stays unset.
 */
export function setPeerPrincipal(socket: tls.TLSSocket, info: ConnectionInfo): void {
  const id = peerIdentity(socket);
  const principal = id?.spiffeId ?? id?.uriSans[0];
  if (principal !== undefined) {
    info.peerPrincipal = principal;
    // Our own side of the mTLS connection (Envoy's uriSanLocalCertificate): Istio's
    // istio_authn and stats report it as io.istio.local_principal / destination_principal.
    const local = localUriSan(socket);
    if (local !== undefined) info.localPrincipal = local;
  }
}

/**
 * The URI SAN of the certificate this side presented (a SPIFFE ID first), if any: as the
 * verifying provider tagged it, else read back from OpenSSL (getCertificate builds the
 * whole certificate object, ~50 µs per connection).
 */
function localUriSan(socket: tls.TLSSocket): string | undefined {
  let uris = localUriSans(socket);
  if (uris === undefined) {
    const cert = socket.getCertificate() as { subjectaltname?: string } | null;
    uris = (cert?.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  }
  return uris.find((u) => u.startsWith('spiffe://')) ?? uris[0];
}
