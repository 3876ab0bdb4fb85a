/**
 * Decoded (validated, immutable) forms of Envoy's TLS transport-socket and SDS Secret
 * protos. Everything downstream of the decoder works on these, never on proto3-JSON.
 */
import type { DataSource, StringMatcher } from '../../config/src/index.js';

/** DataSource is config/'s reference type (file, inline bytes, variable): decoders never read files. */
export type { DataSource, StringMatcher };

export interface TlsCertificateSpec {
  readonly certificateChain: DataSource;
  readonly privateKey: DataSource;
  readonly password?: DataSource;
}

/** 'ANY' comes from the deprecated match_subject_alt_names (matches URI, DNS, email and IP SANs). */
export type SanType = 'URI' | 'DNS' | 'EMAIL' | 'IP_ADDRESS' | 'ANY';

export interface SanMatcher {
  readonly sanType: SanType;
  readonly matcher: StringMatcher;
}

/** One SPIFFE trust domain and its bundle (SPIFFECertValidatorConfig.trust_domains[]). */
export interface TrustDomainSpec {
  readonly name: string;
  readonly bundle: DataSource;
}

export interface ValidationContextSpec {
  /** Anchors for any peer (and for SPIFFE peers whose trust domain has no bundle of its own). */
  readonly trustedCa?: DataSource;
  /** Per-trust-domain bundles: a SPIFFE peer must chain to its own domain's bundle. */
  readonly trustDomains: readonly TrustDomainSpec[];
  readonly sanMatchers: readonly SanMatcher[];
  /** verify_certificate_hash: lower-case hex SHA-256 of the leaf's DER, no colons. */
  readonly certificateHashes: readonly string[];
  readonly allowExpired: boolean;
  readonly acceptUntrusted: boolean;
  /** Longest chain of intermediates accepted between leaf and anchor. */
  readonly maxVerifyDepth: number;
}

export type CertificateSource =
  | { readonly kind: 'static'; readonly spec: TlsCertificateSpec }
  | { readonly kind: 'sds'; readonly name: string };

/**
 * Where the validation context comes from. With both set (combined_validation_context),
 * the SDS secret gives the trust material and `static` the matchers and flags.
 */
export interface ValidationSource {
  readonly static?: ValidationContextSpec;
  readonly sdsName?: string;
}

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

export interface TlsParams {
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /** OpenSSL names, in preference order; empty = Node's defaults. */
  readonly cipherSuites: readonly string[];
  readonly ecdhCurves: readonly string[];
  readonly signatureAlgorithms: readonly string[];
}

export interface CommonTlsContextSpec {
  readonly tlsParams: TlsParams;
  readonly certificates: readonly CertificateSource[];
  readonly validation?: ValidationSource;
  readonly alpnProtocols: readonly string[];
}

export interface DownstreamTlsContextSpec {
  readonly kind: 'downstream';
  readonly common: CommonTlsContextSpec;
  readonly requireClientCertificate: boolean;
  readonly sessionTimeoutMs?: number;
  readonly disableStatelessSessionResumption: boolean;
}

export interface UpstreamTlsContextSpec {
  readonly kind: 'upstream';
  readonly common: CommonTlsContextSpec;
  readonly sni?: string;
  /** Sessions kept for resumption per upstream (Envoy default 1). */
  readonly maxSessionKeys: number;
}

export type SecretSpec =
  | { readonly name: string; readonly kind: 'tls_certificate'; readonly tlsCertificate: TlsCertificateSpec }
  | { readonly name: string; readonly kind: 'validation_context'; readonly validationContext: ValidationContextSpec };

export const DOWNSTREAM_TLS_CONTEXT_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_CONTEXT_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SPIFFE_VALIDATOR_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig';
