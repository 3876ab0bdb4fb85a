import type { X509Certificate } from 'node:crypto';
import { parseSpiffeId, sansOf } from './match.js';

/** Who the peer is, as proven by its (verified) certificate. */
export interface PeerIdentity {
  /** The single SPIFFE ID URI SAN, if the certificate is an SVID. */
  readonly spiffeId?: string;
  readonly trustDomain?: string;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  readonly subject: string;
  /** Lower-case hex SHA-256 of the leaf's DER (Envoy's x-forwarded-client-cert Hash). */
  readonly fingerprint: string;
  readonly serialNumber: string;
  readonly notAfter: Date;
}

export function fingerprintHex(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Identity of a certificate without any verification (the verifier decides whether to trust it). */
export function identityOf(cert: X509Certificate): PeerIdentity {
  const sans = sansOf(cert);
  const spiffe = sans.uri.filter((u) => u.startsWith('spiffe://'));
  const parsed = spiffe.length === 1 ? parseSpiffeId(spiffe[0]!) : undefined;
  const base = {
    uriSans: sans.uri,
    dnsSans: sans.dns,
    subject: cert.subject,
    fingerprint: fingerprintHex(cert),
    serialNumber: cert.serialNumber,
    notAfter: new Date(cert.validTo),
  };
  return parsed ? { ...base, spiffeId: spiffe[0]!, trustDomain: parsed.trustDomain } : base;
}

const kPeer = Symbol.for('pilotfish.certs.peerIdentity');
const kLocalUris = Symbol.for('pilotfish.certs.localUriSans');

interface Tagged { [kPeer]?: PeerIdentity; [kLocalUris]?: readonly string[] }

export function setPeerIdentity(socket: object, id: PeerIdentity): void {
  (socket as Tagged)[kPeer] = id;
}

/**
 * The verified peer of a downstream connection. Accepts the TLSSocket, an http/https
 * `req.socket`, an http2 session or `req.socket` of http2 (a proxy that forwards property reads).
 */
export function peerIdentity(socketOrSession: object | null | undefined): PeerIdentity | undefined {
  if (!socketOrSession) return undefined;
  const direct = (socketOrSession as Tagged)[kPeer];
  if (direct) return direct;
  const inner = (socketOrSession as { socket?: object }).socket;
  return inner && inner !== socketOrSession ? (inner as Tagged)[kPeer] : undefined;
}

/**
 * The URI SANs of the certificate this side presented on a connection it terminated,
 * tagged by the TLS provider that verified the peer. Reading them back from the socket
 * (getCertificate) costs ~50 µs per connection; the provider knows its certificate.
 */
export function setLocalUriSans(socket: object, uris: readonly string[]): void {
  (socket as Tagged)[kLocalUris] = uris;
}

/** See setLocalUriSans; the same carriers as peerIdentity. Undefined when no provider tagged it. */
export function localUriSans(socketOrSession: object | null | undefined): readonly string[] | undefined {
  if (!socketOrSession) return undefined;
  const direct = (socketOrSession as Tagged)[kLocalUris];
  if (direct) return direct;
  const inner = (socketOrSession as { socket?: object }).socket;
  return inner && inner !== socketOrSession ? (inner as Tagged)[kLocalUris] : undefined;
}
