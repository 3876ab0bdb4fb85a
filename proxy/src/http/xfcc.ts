/**
 * x-forwarded-client-cert, as Envoy's ConnectionManagerUtility::mutateXfccRequestHeader:
 *
 *   ALWAYS_FORWARD_ONLY  the header passes unchanged, on any connection
 *   SANITIZE (default)   the header is removed
 *   not mTLS             the header is removed (for every mode below)
 *   FORWARD_ONLY         the header passes unchanged
 *   APPEND_FORWARD       this hop's element is appended (",")
 *   SANITIZE_SET         the header is replaced by this hop's element
 *
 * The element is `By=<our URI SAN>;...;Hash=<sha256 of the peer DER>` then, in Envoy's
 * order, Cert, Chain, Subject, URI, DNS as set_current_client_cert_details asks, with
 * Envoy's quoting (Cert, Chain, Subject quoted; By, URI, DNS, Hash not). It is the same
 * for every request of a connection, so it is built once per connection and cached.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { ClientCertDetails, ForwardClientCertDetails } from '../../../config/src/index.js';
import { localUriSans, parseSans } from '../../../certs/src/index.js';
import type { HeaderMap } from './headers.js';

const XFCC = 'x-forwarded-client-cert';

/** Envoy's URL encoding of PEM in XFCC (connection_info_impl.cc): only these five characters. */
export function urlEncodePem(pem: string): string {
  return pem.replace(/[\n +/=]/g, (c) => (c === '\n' ? '%0A' : c === ' ' ? '%20' : c === '+' ? '%2B' : c === '/' ? '%2F' : '%3D'));
}

/**
 * RFC 2253 subject ("CN=leaf,O=org"), as Envoy prints it with XN_FLAG_RFC2253. Node prints
 * one RDN per line in certificate order, values already escaped per RFC 2253.
 */
export function rfc2253Subject(nodeSubject: string): string {
  if (nodeSubject === '') return '';
  return nodeSubject.split('\n').reverse().join(',');
}

/** What a TLS connection offers for XFCC; undefined when the peer presented no certificate. */
export interface PeerCertInfo {
  readonly localUriSans: readonly string[];
  readonly hash: string;
  readonly leaf: X509Certificate;
  /** The peer's chain above the leaf as node knows it, self-signed roots excluded. */
  readonly issuers: readonly X509Certificate[];
}

/**
 * The TLS peer of a connection, read once; a plaintext socket or no client cert gives
 * undefined. Each certificate object node builds costs ~100 µs (OpenSSL 3), so only what
 * the element needs is read: our URI SANs from the TLS provider's tag (certs/) when it set
 * one, the peer's chain only for `Chain` (Istio asks for Subject, URI and DNS).
 */
export function peerCertInfo(socket: TLSSocket, withChain = true): PeerCertInfo | undefined {
  if (typeof socket.getPeerX509Certificate !== 'function') return undefined;
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return undefined;
  const tagged = localUriSans(socket);
  const local = tagged === undefined ? socket.getX509Certificate() : undefined;
  const issuers: X509Certificate[] = [];
  if (withChain) collectIssuers(socket, issuers);
  return {
    localUriSans: tagged ?? (local ? parseSans(local.subjectAltName).uri : []),
    hash: leaf.fingerprint256.replace(/:/g, '').toLowerCase(),
    leaf,
    issuers,
  };
}

function collectIssuers(socket: TLSSocket, issuers: X509Certificate[]): void {
  // getPeerCertificate(true) links the chain the peer sent (plus a root from our trust
  // store, which Envoy's SSL_get_peer_full_cert_chain would not include: roots are skipped).
  let c = socket.getPeerCertificate(true) as unknown as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  const seen = new Set<unknown>();
  while (c && c.issuerCertificate && c.issuerCertificate !== c && !seen.has(c)) {
    seen.add(c);
    c = c.issuerCertificate as typeof c;
    if (!c?.raw) break;
    const x = new X509Certificate(c.raw);
    if (x.checkIssued(x)) break;
    issuers.push(x);
  }
}

/** This hop's XFCC element for a peer, in Envoy's field order. */
export function xfccElement(info: PeerCertInfo, d: ClientCertDetails): string {
  const parts: string[] = [];
  for (const by of info.localUriSans) parts.push(`By=${by}`);
  if (info.hash !== '') parts.push(`Hash=${info.hash}`);
  if (d.cert) parts.push(`Cert="${urlEncodePem(info.leaf.toString())}"`);
  if (d.chain) parts.push(`Chain="${[info.leaf, ...info.issuers].map((x) => urlEncodePem(x.toString())).join('')}"`);
  // Subject and URI keys appear even when empty (Envoy).
  if (d.subject) parts.push(`Subject="${rfc2253Subject(info.leaf.subject)}"`);
  if (d.uri) {
    const uris = parseSans(info.leaf.subjectAltName).uri;
    if (uris.length === 0) parts.push('URI=');
    for (const u of uris) parts.push(`URI=${u}`);
  }
  if (d.dns) for (const n of parseSans(info.leaf.subjectAltName).dns) parts.push(`DNS=${n}`);
  return parts.join(';');
}

/** Per connection: the element (or null for no client certificate), keyed by the HCM's details. */
const cache = new WeakMap<object, { readonly details: ClientCertDetails; readonly element: string | null }>();

/**
 * Applies forward_client_cert_details to a request's headers. `conn` identifies the
 * connection (the TLS socket, or the HTTP/2 session) and `tls` is its TLS socket.
 * Cost: SANITIZE is one property check; the set modes a WeakMap lookup per request
 * (the element is built on a connection's first request).
 */
export function applyXfcc(headers: HeaderMap, mode: ForwardClientCertDetails, details: ClientCertDetails, conn: object, tls: TLSSocket | undefined): void {
  if (mode === 'ALWAYS_FORWARD_ONLY') return;
  if (mode === 'SANITIZE') {
    if (headers[XFCC] !== undefined) headers[XFCC] = undefined;
    return;
  }
  let hit = cache.get(conn);
  if (hit === undefined || hit.details !== details) {
    const info = tls && (tls as { encrypted?: boolean }).encrypted ? peerCertInfo(tls, details.chain === true) : undefined;
    hit = { details, element: info ? xfccElement(info, details) : null };
    cache.set(conn, hit);
  }
  if (hit.element === null) {
    // Not mutual TLS: the header cannot have come from a verified peer.
    if (headers[XFCC] !== undefined) headers[XFCC] = undefined;
    return;
  }
  if (mode === 'FORWARD_ONLY') return;
  if (mode === 'SANITIZE_SET') {
    headers[XFCC] = hit.element;
    return;
  }
  // APPEND_FORWARD
  const cur = headers[XFCC];
  const prev = Array.isArray(cur) ? cur.join(',') : cur;
  headers[XFCC] = prev === undefined || prev === '' ? hit.element : `${prev},${hit.element}`;
}
