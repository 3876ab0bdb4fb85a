import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster, type Scope } from '../helpers.js';
import { sleep, until } from '../../../test-support/wait.js';
import { OutlierDetector } from '../../src/cluster/outlier.js';
import { Counter, Gauge } from '../../src/stats/stats.js';
import type { Host } from '../../src/cluster/endpoint-set.js';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, type OutlierDetection } from '../../../config/src/index.js';

/**
 * Issue 17: a frozen host (SIGSTOP: the kernel still accepts its connections, nothing
 * answers) must be ejected by outlier detection from its per-try timeouts, and retries
 * must not keep choosing it.
 */

type Stats = { server: { stats: { snapshot(): [string, number][] } } };

function stat(proxy: Stats, name: string): number {
  return proxy.server.stats.snapshot().find(([k]) => k === name)?.[1] ?? 0;
}

/** A real upstream process; teardown always resumes (SIGCONT) before killing it. */
async function upstreamProcess(t: Scope, name: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', `
    require('node:http').createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(200, { 'x-upstream': ${JSON.stringify(name)} }).end(${JSON.stringify(name)})); })
      .listen(0, '127.0.0.1', function () { console.log(this.address().port); });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`upstream ${name} exited with ${String(code)}`)));
  });
  return { port, child };
}

/** One HTTP/1.1 request with its own deadline (a request stuck on a frozen host must not hang the test). */
function timedGet(port: number, timeoutMs: number): Promise<{ status: number; upstream: string; ms: number }> {
  const start = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, upstream: String(res.headers['x-upstream'] ?? ''), ms: performance.now() - start }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', () => resolve({ status: 0, upstream: '', ms: performance.now() - start }));
  });
}

const vhosts = (retry: string) => `
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route:
                  cluster: up
                  retry_policy:
${retry}`;

t.test('a SIGSTOPped host is ejected within its consecutive-failure window; retries avoid it', async (t) => {
  const a = await upstreamProcess(t, 'a');
  const b = await upstreamProcess(t, 'b');
  const c = await upstreamProcess(t, 'c');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts(`
                    retry_on: 5xx,reset,connect-failure
                    num_retries: 2
                    per_try_timeout: 0.2s`), staticCluster('up', [a.port, b.port, c.port], `
    circuit_breakers:
      thresholds:
      - { max_retries: 100 }
    outlier_detection:
      consecutive_5xx: 5
      interval: 10s
      base_ejection_time: 30s
      max_ejection_percent: 50`)));
  const port = proxy.port();
  let running = true;
  const results: { status: number; upstream: string; ms: number; at: number }[] = [];
  let frozenAt = 0;
  const clients = Array.from({ length: 12 }, async () => {
    while (running) {
      const r = await timedGet(port, 10_000);
      results.push({ ...r, at: performance.now() });
    }
  });
  await until('traffic on all three hosts', () => new Set(results.map((r) => r.upstream)).size === 3);
  a.child.kill('SIGSTOP');
  frozenAt = performance.now();
  await until('the frozen host to be ejected', () => stat(proxy, 'cluster.up.outlier_detection.ejections_enforced_total') >= 1, { intervalMs: 5 });
  const ejectedAfter = performance.now() - frozenAt;
  const timeoutsAtEjection = stat(proxy, 'cluster.up.upstream_rq_per_try_timeout');
  // Attempts already on the frozen host finish their per-try timeout; after that none goes there.
  const frozenHost = proxy.server.snapshot.clusters.get('up')!.allHosts().find((h) => h.endpoint.port === a.port)!;
  await until('the attempts on the frozen host to time out', () => frozenHost.activeRequests === 0, { state: () => frozenHost.activeRequests });
  let attemptsOnEjected = 0;
  const watch = setInterval(() => (attemptsOnEjected = Math.max(attemptsOnEjected, frozenHost.activeRequests)), 2);
  const servedBefore = results.length;
  await sleep(1000);
  clearInterval(watch);
  running = false;
  await Promise.all(clients);
  t.comment(`frozen host ejected ${Math.round(ejectedAfter)} ms after SIGSTOP (per_try_timeout 200 ms x consecutive_5xx 5 = 1000 ms); ${results.length - servedBefore} requests in the second after`);
  // The window is counted in failures, not milliseconds (a loaded machine makes every timer
  // late): the host goes at its 5th consecutive per-try timeout; the 12 clients may have had
  // a few more attempts on it in flight by then.
  t.ok(timeoutsAtEjection >= 5 && timeoutsAtEjection <= 5 + 12, `ejected at the 5th consecutive timeout (${timeoutsAtEjection} per-try timeouts seen when it was)`);
  t.ok(ejectedAfter < 3000, `well within the 3 s the issue saw (${Math.round(ejectedAfter)} ms)`);
  t.equal(stat(proxy, 'cluster.up.outlier_detection.ejections_enforced_consecutive_5xx'), 1, 'by consecutive_5xx: per-try timeouts count as 5xx (504)');
  t.equal(attemptsOnEjected, 0, 'no attempt went to the ejected host afterwards');
  t.equal(stat(proxy, 'cluster.up.upstream_rq_retry_overflow'), 0, 'the retry breaker had room (max_retries 100)');
  // Requests sent after the freeze (one answered just before it may arrive after).
  const afterFreeze = results.filter((r) => r.at - r.ms > frozenAt);
  t.same([...new Set(afterFreeze.map((r) => r.status))], [200], `every request was served by a retry on another host (${afterFreeze.length} requests)`);
  t.notOk(afterFreeze.some((r) => r.upstream === 'a'), 'nothing from the frozen host');
  t.comment(`slowest request after the freeze: ${Math.round(Math.max(...afterFreeze.map((r) => r.ms)))} ms`);
});

