/**
 * Envoy's response flags (%RESPONSE_FLAGS%) and the local replies that go with them.
 * One catalogue, so that a status, its body text, its flag and its stat agree.
 */
export const Flags = {
  NoRoute: 'NR',
  NoClusterFound: 'NC',
  NoHealthyUpstream: 'UH',
  UpstreamConnectionFailure: 'UF',
  UpstreamOverflow: 'UO',
  UpstreamRequestTimeout: 'UT',
  UpstreamConnectionTermination: 'UC',
  UpstreamRemoteReset: 'UR',
  UpstreamRetryLimitExceeded: 'URX',
  UpstreamProtocolError: 'UPE',
  DownstreamConnectionTermination: 'DC',
  DownstreamProtocolError: 'DPE',
  LocalReset: 'LR',
  StreamIdleTimeout: 'SI',
  DurationTimeout: 'DT',
  Overload: 'OL',
} as const;

export type Flag = (typeof Flags)[keyof typeof Flags];

export interface LocalReplySpec {
  readonly status: number;
  readonly body: string;
  readonly details: string;
}

export const LocalReplies = {
  noRoute: { status: 404, body: '', details: 'route_not_found' },
  noCluster: { status: 503, body: '', details: 'cluster_not_found' },
  noHealthyUpstream: { status: 503, body: 'no healthy upstream', details: 'no_healthy_upstream' },
  connectFailure: { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure', details: 'upstream_reset_before_response_started{connection_failure}' },
  reset: { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', details: 'upstream_reset_before_response_started{connection_termination}' },
  protocolError: { status: 502, body: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error', details: 'upstream_reset_before_response_started{protocol_error}' },
  overflow: { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', details: 'upstream_reset_before_response_started{overflow}' },
  timeout: { status: 504, body: 'upstream request timeout', details: 'upstream_response_timeout' },
  badRequest: { status: 400, body: 'Bad Request', details: 'http1.codec_error' },
  missingHost: { status: 400, body: 'missing host header', details: 'missing_host_header' },
  draining: { status: 503, body: 'server is draining', details: 'draining' },
} as const satisfies Record<string, LocalReplySpec>;
