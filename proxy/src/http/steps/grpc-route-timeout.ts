import type { ForwardAction } from '../../../../config/src/index.js';
import type { HeaderMap } from '../headers.js';
import { parseGrpcTimeout } from './stream-duration.js';

/** gRPC requests as Envoy tells them: content-type application/grpc, or application/grpc+<codec>. */
function isGrpc(headers: HeaderMap): boolean {
  const ct = headers['content-type'];
  const v = Array.isArray(ct) ? ct[0] : ct;
  return v !== undefined && (v === 'application/grpc' || v.startsWith('application/grpc+') || v.startsWith('application/grpc;'));
}

/**
 * The route action a request runs with under the deprecated `max_grpc_timeout` (istiod
 * still sets it): for a gRPC request the grpc-timeout header (less grpc_timeout_offset,
 * when that leaves something) replaces the route's `timeout`, capped by max_grpc_timeout
 * unless that is 0; a gRPC request without the header has no route timeout, or the cap.
 * Other requests, and routes without max_grpc_timeout, keep the action as it is.
 */
export function grpcRouteTimeout(action: ForwardAction, headers: HeaderMap): ForwardAction {
  const max = action.maxGrpcTimeout;
  if (max === undefined || !isGrpc(headers)) return action;
  const h = headers['grpc-timeout'];
  let t = parseGrpcTimeout(Array.isArray(h) ? h[0] : h) ?? 0;
  const offset = action.grpcTimeoutOffset ?? 0;
  if (t > 0 && offset > 0 && t > offset) t -= offset;
  if (max > 0 && (t === 0 || t > max)) t = max;
  return t === action.timeout ? action : { ...action, timeout: t };
}
