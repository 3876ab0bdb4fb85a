import t from 'tap';
import fc from 'fast-check';
import { backoffDelay } from '../src/backoff.js';
import { collectionOf, nameMatches } from '../src/resource-type.js';

t.test('backoff grows exponentially, is capped, and jittered within [10%, 100%] of the step', async (t) => {
  const p = { baseMs: 100, maxMs: 5000 };
  t.equal(backoffDelay(p, 0, () => 1), 100);
  t.equal(backoffDelay(p, 3, () => 1), 800);
  t.equal(backoffDelay(p, 40, () => 1), 5000);
  t.equal(backoffDelay(p, 3, () => 0), 80);
  fc.assert(
    fc.property(fc.nat(100), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
      const d = backoffDelay(p, attempt, () => r);
      const step = Math.min(5000, 100 * 2 ** attempt);
      return d >= Math.floor(step * 0.1) && d <= step;
    }),
  );
});

t.test('xdstp collections', async (t) => {
  const c = 'xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/web/a/*';
  t.ok(nameMatches(c, 'xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/web/a/10.0.0.1:80'));
  t.notOk(nameMatches(c, 'xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/web/b/10.0.0.1:80'));
  t.notOk(nameMatches(c, 'xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/web/a/'));
  t.ok(nameMatches('plain', 'plain'));
  t.notOk(nameMatches('plain', 'plainer'));
  t.equal(collectionOf('xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/web/a/10.0.0.1:80'), c);
});
