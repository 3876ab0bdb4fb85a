/**
 * A decoded Cluster that sets none of circuit_breakers, health_checks,
 * transport_socket_matches, ring_hash/maglev/least_request_lb_config shares one frozen
 * copy of each default with every such cluster (thousands per proxy); one that sets them
 * gets its own values, defaults filled in as before.
 */
import t from 'tap';
import { Diagnostics, decodeCluster } from '../src/index.js';

const decode = (extra: Record<string, unknown> = {}) => {
  const diag = new Diagnostics();
  const c = decodeCluster({ name: 'c', type: 'STATIC', connect_timeout: '1s', ...extra }, diag, 'c');
  if (c === undefined) throw new Error(JSON.stringify(diag.errors));
  return c;
};

t.test('defaults are shared, frozen, and what Envoy defaults to', async (t) => {
  const a = decode();
  const b = decode();
  for (const k of ['circuitBreakers', 'healthChecks', 'transportSocketMatches', 'ringHash', 'maglev', 'leastRequest'] as const) {
    t.equal(a[k], b[k], `${k} shared`);
    t.ok(Object.isFrozen(a[k]), `${k} frozen`);
  }
  for (const th of a.circuitBreakers) t.ok(Object.isFrozen(th), `${th.priority} thresholds frozen`);
  t.same(a.circuitBreakers, [
    { priority: 'DEFAULT', maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
    { priority: 'HIGH', maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
  ]);
  t.same(a.ringHash, { minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024 });
  t.same(a.maglev, { tableSize: 65537 });
  t.same(a.leastRequest, { choiceCount: 2 });
  t.same([a.healthChecks, a.transportSocketMatches], [[], []]);
  t.throws(() => (a.circuitBreakers as unknown as unknown[]).push({}), 'a write to a shared default fails loudly');
});

t.test('what a cluster sets is its own, the missing priority filled with the default', async (t) => {
  const c = decode({
    circuit_breakers: { thresholds: [{ max_connections: 7, retry_budget: { budget_percent: { value: 30 } } }] },
    ring_hash_lb_config: { minimum_ring_size: 64 },
    maglev_lb_config: { table_size: 7 },
    least_request_lb_config: { choice_count: 3 },
  });
  t.same(c.circuitBreakers, [
    { priority: 'DEFAULT', maxConnections: 7, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3, retryBudget: { budgetPercent: 30, minRetryConcurrency: 3 } },
    { priority: 'HIGH', maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
  ]);
  t.same(c.ringHash, { minimumRingSize: 64, maximumRingSize: 8 * 1024 * 1024 });
  t.same(c.maglev, { tableSize: 7 });
  t.same(c.leastRequest, { choiceCount: 3 });
  t.not(c.circuitBreakers, decode().circuitBreakers);
});
