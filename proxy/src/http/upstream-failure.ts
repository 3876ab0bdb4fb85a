import type { LocalOriginFailure } from '../cluster/outlier.js';
import { Flags, LocalReplies, type Flag, type LocalReplySpec } from './response-flags.js';

/**
 * Why an upstream request failed, as one value: what the router retries on, what outlier
 * detection is told, and which local reply and response flag the client gets. Every
 * failure is one of the frozen constants below, so reporting one allocates nothing.
 */
export type FailureSource = 'downstream' | 'upstream' | 'local';

export type FailureCode =
  | 'connect_failure'
  | 'connection_termination'
  | 'protocol_error'
  | 'refused_stream'
  | 'per_try_timeout'
  | 'route_timeout'
  | 'overflow'
  | 'no_healthy_upstream'
  | 'request_rejected';

export interface UpstreamFailure {
  readonly code: FailureCode;
  /** Who caused it: the upstream (its connection or answer), this proxy (limits, timers), the downstream. */
  readonly source: FailureSource;
  /** Whether a retry policy may replay the request after it (which retry_on applies is the retry state's). */
  readonly retryable: boolean;
  /** %RESPONSE_FLAGS% when this failure ends the request. */
  readonly responseFlag: Flag;
  /** %RESPONSE_CODE_DETAILS% and the local reply sent when no response has started. */
  readonly reply: LocalReplySpec;
  readonly details: string;
  /** What outlier detection is told about the host (Envoy's LocalOriginConnectFailed / LocalOriginTimeout; undefined: nothing, the host was never reached). */
  readonly outlier: LocalOriginFailure | undefined;
}

function failure(code: FailureCode, source: FailureSource, retryable: boolean, responseFlag: Flag, reply: LocalReplySpec, outlier: LocalOriginFailure | undefined): UpstreamFailure {
  return Object.freeze({ code, source, retryable, responseFlag, reply, details: reply.details, outlier });
}

export const Failures = {
  connectFailure: failure('connect_failure', 'upstream', true, Flags.UpstreamConnectionFailure, LocalReplies.connectFailure, 'connect_failed'),
  connectionTermination: failure('connection_termination', 'upstream', true, Flags.UpstreamConnectionTermination, LocalReplies.reset, 'connect_failed'),
  protocolError: failure('protocol_error', 'upstream', true, Flags.UpstreamProtocolError, LocalReplies.protocolError, 'connect_failed'),
  refusedStream: failure('refused_stream', 'upstream', true, Flags.UpstreamConnectionTermination, LocalReplies.reset, 'connect_failed'),
  perTryTimeout: failure('per_try_timeout', 'local', true, Flags.UpstreamRequestTimeout, LocalReplies.timeout, 'timeout'),
  routeTimeout: failure('route_timeout', 'local', false, Flags.UpstreamRequestTimeout, LocalReplies.timeout, 'timeout'),
  overflow: failure('overflow', 'local', false, Flags.UpstreamOverflow, LocalReplies.overflow, undefined),
  noHealthyUpstream: failure('no_healthy_upstream', 'local', false, Flags.NoHealthyUpstream, LocalReplies.noHealthyUpstream, undefined),
  /** undici refused the request synchronously (e.g. a header value it will not send). */
  requestRejected: failure('request_rejected', 'local', false, Flags.UpstreamProtocolError, LocalReplies.protocolError, undefined),
} as const satisfies Record<string, UpstreamFailure>;

/** Errors that mean no connection was made: the request never left, so any retry_on connect-failure may replay it. */
const CONNECT_ERRORS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET_BEFORE_CONNECT']);

/** undici's (and node's) error for one attempt, mapped once, here. */
export function failureFromError(err: unknown): UpstreamFailure {
  const code = (err as { code?: unknown } | null)?.code;
  const c = typeof code === 'string' ? code : '';
  // undici's llhttp refusing a response (bad framing, bad header bytes): 502, never passed on.
  if ((err as Error | null)?.name === 'HTTPParserError') return Failures.protocolError;
  if (CONNECT_ERRORS.has(c)) return Failures.connectFailure;
  if (c === 'UND_ERR_INFO' || c.startsWith('HPE_') || c === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return Failures.protocolError;
  if (c === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(String((err as Error).message))) return Failures.refusedStream;
  // A socket error (UND_ERR_SOCKET, ECONNRESET) means a connection existed and the request
  // may have been sent: a reset, never a connect failure, so that retry_on connect-failure
  // cannot replay a non-idempotent request the upstream may have acted on.
  return Failures.connectionTermination;
}
