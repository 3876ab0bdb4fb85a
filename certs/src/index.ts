/**
 * certs/ public API: Envoy TLS config decoding, secrets (static, SDS, files), downstream
 * and upstream mTLS providers with cached SPIFFE-aware peer verification, and a dev CA.
 */
export * from './types.js';
export {
  decodeDownstreamTlsContext,
  decodeUpstreamTlsContext,
  decodeSecret,
  decodeSecretExtension,
  decodeTransportSocket,
  DEFAULT_TLS_PARAMS,
} from './decode.js';
export { checkTlsContextSources, checkSecretSources } from './resolve.js';
export { SecretStore, type SecretStoreOptions, type Unsubscribe } from './secret-store.js';
export { DownstreamTlsProvider, type DownstreamProviderOptions } from './downstream.js';
export { UpstreamTlsProvider, type UpstreamConnectOptions, type UpstreamSnapshot, type UpstreamProviderOptions } from './upstream.js';
export { PeerVerifier, type VerifierOptions, type VerifyResult, type TrustPolicy } from './verify.js';
export { peerIdentity, identityOf, localUriSans, type PeerIdentity } from './identity.js';
export { parseSpiffeId, parseSans } from './match.js';
export { createTlsStats, REASON_TEXT, type TlsStats, type FailReason, type TlsLogger } from './stats.js';
export { mintRoot, issueWorkload, asIssuer, type CaHandle, type MintedCert, type MintRootOptions, type IssueOptions, type KeyAlgorithm } from './devca.js';
export { runCertsCommand, type CliIo } from './cli.js';
