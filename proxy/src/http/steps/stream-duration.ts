import type { ForwardAction } from '../../../../config/src/index.js';

/** grpc-timeout (gRPC over HTTP/2: 1-8 digits and a unit H M S m u n) in ms; undefined when absent or malformed. */
export function parseGrpcTimeout(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  switch (m[2]) {
    case 'H': return n * 3_600_000;
    case 'M': return n * 60_000;
    case 'S': return n * 1000;
    case 'm': return n;
    case 'u': return Math.ceil(n / 1000);
    default: return Math.ceil(n / 1_000_000);
  }
}

/**
 * A routed request's max stream duration in ms, as Envoy's refreshDurationTimeout picks it:
 * the grpc-timeout header when the route sets grpc_timeout_header_max (capped by it unless
 * 0), else the route's max_stream_duration (0 disables), else the HCM's. Undefined: none.
 */
export function streamDurationTimeout(action: ForwardAction, hcmMax: number | undefined, grpcTimeoutHeader: string | undefined): number | undefined {
  const grpc = action.grpcTimeoutHeaderMax !== undefined ? parseGrpcTimeout(grpcTimeoutHeader) : undefined;
  if (grpc === undefined) {
    if (action.maxStreamDuration !== undefined) return action.maxStreamDuration > 0 ? action.maxStreamDuration : undefined;
    return hcmMax !== undefined && hcmMax > 0 ? hcmMax : undefined;
  }
  const cap = action.grpcTimeoutHeaderMax!;
  return cap > 0 && grpc > cap ? cap : grpc;
}
