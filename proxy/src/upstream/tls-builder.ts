/**
 * Upstream TLS material from an Envoy transport_socket (UpstreamTlsContext): what a
 * cluster's `transport_socket` and each `transport_socket_matches` entry become. One
 * function so that both go through the same decoder and SDS-backed provider.
 */
import { Diagnostics, formatProblem, type TypedExtension } from '../../../config/src/index.js';
import { checkTlsContextSources, decodeTransportSocket, UpstreamTlsProvider, type SecretStore, type TlsLogger, type UpstreamTlsContextSpec } from '../../../certs/src/index.js';

export interface UpstreamTlsBuilderOptions {
  readonly log?: TlsLogger;
  /** Called with each provider's TLS counters and a scope name ("cluster.<name>.<match>"). */
  readonly onStats?: (scope: string, stats: object) => void;
}

/** Throws a one-line Error naming the field when the transport socket is not an UpstreamTlsContext. */
export function upstreamTlsBuilder(secrets: SecretStore, opts: UpstreamTlsBuilderOptions = {}): (ext: TypedExtension, path: string) => UpstreamTlsProvider {
  return (ext, path) => {
    const diag = new Diagnostics();
    const spec = decodeTransportSocket(ext, diag, path);
    if (!spec || diag.errors.length > 0 || !checkTlsContextSources(spec, diag)) throw new Error(diag.errors.map(formatProblem).join('; ') || `${path}: unusable transport socket`);
    if (spec.kind !== 'upstream') throw new Error(`${path}: a cluster needs an UpstreamTlsContext`);
    const p = new UpstreamTlsProvider(spec as UpstreamTlsContextSpec, secrets, { name: path, ...(opts.log ? { log: opts.log } : {}) });
    opts.onStats?.(path, p.stats);
    return p;
  };
}
