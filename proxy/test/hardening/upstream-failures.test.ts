import t from 'tap';
import * as net from 'node:net';
import { bootstrapYaml, get, refusedHost, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';
import { until } from '../../../test-support/wait.js';
import { OutlierDetector } from '../../src/cluster/outlier.js';
import { Counter, Gauge } from '../../src/stats/stats.js';
import type { Host } from '../../src/cluster/endpoint-set.js';

const vhosts = (routeExtra = '') => `
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: up${routeExtra} }`;

function stat(proxy: { server: { stats: { snapshot(): [string, number][] } } }, name: string): number {
  return proxy.server.stats.snapshot().find(([k]) => k === name)?.[1] ?? 0;
}

async function spread(port: number, n: number, path = '/'): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await get(port, path);
    const k = `${r.status} ${r.headers['x-upstream'] ?? ''}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

t.test('active HTTP health checks: a failing host leaves the LB and comes back', async (t) => {
  let aHealthy = true;
  const a = await startUpstream(t, 'a', (req, res) => {
    if (req.url === '/healthz') res.writeHead(aHealthy ? 200 : 503).end();
    else res.writeHead(200, { 'x-upstream': 'a' }).end('a');
  });
  const b = await startUpstream(t, 'b', (req, res) => res.writeHead(200, { 'x-upstream': 'b' }).end('b'));
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts(), staticCluster('up', [a.port, b.port], `
    health_checks:
    - timeout: 0.2s
      interval: 0.1s
      no_traffic_interval: 0.1s
      unhealthy_threshold: 2
      healthy_threshold: 2
      http_health_check: { path: /healthz }`)));
  const port = proxy.port();
  await until('both hosts to serve while healthy', async () => Object.keys(await spread(port, 4)).length === 2);
  t.ok(a.requests.some((r) => r.url === '/healthz' && r.headers['user-agent'] === 'Envoy/HC'), 'probes carry Envoy/HC');
  aHealthy = false;
  await until('a marked unhealthy', () => stat(proxy, 'cluster.up.membership_healthy') === 1);
  t.same(await spread(port, 10), { '200 b': 10 }, 'only b serves');
  // A non-expected status fails the host at once (Envoy); network failures need unhealthy_threshold.
  t.ok(stat(proxy, 'cluster.up.health_check.failure') >= 1);
  aHealthy = true;
  await until('a healthy again after healthy_threshold successes', () => stat(proxy, 'cluster.up.membership_healthy') === 2);
  t.equal(Object.keys(await spread(port, 10)).length, 2, 'a serves again');
});

t.test('TCP health check and the panic threshold', async (t) => {
  const b = await startUpstream(t, 'b', (_req, res) => res.writeHead(200, { 'x-upstream': 'b' }).end('b'));
  // An address with nothing listening, held so for the whole test: TCP connect fails.
  const dead = await refusedHost(t);
  const hc = `
    health_checks:
    - timeout: 0.2s
      interval: 0.1s
      no_traffic_interval: 0.1s
      unhealthy_threshold: 1
      healthy_threshold: 1
      tcp_health_check: {}`;
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts(), staticCluster('up', [dead, b.port], hc)));
  await until('the dead host to be marked unhealthy', () => stat(proxy, 'cluster.up.membership_healthy') === 1, { state: () => stat(proxy, 'cluster.up.membership_healthy') });
  t.same(await spread(proxy.port(), 6), { '200 b': 6 }, 'no request goes to the dead host');

  // Same hosts with healthy_panic_threshold 60: 50% healthy is panic, traffic spreads to all.
  const panic = await startProxyYaml(t, bootstrapYaml(vhosts(), staticCluster('up', [dead, b.port], `${hc}
    common_lb_config: { healthy_panic_threshold: { value: 60 } }`)));
  await until('the dead host to be marked unhealthy (panic proxy)', () => stat(panic, 'cluster.up.membership_healthy') === 1);
  const s = await spread(panic.port(), 20);
  t.ok((s['503 '] ?? 0) > 0 && (s['200 b'] ?? 0) > 0, `in panic the unhealthy host gets traffic too (${JSON.stringify(s)})`);
});

t.test('outlier detection: consecutive 5xx ejects, the host returns after the ejection time', async (t) => {
  let aFails = true;
  const a = await startUpstream(t, 'a', (_req, res) => res.writeHead(aFails ? 500 : 200, { 'x-upstream': 'a' }).end('a'));
  const b = await startUpstream(t, 'b', (_req, res) => res.writeHead(200, { 'x-upstream': 'b' }).end('b'));
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts(), staticCluster('up', [a.port, b.port], `
    outlier_detection:
      consecutive_5xx: 3
      interval: 0.1s
      base_ejection_time: 0.6s
      max_ejection_percent: 50`)));
  const port = proxy.port();
  await spread(port, 8);
  t.equal(stat(proxy, 'cluster.up.outlier_detection.ejections_enforced_consecutive_5xx'), 1, 'ejected once');
  t.equal(stat(proxy, 'cluster.up.outlier_detection.ejections_active'), 1);
  t.same(await spread(port, 10), { '200 b': 10 }, 'the ejected host gets no traffic');
  aFails = false;
  await until('the ejected host to return after base_ejection_time', () => stat(proxy, 'cluster.up.outlier_detection.ejections_active') === 0);
  t.equal(Object.keys(await spread(port, 10)).length, 2, 'both hosts serve again');
  t.ok(a.requests.length >= 3);
});

t.test('outlier detection: max_ejection_percent, gateway failures, success rate, growing ejection time (unit)', async (t) => {
  const hosts = [0, 1, 2, 3, 4, 5].map((i) => ({ key: `h${i}`, removed: false }) as unknown as Host);
  const ejected = new Set<Host>();
  const stats = new Proxy({}, { get: (o: Record<string, unknown>, k: string) => (o[k] ??= k === 'ejections_active' ? new Gauge() : new Counter()) });
  const config = {
    consecutive5xx: 3, consecutiveGatewayFailure: 2, interval: 1000, baseEjectionTime: 1000, maxEjectionTime: 2500, maxEjectionPercent: 34,
    enforcingConsecutive5xx: 100, enforcingConsecutiveGatewayFailure: 100, enforcingSuccessRate: 100,
    successRateMinimumHosts: 5, successRateRequestVolume: 10, successRateStdevFactor: 1900,
  };
  const d = new OutlierDetector({ hosts: () => hosts, hostCount: () => hosts.length, setEjected: (h, e) => (e ? ejected.add(h) : ejected.delete(h)) }, config, stats as never);
  let now = Date.now();
  for (const h of hosts) for (let i = 0; i < 3; i++) d.report(h, 500);
  t.equal(ejected.size, 2, 'max_ejection_percent 34 of 6 hosts: two ejected, the rest refused');
  t.ok((stats as unknown as { ejections_overflow: Counter }).ejections_overflow.value > 0);
  // Ejection time grows with repeated ejections, capped at max_ejection_time.
  const h0 = hosts[0]!;
  d.tick(now + 990);
  t.ok(ejected.has(h0), 'still ejected before base_ejection_time');
  d.tick(now + 1100);
  t.notOk(ejected.has(h0), 'back after base_ejection_time x 1');
  now = Date.now();
  for (let i = 0; i < 3; i++) d.report(h0, 500);
  t.ok(ejected.has(h0), 'ejected a second time');
  d.tick(now + 1500);
  t.ok(ejected.has(h0), 'the second ejection lasts longer');
  d.tick(now + 2100);
  t.notOk(ejected.has(h0), 'back after 2 x base');
  t.equal(d.ejectionTime({ ejections: 5 }), 2500, 'capped at max_ejection_time');
  for (const h of [...ejected]) d.tick(Date.now() + 10_000);
  t.equal(ejected.size, 0);
  // Consecutive gateway failures (here enforced): 502/503/504 and local-origin failures.
  d.report(hosts[5]!, 502);
  d.report(hosts[5]!, 503);
  t.ok(ejected.has(hosts[5]!), 'two gateway failures eject');
  d.tick(Date.now() + 60_000);
  // Success rate: five hosts at 100%, one at 50%.
  for (const [i, h] of hosts.entries()) for (let k = 0; k < 20; k++) d.report(h, i === 3 && k % 2 === 0 ? 500 : 200);
  ejected.clear();
  d.tick(Date.now() + 120_000);
  t.same([...ejected].map((h) => h.key), ['h3'], 'the outlier by success rate is ejected');
});

t.test('circuit breakers: max_connections + max_pending_requests overflow with 503 and x-envoy-overloaded', async (t) => {
  // The upstream holds every response until the test has seen the overflow, so all six
  // requests are in flight together however slow the machine is.
  const held: (() => void)[] = [];
  let release = false;
  const up = await startUpstream(t, 'up', (_req, res) => {
    const answer = () => res.writeHead(200).end('ok');
    if (release) answer();
    else held.push(answer);
  });
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts(), staticCluster('up', [up.port], `
    circuit_breakers:
      thresholds:
      - { max_connections: 2, max_pending_requests: 1, max_requests: 100 }`)));
  const port = proxy.port();
  const done: number[] = [];
  const inflight = [0, 1, 2, 3, 4, 5].map(() => get(port, '/').then((r) => { done.push(r.status); return r; }));
  await until('two requests held upstream and three overflowed', () => held.length === 2 && done.length === 3, { state: () => ({ held: held.length, done }) });
  release = true;
  for (const answer of held.splice(0)) answer();
  const rs = await Promise.all(inflight);
  const ok = rs.filter((r) => r.status === 200).length;
  const over = rs.filter((r) => r.status === 503 && r.headers['x-envoy-overloaded'] === 'true').length;
  t.equal(ok, 3, '2 connections + 1 pending served');
  t.equal(over, 3, 'the rest overflow');
  t.equal(stat(proxy, 'cluster.up.upstream_rq_pending_overflow'), 3);
  t.ok(stat(proxy, 'cluster.up.upstream_cx_overflow') >= 4);
  t.equal(up.requests.length, 3);
});

t.test('retries: retriable_status_codes; non-idempotent requests retried only when retry_on covers the failure', async (t) => {
  let n = 0;
  const up = await startUpstream(t, 'up', (_req, res) => {
    n++;
    res.writeHead(n % 2 === 1 ? 418 : 200).end(String(n));
  });
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts(`, retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [418], num_retries: 2 }`), staticCluster('up', [up.port])));
  const r = await get(proxy.port(), '/');
  t.equal(r.status, 200, 'the 418 was retried');
  t.equal(up.requests.length, 2);

  // An upstream that resets every connection after reading the request.
  const reset = net.createServer((s) => s.once('data', () => s.destroy()));
  await new Promise<void>((r) => reset.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => reset.close(() => r())));
  let seen = 0;
  reset.on('connection', () => seen++);
  const rp = (on: string) => vhosts(`, retry_policy: { retry_on: "${on}", num_retries: 2, retry_back_off: { base_interval: 0.01s } }`);
  const p1 = await startProxyYaml(t, bootstrapYaml(rp('connect-failure'), staticCluster('up', [(reset.address() as net.AddressInfo).port])));
  t.equal((await get(p1.port(), '/', {}, 'POST', 'x')).status, 503);
  t.equal(seen, 1, 'connect-failure does not cover a reset after the POST was sent: not retried');
  seen = 0;
  const p2 = await startProxyYaml(t, bootstrapYaml(rp('reset'), staticCluster('up', [(reset.address() as net.AddressInfo).port])));
  t.equal((await get(p2.port(), '/', {}, 'POST', 'x')).status, 503);
  t.equal(seen, 3, 'retry_on reset covers it explicitly: retried (Envoy does not consider the method)');
});

t.test('hedge_on_per_try_timeout: a slow first attempt keeps running, the first response wins', async (t) => {
  // The first request to arrive is slow (5 s), later ones are fast: far apart, so that a
  // loaded machine cannot blur which one answered.
  let n = 0;
  const slow = await startUpstream(t, 'up', (_req, res) => {
    const me = ++n;
    setTimeout(() => res.writeHead(200, { 'x-upstream': `attempt${me}` }).end(String(me)), me === 1 ? 5000 : 10).unref();
  });
  const route = (hedge: boolean) => vhosts(`, timeout: 15s, retry_policy: { retry_on: "5xx", num_retries: 1, per_try_timeout: 0.1s }${hedge ? ', hedge_policy: { hedge_on_per_try_timeout: true }' : ''}`);
  const hedged = await startProxyYaml(t, bootstrapYaml(route(true), staticCluster('up', [slow.port])));
  const start = Date.now();
  const r = await get(hedged.port(), '/');
  t.equal(r.status, 200);
  t.equal(r.headers['x-upstream'], 'attempt2', 'the hedge answered first');
  t.ok(Date.now() - start < 4000, 'without waiting for the slow attempt');
  t.equal(stat(hedged, 'cluster.up.upstream_rq_per_try_timeout'), 1);

  // Slow hedge, fast... the original wins when it answers first: the hedge is cancelled.
  n = -10;
  const r2 = await get(hedged.port(), '/');
  t.equal(r2.status, 200);
  await until('no attempt left behind', () => stat(hedged, 'cluster.up.upstream_rq_active') === 0, { state: () => stat(hedged, 'cluster.up.upstream_rq_active') });

  // Without hedging, the per-try timeout cancels the first attempt and retries.
  n = 0;
  const plain = await startProxyYaml(t, bootstrapYaml(route(false), staticCluster('up', [slow.port])));
  const r3 = await get(plain.port(), '/');
  t.equal(r3.headers['x-upstream'], 'attempt2');
});

t.test('hedging: the original attempt wins when it answers before the hedge', async (t) => {
  let n = 0;
  const up = await startUpstream(t, 'up', (_req, res) => {
    const me = ++n;
    setTimeout(() => res.writeHead(200, { 'x-upstream': `attempt${me}` }).end(String(me)), me === 1 ? 600 : 8000).unref();
  });
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts(`, timeout: 15s, retry_policy: { retry_on: "5xx", num_retries: 1, per_try_timeout: 0.1s }, hedge_policy: { hedge_on_per_try_timeout: true }`), staticCluster('up', [up.port])));
  const start = Date.now();
  const r = await get(proxy.port(), '/');
  t.equal(r.headers['x-upstream'], 'attempt1');
  t.ok(Date.now() - start < 6000, 'the slower hedge was not awaited');
  t.equal(n, 2, 'a hedge was sent');
});