t.test('previous_hosts retry host predicate: retries avoid every host already tried', async (t) => {
  const bad1 = await startUpstream(t, 'bad1', (_req, res) => res.writeHead(503, { 'x-upstream': 'bad1' }).end());
  const bad2 = await startUpstream(t, 'bad2', (_req, res) => res.writeHead(503, { 'x-upstream': 'bad2' }).end());
  const good = await startUpstream(t, 'good', (_req, res) => res.writeHead(200, { 'x-upstream': 'good' }).end());
  const cluster = staticCluster('up', [bad1.port, bad2.port, good.port], '    lb_policy: RANDOM');
  const withPredicate = await startProxyYaml(t, bootstrapYaml(vhosts(`
                    retry_on: 5xx
                    num_retries: 2
                    retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts }]
                    host_selection_retry_max_attempts: 20`), cluster));
  const without = await startProxyYaml(t, bootstrapYaml(vhosts(`
                    retry_on: 5xx
                    num_retries: 2`), cluster));
  const statuses = async (port: number) => {
    const out: number[] = [];
    for (let i = 0; i < 60; i++) out.push((await get(port, '/')).status);
    return out;
  };
  const a = await statuses(withPredicate.port());
  t.same([...new Set(a)], [200], 'three attempts on three different hosts: the good one always answers');
  const b = await statuses(without.port());
  // Without the predicate only the host just tried is avoided: a third attempt goes back
  // to the first bad host half the time (P(no 503 in 60) ~ 2e-5).
  t.ok(b.includes(503), `without it, some requests exhaust their retries on hosts already tried (${b.filter((s) => s === 503).length}/60)`);
});

