/**
 * Two proxies in one process share nothing: each has its own filter counters, and each
 * decides with the clock it was given at its composition root (startProxy's deps). Real
 * listeners, real HTTP, counters read from each proxy's own admin /stats.
 */
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, formatProblem } from '../config/src/index.js';
import { Logger, startProxy, type RunningProxy } from '../proxy/src/index.js';
import type { Clock } from '../filters/src/index.js';
import { bootstrapYaml, get } from '../proxy/test/helpers.js';

const VHOSTS = `
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "ok" } }`;

/** One token per 10 s: with a real clock a second request inside this test is always limited. */
const FILTERS = `
          - name: limiter
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: lrl
              token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: 10s }
              filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: e }
              filter_enforced: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: f }`;

async function start(clock?: Clock): Promise<RunningProxy> {
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseYaml(bootstrapYaml(VHOSTS, '    []', '', FILTERS)), diag);
  if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
  const p = await startProxy(b, { log: new Logger('error'), adminPort: 0, drainTimeMs: 0, onQuit: () => undefined, ...(clock ? { clock } : {}) });
  t.teardown(() => p.stop(0));
  return p;
}

async function counters(p: RunningProxy): Promise<Record<string, number>> {
  const r = await get(p.adminPort!, '/stats?filter=^http\\.limiter\\.');
  const out: Record<string, number> = {};
  for (const line of r.body.split('\n')) {
    const m = /^(\S+): (\d+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

const statuses = async (port: number, n: number): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(port, '/')).status);
  return out;
};

t.test('two proxies in one process keep their own filter counters', async (t) => {
  const a = await start();
  const b = await start();
  t.same(await statuses(a.server.boundPorts.get('main')!, 3), [200, 429, 429], 'proxy A: one token, then limited');
  t.same(await statuses(b.server.boundPorts.get('main')!, 1), [200], 'proxy B has its own bucket (a chain per proxy)');
  const ca = await counters(a);
  const cb = await counters(b);
  t.equal(ca['http.limiter.enabled'], 3, 'A counted only its own 3 requests');
  t.equal(ca['http.limiter.rate_limited'], 2);
  t.equal(cb['http.limiter.enabled'], 1, 'B counted only its own request (process-wide counters would say 4)');
  t.equal(cb['http.limiter.rate_limited'] ?? 0, 0, 'and none of A\'s 429s');
});

t.test('the clock passed to startProxy drives the token bucket', async (t) => {
  let now = 0;
  const clock: Clock = { monotonicMs: () => now, wallMs: () => Date.now() };
  const p = await start(clock);
  const port = p.server.boundPorts.get('main')!;
  t.same(await statuses(port, 2), [200, 429]);
  now += 9_999;
  t.same(await statuses(port, 1), [429], '1 ms before the fill interval on the injected clock');
  now += 1;
  t.same(await statuses(port, 2), [200, 429], 'refilled exactly at 10 s of injected time, though no real time passed');
});
