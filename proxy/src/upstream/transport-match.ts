/**
 * transport_socket_matches: which transport socket (TLS material or plaintext) an
 * upstream host's connections use. Envoy's rule: the first match whose every `match`
 * field is present, with an equal value, in the endpoint's
 * `envoy.transport_socket_match` metadata; an endpoint without that metadata only
 * matches an empty `match`; nothing matching -> the cluster's `transport_socket`.
 * Istio labels mesh endpoints `tlsMode: istio` (mTLS) and leaves the rest plaintext.
 *
 * The choice depends on the endpoint only, so the cluster makes it once per host (when
 * the host is added or its endpoint changes), never per request.
 */
import type { Endpoint } from '../../../config/src/index.js';

/** Upstream TLS material: certs/ UpstreamTlsProvider satisfies this. */
export interface TlsSource {
  current(): { readonly version: number; readonly connect: object } | undefined;
}

export interface TransportChoice {
  /** The match's name, or "default" for the cluster's transport_socket. */
  readonly name: string;
  /** undefined = plaintext (raw_buffer). */
  readonly tls: TlsSource | undefined;
}

export interface CompiledTransportMatch {
  readonly match: Readonly<Record<string, unknown>>;
  readonly choice: TransportChoice;
}

export class TransportSelector {
  private readonly fallback: TransportChoice;

  /**
   * The selector for a cluster: clusters with no matches and no TLS (plaintext) all share
   * one (~110 bytes each otherwise, thousands of clusters). A choice is compared only
   * with the same cluster's earlier choices, so sharing one changes nothing.
   */
  static of(defaultTls: TlsSource | undefined, matches: readonly CompiledTransportMatch[]): TransportSelector {
    return defaultTls === undefined && matches.length === 0 ? PLAINTEXT : new TransportSelector(defaultTls, matches);
  }

  constructor(defaultTls: TlsSource | undefined, private readonly matches: readonly CompiledTransportMatch[] = NO_MATCHES) {
    this.fallback = { name: 'default', tls: defaultTls };
  }

  /** True when every host uses the cluster's transport socket (no matches configured). */
  get uniform(): boolean {
    return this.matches.length === 0;
  }

  get defaultChoice(): TransportChoice {
    return this.fallback;
  }

  select(e: Endpoint): TransportChoice {
    for (const m of this.matches) if (labelsMatch(m.match, e.transportSocketMatch)) return m.choice;
    return this.fallback;
  }
}

const NO_MATCHES: readonly CompiledTransportMatch[] = Object.freeze([]);
const PLAINTEXT = new TransportSelector(undefined);

/** Envoy's Metadata::metadataLabelMatch (without list-as-any): every label present and equal. */
export function labelsMatch(match: Readonly<Record<string, unknown>>, metadata: Readonly<Record<string, unknown>> | undefined): boolean {
  const keys = Object.keys(match);
  if (metadata === undefined) return keys.length === 0;
  for (const k of keys) {
    if (!Object.prototype.hasOwnProperty.call(metadata, k)) return false;
    if (!valueEqual(match[k], metadata[k])) return false;
  }
  return true;
}

/** google.protobuf.Value equality (ValueUtil::equal) over decoded JSON values. */
export function valueEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!valueEqual(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  for (const k of ak) if (!Object.prototype.hasOwnProperty.call(bo, k) || !valueEqual(ao[k], bo[k])) return false;
  return true;
}