t.test('local-origin failures in outlier detection (unit): unsplit they are 5xx/gateway failures, split they count apart', async (t) => {
  const host = { key: 'h', removed: false } as unknown as Host;
  const other = { key: 'o', removed: false } as unknown as Host;
  const make = (extra: Partial<OutlierDetection>) => {
    const ejected = new Set<Host>();
    const stats = new Proxy({}, { get: (o: Record<string, unknown>, k: string) => (o[k] ??= k === 'ejections_active' ? new Gauge() : new Counter()) }) as Record<string, Counter>;
    const config: OutlierDetection = {
      consecutive5xx: 5, consecutiveGatewayFailure: 3, interval: 10_000, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 100,
      enforcingConsecutive5xx: 100, enforcingConsecutiveGatewayFailure: 100, enforcingSuccessRate: 0,
      successRateMinimumHosts: 5, successRateRequestVolume: 100, successRateStdevFactor: 1900, ...extra,
    };
    const d = new OutlierDetector({ hosts: () => [host, other], hostCount: () => 2, setEjected: (h, e) => (e ? ejected.add(h) : ejected.delete(h)) }, config, stats as never);
    return { d, ejected, stats };
  };
  {
    const { d, ejected, stats } = make({});
    d.reportLocalOrigin(host, 'timeout');
    d.reportLocalOrigin(host, 'timeout');
    t.notOk(ejected.has(host));
    d.reportLocalOrigin(host, 'connect_failed');
    t.ok(ejected.has(host), 'three timeouts/resets are three gateway failures (504, 503)');
    t.equal(stats.ejections_enforced_consecutive_gateway_failure!.value, 1);
  }
  {
    const { d, ejected } = make({ enforcingConsecutiveGatewayFailure: 0 });
    for (let i = 0; i < 4; i++) d.reportLocalOrigin(host, 'timeout');
    d.report(host, 200);
    for (let i = 0; i < 4; i++) d.reportLocalOrigin(host, 'timeout');
    t.notOk(ejected.has(host), 'a success in between resets consecutive_5xx');
    d.reportLocalOrigin(host, 'timeout');
    t.ok(ejected.has(host), 'five timeouts in a row: consecutive_5xx');
  }
  {
    const { d, ejected, stats } = make({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 3 });
    d.reportLocalOrigin(host, 'timeout');
    d.reportLocalOrigin(host, 'timeout');
    d.reportLocalOriginSuccess(host);
    d.reportLocalOrigin(host, 'timeout');
    d.reportLocalOrigin(host, 'connect_failed');
    t.notOk(ejected.has(host), 'a connection that worked ends the run');
    for (let i = 0; i < 4; i++) d.report(host, 500);
    t.notOk(ejected.has(host), 'answers do not count towards local-origin failures (nor reach consecutive_5xx 5)');
    d.reportLocalOrigin(host, 'timeout');
    t.ok(ejected.has(host), 'three local-origin failures in a row: consecutive_local_origin_failure');
    t.equal(stats.ejections_enforced_consecutive_local_origin_failure!.value, 1);
    t.equal(stats.ejections_enforced_consecutive_gateway_failure!.value, 0, 'split: timeouts are not gateway failures');
  }
});

t.test('outlier_detection decoding: split_external_local_origin_errors and its consecutive/enforcing fields', async (t) => {
  const decode = (od: string) => {
    const diag = new Diagnostics();
    const b = decodeBootstrap(parseYaml(bootstrapYaml(vhosts('                    retry_on: 5xx'), staticCluster('up', [1], `
    outlier_detection: ${od}`))), diag);
    return { od: b?.staticResources.clusters[0]?.outlierDetection, errors: diag.errors.map((e) => `${e.path}: ${e.message}`) };
  };
  const split = decode('{ split_external_local_origin_errors: true, consecutive_local_origin_failure: 3, enforcing_consecutive_local_origin_failure: 50 }');
  t.same(split.errors, []);
  t.match(split.od, { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 3, enforcingConsecutiveLocalOriginFailure: 50 });
  t.match(decode('{}').od, { splitExternalLocalOriginErrors: false, consecutiveLocalOriginFailure: 5, enforcingConsecutiveLocalOriginFailure: 100 }, "Envoy's defaults");
  t.match(decode('{ enforcing_consecutive_local_origin_failure: 101 }').errors.join('\n'), /enforcing_consecutive_local_origin_failure/, 'a percentage above 100 is refused');
});
