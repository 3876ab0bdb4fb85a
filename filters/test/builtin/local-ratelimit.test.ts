import t from 'tap';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, decodePerFilterConfig, FilterStats } from '../../src/index.js';
import { TokenBucket } from '../../src/builtin/local-ratelimit.js';
import { ROUTER, filter, info, req, res } from '../helpers.js';
import type { Clock } from '../../src/index.js';

// This test's own counters (a proxy passes its own; nothing is process-wide).
const stats = new FilterStats();

/** A clock that moves only when the test says so. */
function fakeClock(startMs = 1_000): Clock & { advance(ms: number): void } {
  let now = startMs;
  return { monotonicMs: () => now, wallMs: () => 1_700_000_000_000 + now, advance: (ms) => void (now += ms) };
}

const LRL = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const pct = (n: number) => ({ default_value: { numerator: n, denominator: 'HUNDRED' }, runtime_key: 'k' });

t.test('token bucket refills in whole intervals up to max', async (t) => {
  const b = new TokenBucket(2, 1, 100);
  t.ok(b.tryConsume(0));
  t.ok(b.tryConsume(0));
  t.notOk(b.tryConsume(50));
  t.ok(b.tryConsume(100));
  t.notOk(b.tryConsume(199));
  t.equal(b.remaining(10_000), 2, 'capped at max_tokens');
  t.equal(b.resetSeconds(10_000), 1);
});

t.test('with a fake clock the bucket refills exactly at fill_interval, never before', async (t) => {
  const clock = fakeClock();
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('lrl-clock', LRL, {
    stat_prefix: 's', token_bucket: { max_tokens: 2, tokens_per_fill: 1, fill_interval: '1s' },
    filter_enabled: pct(100), filter_enforced: pct(100), enable_x_ratelimit_headers: 'DRAFT_VERSION_03',
  }), ROUTER], diag, 'f', { stats: new FilterStats(), clock })!;
  t.same(diag.errors, []);
  const status = (): number => (chain.decodeHeaders(req(), info()) as { status: number } | undefined)?.status ?? 200;
  t.same([status(), status(), status()], [200, 200, 429], 'two tokens, then empty');
  clock.advance(999);
  t.equal(status(), 429, '1 ms before the fill: still empty');
  const r = chain.decodeHeaders(req(), info()) as { headers: Record<string, string> };
  t.equal(r.headers['x-ratelimit-reset'], '1', 'reset counted on the fake clock');
  clock.advance(1);
  t.same([status(), status()], [200, 429], 'one token per fill');
  clock.advance(60_000);
  t.same([status(), status(), status()], [200, 200, 429], 'refill capped at max_tokens');
});

t.test('filter_enabled / filter_enforced percentages are drawn from the injected random source', async (t) => {
  const draws = [0.49, 0.51, 0.1, 0.29, 0.2, 0.31];
  const random = (): number => draws.shift() ?? 0;
  const diag = new Diagnostics();
  const local = new FilterStats();
  const chain = buildHttpFilterChain([filter('lrl-rand', LRL, {
    stat_prefix: 's', token_bucket: { max_tokens: 1, fill_interval: '1s' },
    filter_enabled: pct(50), filter_enforced: pct(30),
  }), ROUTER], diag, 'f', { stats: local, clock: fakeClock(), random })!;
  t.equal(chain.decodeHeaders(req(), info()), undefined, '0.49 < 50%: enabled, takes the token');
  t.equal(chain.decodeHeaders(req(), info()), undefined, '0.51: not enabled');
  t.match(chain.decodeHeaders(req(), info()), { status: 429 }, '0.1: enabled, empty; 0.29 < 30%: enforced');
  t.equal(chain.decodeHeaders(req(), info()), undefined, '0.2: enabled, empty; 0.31 >= 30%: not enforced, passes');
  t.same(draws, [], 'every decision took exactly one draw');
  const s = local.snapshot();
  t.same([s['http.lrl-rand.enabled'], s['http.lrl-rand.rate_limited'], s['http.lrl-rand.enforced']], [3, 2, 1]);
});

