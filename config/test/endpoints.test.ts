import t from 'tap';
import fc from 'fast-check';
import {
  applyEndpointDiff,
  diffEndpoints,
  endpointKey,
  flattenLoadAssignment,
  healthFromEnvoy,
  sameEndpoint,
} from '../src/endpoints.js';
import type { ClusterLoadAssignment, Endpoint, EnvoyHealthStatus } from '../src/model.js';

t.test('endpointKey brackets IPv6 only', async (t) => {
  t.equal(endpointKey('1.2.3.4', 80), '1.2.3.4:80');
  t.equal(endpointKey('::1', 80), '[::1]:80');
  t.equal(endpointKey('fe80::1:2', 443), '[fe80::1:2]:443');
  t.equal(endpointKey('backend.local', 8080), 'backend.local:8080');
});

t.test('healthFromEnvoy', async (t) => {
  const cases: [EnvoyHealthStatus, Endpoint['health']][] = [
    ['HEALTHY', 'healthy'],
    ['UNKNOWN', 'healthy'],
    ['DEGRADED', 'degraded'],
    ['UNHEALTHY', 'unhealthy'],
    ['TIMEOUT', 'unhealthy'],
    ['DRAINING', 'draining'],
  ];
  for (const [s, h] of cases) t.equal(healthFromEnvoy(s), h, s);
});

const sa = (address: string, port: number) => ({ address, port, protocol: 'TCP' as const });

t.test('flattenLoadAssignment', async (t) => {
  const cla: ClusterLoadAssignment = {
    clusterName: 'c',
    overprovisioningFactor: 140,
    endpoints: [
      {
        locality: { region: 'eu', zone: 'eu-1a', subZone: '' },
        priority: 0,
        loadBalancingWeight: 3,
        lbEndpoints: [
          { address: sa('10.0.0.1', 80), hostname: 'a', healthStatus: 'HEALTHY', loadBalancingWeight: 2, metadata: {} },
          { address: sa('::1', 80), hostname: '', healthStatus: 'DRAINING', loadBalancingWeight: 1, metadata: {} },
        ],
      },
      {
        locality: { region: 'us', zone: 'us-1b', subZone: 'rack7' },
        priority: 1,
        lbEndpoints: [
          { address: sa('10.0.0.2', 81), hostname: '', healthStatus: 'TIMEOUT', loadBalancingWeight: 1, metadata: {} },
          // duplicate key: first occurrence wins
          { address: sa('10.0.0.1', 80), hostname: 'dup', healthStatus: 'UNHEALTHY', loadBalancingWeight: 9, metadata: {} },
        ],
      },
    ],
  };
  const eps = flattenLoadAssignment(cla);
  t.same(eps, [
    { key: '10.0.0.1:80', address: '10.0.0.1', port: 80, hostname: 'a', weight: 2, priority: 0, locality: 'eu/eu-1a/', localityWeight: 3, health: 'healthy' },
    { key: '[::1]:80', address: '::1', port: 80, hostname: '', weight: 1, priority: 0, locality: 'eu/eu-1a/', localityWeight: 3, health: 'draining' },
    { key: '10.0.0.2:81', address: '10.0.0.2', port: 81, hostname: '', weight: 1, priority: 1, locality: 'us/us-1b/rack7', localityWeight: 1, health: 'unhealthy' },
  ]);
});

// ---------------------------------------------------------------- properties

const arbEndpointFor = (key: number): fc.Arbitrary<Endpoint> =>
  fc
    .record({
      weight: fc.integer({ min: 1, max: 3 }),
      priority: fc.integer({ min: 0, max: 2 }),
      locality: fc.constantFrom('a/b/c', 'x/y/z'),
      localityWeight: fc.integer({ min: 1, max: 2 }),
      health: fc.constantFrom<Endpoint['health']>('healthy', 'degraded', 'unhealthy', 'draining'),
      hostname: fc.constantFrom('', 'h'),
    })
    .map((r) => ({ key: `10.0.0.${key}:80`, address: `10.0.0.${key}`, port: 80, ...r }));

/** A list of endpoints with distinct keys drawn from a small key space (so prev/next overlap). */
const arbList = fc
  .uniqueArray(fc.integer({ min: 0, max: 30 }), { maxLength: 20 })
  .chain((keys) => (keys.length === 0 ? fc.constant([] as Endpoint[]) : fc.tuple(...keys.map(arbEndpointFor))));

const toMap = (l: readonly Endpoint[]) => new Map(l.map((e) => [e.key, e] as const));

t.test('applying diffEndpoints(prev, next) to prev yields next', async (t) => {
  fc.assert(
    fc.property(arbList, arbList, (prev, next) => {
      const d = diffEndpoints('c', toMap(prev), next);
      const got = applyEndpointDiff(toMap(prev), d);
      const want = toMap(next);
      if (got.size !== want.size) return false;
      for (const [k, v] of want) if (!sameEndpoint(got.get(k)!, v)) return false;
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

t.test('diff is minimal and its parts are disjoint', async (t) => {
  fc.assert(
    fc.property(arbList, arbList, (prev, next) => {
      const pm = toMap(prev);
      const nm = toMap(next);
      const d = diffEndpoints('c', pm, next);
      const keys = [...d.added.map((e) => e.key), ...d.removed, ...d.changed.map((e) => e.key)];
      if (new Set(keys).size !== keys.length) return false;
      if (d.added.some((e) => pm.has(e.key))) return false;
      if (d.removed.some((k) => nm.has(k) || !pm.has(k))) return false;
      if (d.changed.some((e) => !pm.has(e.key) || sameEndpoint(pm.get(e.key)!, e))) return false;
      // every differing common key is reported as changed
      const changed = new Set(d.changed.map((e) => e.key));
      for (const e of next) if (pm.has(e.key) && !sameEndpoint(pm.get(e.key)!, e) && !changed.has(e.key)) return false;
      return d.cluster === 'c';
    }),
    { numRuns: 500 },
  );
  t.pass();
});

t.test('diff of a list against itself is empty; diffs compose', async (t) => {
  fc.assert(
    fc.property(arbList, arbList, arbList, (a, b, c) => {
      const self = diffEndpoints('c', toMap(a), a);
      if (self.added.length + self.removed.length + self.changed.length !== 0) return false;
      const viaB = applyEndpointDiff(applyEndpointDiff(toMap(a), diffEndpoints('c', toMap(a), b)), diffEndpoints('c', toMap(b), c));
      const direct = applyEndpointDiff(toMap(a), diffEndpoints('c', toMap(a), c));
      return viaB.size === direct.size && [...direct].every(([k, v]) => sameEndpoint(viaB.get(k)!, v));
    }),
    { numRuns: 300 },
  );
  t.pass();
});

t.test('duplicate keys in next: first occurrence wins', async (t) => {
  const a = { key: 'k:1', address: 'k', port: 1, hostname: '', weight: 1, priority: 0, locality: '', localityWeight: 1, health: 'healthy' as const };
  const d = diffEndpoints('c', new Map(), [a, { ...a, weight: 5 }]);
  t.same(d.added, [a]);
});
