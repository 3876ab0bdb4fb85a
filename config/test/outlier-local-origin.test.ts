import t from 'tap';
import fc from 'fast-check';
import { decodeCluster, Diagnostics } from '../src/index.js';

// outlier_detection's local-origin fields (issue 17): split_external_local_origin_errors,
// consecutive_local_origin_failure, enforcing_consecutive_local_origin_failure decode as
// written, default as Envoy's, and an enforcing percentage outside 0..100 is an error.

function decode(od: Record<string, unknown>) {
  const diag = new Diagnostics();
  const c = decodeCluster({ name: 'c', type: 'STATIC', connect_timeout: '1s', outlier_detection: od }, diag, 'c');
  return { od: c?.outlierDetection, errors: diag.errors, warnings: diag.warnings };
}

t.test('local-origin outlier fields decode as written, with Envoy defaults', async (t) => {
  fc.assert(fc.property(fc.option(fc.boolean(), { nil: undefined }), fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }), fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }), (split, consecutive, enforcing) => {
    const { od, errors, warnings } = decode({
      ...(split !== undefined ? { split_external_local_origin_errors: split } : {}),
      ...(consecutive !== undefined ? { consecutive_local_origin_failure: consecutive } : {}),
      ...(enforcing !== undefined ? { enforcing_consecutive_local_origin_failure: enforcing } : {}),
    });
    return errors.length === 0 && warnings.length === 0 && od !== undefined
      && od.splitExternalLocalOriginErrors === (split ?? false)
      && od.consecutiveLocalOriginFailure === (consecutive ?? 5)
      && od.enforcingConsecutiveLocalOriginFailure === (enforcing ?? 100);
  }), { numRuns: 200 });
  t.pass();
});

t.test('an enforcing percentage above 100 is refused with its path', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 101, max: 100_000 }), (pct) => {
    const { errors } = decode({ enforcing_consecutive_local_origin_failure: pct });
    return errors.some((e) => e.path.endsWith('enforcing_consecutive_local_origin_failure'));
  }), { numRuns: 50 });
  t.pass();
});