t.test('429 after the bucket is empty, with x-ratelimit-* and configured headers', async (t) => {
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('lrl', LRL, {
    stat_prefix: 'http_local_rate_limiter',
    token_bucket: { max_tokens: 2, tokens_per_fill: 1, fill_interval: '60s' },
    filter_enabled: pct(100), filter_enforced: pct(100),
    response_headers_to_add: [{ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'x-local-rate-limit', value: 'true' } }],
    enable_x_ratelimit_headers: 'DRAFT_VERSION_03',
  }), ROUTER], diag, 'f', { stats });
  t.same(diag.errors, []);
  const i1 = info();
  t.equal(chain!.decodeHeaders(req(), i1), undefined);
  const r1 = res();
  chain!.encodeHeaders(r1, i1);
  t.same(r1.headers, { 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '1', 'x-ratelimit-reset': '60' });
  t.equal(chain!.decodeHeaders(req(), info()), undefined);
  t.match(chain!.decodeHeaders(req(), info()), {
    status: 429, details: 'local_rate_limited',
    headers: { 'x-local-rate-limit': 'true', 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0' },
  });
  const s = stats.snapshot();
  t.equal(s['http.lrl.rate_limited'], 1);
  t.equal(s['http.lrl.enforced'], 1);
  t.equal(s['http.lrl.ok'], 2);
});

t.test('filter_enabled/filter_enforced default to 0%: not enforced means pass with a header', async (t) => {
  const diag = new Diagnostics();
  const off = buildHttpFilterChain([filter('lrl-off', LRL, { stat_prefix: 's', token_bucket: { max_tokens: 1, fill_interval: '60s' } }), ROUTER], diag, 'f', { stats });
  for (let i = 0; i < 5; i++) t.equal(off!.decodeHeaders(req(), info()), undefined);
  const shadow = buildHttpFilterChain([filter('lrl-shadow', LRL, {
    stat_prefix: 's', token_bucket: { max_tokens: 1, fill_interval: '60s' }, filter_enabled: pct(100),
    request_headers_to_add_when_not_enforced: [{ header: { key: 'x-would-limit', value: '1' } }],
  }), ROUTER], diag, 'f', { stats });
  shadow!.decodeHeaders(req(), info());
  const r = req();
  t.equal(shadow!.decodeHeaders(r, info()), undefined);
  t.equal(r.headers['x-would-limit'], '1');
  t.same(diag.errors, []);
});

t.test('per-route LocalRateLimit has its own bucket and status', async (t) => {
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('lrl-route', LRL, { stat_prefix: 's' }), ROUTER], diag, 'f', { stats });
  const pr = decodePerFilterConfig('lrl-route', {
    name: 'lrl-route', typeUrl: LRL,
    config: { stat_prefix: 'r', status: { code: 503 }, token_bucket: { max_tokens: 1, fill_interval: '1s' }, filter_enabled: pct(100), filter_enforced: pct(100) },
  }, diag, 'r');
  t.same(diag.errors, []);
  t.equal(chain!.decodeHeaders(req(), info()), undefined, 'no filter-level bucket: no limit');
  const i = () => info({ perFilterConfig: { 'lrl-route': pr } });
  t.equal(chain!.decodeHeaders(req(), i()), undefined);
  t.match(chain!.decodeHeaders(req(), i()), { status: 503 });
});

t.test('bad config', async (t) => {
  const diag = new Diagnostics();
  t.equal(buildHttpFilterChain([filter('lrl-bad', LRL, { token_bucket: { max_tokens: 0, fill_interval: 'soon' } }), ROUTER], diag, 'f', { stats }), undefined);
  t.same(diag.errors.map((e) => e.path).sort(), [
    'f[0].typed_config.stat_prefix',
    'f[0].typed_config.token_bucket.fill_interval',
    'f[0].typed_config.token_bucket.fill_interval',
    'f[0].typed_config.token_bucket.max_tokens',
    'f[0].typed_config.token_bucket.max_tokens',
  ]);
});
