import t from 'tap';
import fc from 'fast-check';
import type { ForwardAction } from '../../../config/src/index.js';
import { parseGrpcTimeout, streamDurationTimeout } from '../../src/http/steps/stream-duration.js';

const action = (x: { maxStreamDuration?: number; grpcTimeoutHeaderMax?: number }): ForwardAction => x as unknown as ForwardAction;

t.test('streamDurationTimeout follows Envoy refreshDurationTimeout', async (t) => {
  t.equal(streamDurationTimeout(action({}), 5000, undefined), 5000, "the HCM's when the route says nothing");
  t.equal(streamDurationTimeout(action({}), 0, undefined), undefined, 'HCM 0: none');
  t.equal(streamDurationTimeout(action({ maxStreamDuration: 300 }), 5000, undefined), 300, "the route's wins");
  t.equal(streamDurationTimeout(action({ maxStreamDuration: 0 }), 5000, undefined), undefined, 'route 0 disables');
  t.equal(streamDurationTimeout(action({ grpcTimeoutHeaderMax: 1000 }), 5000, '200m'), 200, 'grpc-timeout under the cap');
  t.equal(streamDurationTimeout(action({ grpcTimeoutHeaderMax: 1000 }), 5000, '20S'), 1000, 'capped');
  t.equal(streamDurationTimeout(action({ grpcTimeoutHeaderMax: 0 }), 5000, '20S'), 20000, 'cap 0: uncapped');
  t.equal(streamDurationTimeout(action({ grpcTimeoutHeaderMax: 1000 }), 5000, 'bogus'), 5000, 'malformed header: as if absent');
  t.equal(streamDurationTimeout(action({}), 5000, '1m'), 5000, 'grpc-timeout ignored without grpc_timeout_header_max');
});

t.test('parseGrpcTimeout: well-formed values in ms, anything else undefined', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 99_999_999 }), fc.constantFrom('H', 'M', 'S', 'm', 'u', 'n'), (n, u) => {
    const ms = parseGrpcTimeout(`${n}${u}`);
    const scale: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
    return ms !== undefined && ms === Math.ceil(n * scale[u]! - 1e-9) || (ms !== undefined && Math.abs(ms - n * scale[u]!) < 1);
  }));
  fc.assert(fc.property(fc.string(), (s) => {
    const ms = parseGrpcTimeout(s);
    return ms === undefined || /^\d{1,8}[HMSmun]$/.test(s);
  }));
});
