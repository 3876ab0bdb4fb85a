import t from 'tap';
import fc from 'fast-check';
import { decodeRouteConfiguration, Diagnostics } from '../src/index.js';

// max_grpc_timeout / grpc_timeout_offset on routes and include_request_attempt_count on
// virtual hosts (istiod sets them on every route) decode without warnings.

t.test('route gRPC timeouts and the attempt-count flag decode as written', async () => {
  const dur = fc.tuple(fc.integer({ min: 0, max: 3600 }), fc.integer({ min: 0, max: 999 }));
  fc.assert(fc.property(fc.option(dur, { nil: undefined }), fc.option(dur, { nil: undefined }), fc.boolean(), (max, offset, count) => {
    const s = (d: [number, number]) => `${d[0]}.${String(d[1]).padStart(3, '0')}s`;
    const ms = (d: [number, number]) => d[0] * 1000 + d[1];
    const diag = new Diagnostics();
    const rc = decodeRouteConfiguration({
      name: 'r',
      virtual_hosts: [{
        name: 'v', domains: ['*'], include_request_attempt_count: count,
        routes: [{ match: { prefix: '/' }, route: { cluster: 'c', ...(max ? { max_grpc_timeout: s(max) } : {}), ...(offset ? { grpc_timeout_offset: s(offset) } : {}) } }],
      }],
    }, diag, 'r');
    const vh = rc?.virtualHosts[0];
    const a = vh?.routes[0]?.action;
    if (!a || a.kind !== 'route' || diag.warnings.length > 0 || diag.errors.length > 0) return false;
    return a.maxGrpcTimeout === (max ? ms(max) : undefined)
      && a.grpcTimeoutOffset === (offset && ms(offset) > 0 ? ms(offset) : undefined)
      && (vh.includeRequestAttemptCount ?? false) === count;
  }), { numRuns: 300 });
});
