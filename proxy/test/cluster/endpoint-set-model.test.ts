/**
 * Model-based test: random sequences of diffs and ejections applied to an EndpointSet
 * must agree with a plain Map model (applyEndpointDiff), for every policy.
 */
import t from 'tap';
import fc from 'fast-check';
import { applyEndpointDiff, diffEndpoints } from '../../../config/src/index.js';
import type { Endpoint } from '../../../config/src/index.js';
import { EndpointSet, type Host } from '../../src/cluster/endpoint-set.js';
import { ep, opts, POLICIES } from './helpers.js';

const arbEp = (i: number) =>
  fc
    .record({
      weight: fc.integer({ min: 1, max: 4 }),
      priority: fc.integer({ min: 0, max: 2 }),
      locality: fc.constantFrom('a//', 'b//'),
      localityWeight: fc.integer({ min: 1, max: 3 }),
      health: fc.constantFrom<Endpoint['health']>('healthy', 'healthy', 'degraded', 'unhealthy', 'draining'),
    })
    .map((r) => ep(i, r));

const arbList = fc
  .uniqueArray(fc.integer({ min: 0, max: 25 }), { maxLength: 18 })
  .chain((ks) => (ks.length === 0 ? fc.constant([] as Endpoint[]) : fc.tuple(...ks.map(arbEp))));

type Step = { kind: 'update'; next: Endpoint[] } | { kind: 'eject'; idx: number; ok: boolean };
const arbStep: fc.Arbitrary<Step> = fc.oneof(
  arbList.map((next) => ({ kind: 'update' as const, next })),
  fc.record({ kind: fc.constant('eject' as const), idx: fc.nat(30), ok: fc.boolean() }),
);

for (const policy of POLICIES) {
  t.test(`${policy}: set agrees with the map model under random diffs`, async (t) => {
    fc.assert(
      fc.property(arbList, fc.array(arbStep, { maxLength: 12 }), fc.boolean(), (initial, steps, lw) => {
        const s = new EndpointSet('c', opts(policy, { localityWeightedLb: lw }), initial);
        let model = new Map(initial.map((e) => [e.key, e] as const));
        const ejected = new Set<string>();
        const identity = new Map<string, Host>();
        for (const h of s.hosts()) identity.set(h.key, h);
        for (const step of steps) {
          if (step.kind === 'update') {
            const d = diffEndpoints('c', model, step.next);
            const r = s.apply(d);
            model = applyEndpointDiff(model, d);
            for (const h of r.removed) {
              if (!h.removed) return false;
              identity.delete(h.key);
              ejected.delete(h.key);
            }
            for (const h of r.added) identity.set(h.key, h);
          } else {
            const keys = [...model.keys()];
            if (keys.length === 0) continue;
            const key = keys[step.idx % keys.length]!;
            s.setHostAvailability(s.get(key)!, step.ok);
            if (step.ok) ejected.delete(key);
            else ejected.add(key);
          }
          // membership and identity
          if (s.size !== model.size) return false;
          for (const [k, e] of model) {
            const h = s.get(k);
            if (h === undefined || h !== identity.get(k) || h.endpoint !== e) return false;
            if (h.ejected !== ejected.has(k)) return false;
          }
          // counts
          let healthy = 0;
          let degraded = 0;
          for (const [k, e] of model) {
            if (ejected.has(k)) continue;
            if (e.health === 'healthy') healthy++;
            if (e.health === 'degraded') degraded++;
          }
          const st = s.stats();
          if (st.healthy !== healthy || st.degraded !== degraded || st.total !== model.size) return false;
          // picks: never draining; outside panic, never unhealthy or ejected
          if (policy === 'RING_HASH' || policy === 'MAGLEV') s.flushRebuilds();
          const serving = [...model.values()].some((e) => e.health !== 'draining');
          for (let i = 0; i < 20; i++) {
            const h = s.pick({ hash: i * 7919 });
            if (h === undefined) {
              if (serving && opts(policy).healthyPanicThreshold > 0) return false;
              continue;
            }
            if (h.removed || s.get(h.key) !== h) return false;
            if (h.endpoint.health === 'draining') return false;
            if (!st.panic && (h.ejected || h.endpoint.health === 'unhealthy')) return false;
          }
        }
        return true;
      }),
      { numRuns: 150 },
    );
    t.pass();
  });
}
