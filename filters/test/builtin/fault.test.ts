import t from 'tap';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, FilterStats } from '../../src/index.js';
import { ROUTER, filter, info, req } from '../helpers.js';

// This test's own counters (a proxy passes its own; nothing is process-wide).
const stats = new FilterStats();

const FAULT = 'envoy.extensions.filters.http.fault.v3.HTTPFault';
const all = { numerator: 100, denominator: 'HUNDRED' };

function chainOf(name: string, config: Record<string, unknown>) {
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter(name, FAULT, config), ROUTER], diag, 'f', { stats });
  t.same(diag.errors, []);
  return chain!;
}

t.test('abort: status at the configured percentage', async (t) => {
  const c = chainOf('fault-abort', { abort: { http_status: 503, percentage: all } });
  t.same(c.decodeHeaders(req(), info()), { status: 503, headers: { 'content-type': 'text/plain' }, body: 'fault filter abort', details: 'fault_filter_abort' });
  const none = chainOf('fault-abort0', { abort: { http_status: 503, percentage: { numerator: 0 } } });
  t.equal(none.decodeHeaders(req(), info()), undefined);
  const million = chainOf('fault-abort-m', { abort: { http_status: 503, percentage: { numerator: 500_000, denominator: 'MILLION' } } });
  let hits = 0;
  for (let i = 0; i < 2000; i++) if (million.decodeHeaders(req(), info()) !== undefined) hits++;
  t.ok(hits > 850 && hits < 1150, `~50% aborted (${hits}/2000)`);
});

t.test('fixed delay then abort; the chain goes async only when delaying', async (t) => {
  const c = chainOf('fault-delay', { delay: { fixed_delay: '0.05s', percentage: all }, abort: { http_status: 418, percentage: all } });
  const t0 = performance.now();
  const p = c.decodeHeaders(req(), info());
  t.ok(p instanceof Promise);
  t.match(await p, { status: 418 });
  t.ok(performance.now() - t0 >= 45, 'delayed ~50ms');
  t.equal(stats.snapshot()['http.fault-delay.delays_injected'], 1);
});

t.test('header-controlled faults, limited by the configured percentage and header matchers', async (t) => {
  const c = chainOf('fault-hdr', {
    delay: { header_delay: {}, percentage: all },
    abort: { header_abort: {}, percentage: all },
    headers: [{ name: 'x-chaos', exact_match: 'yes' }],
  });
  t.equal(c.decodeHeaders(req({}, { 'x-envoy-fault-abort-request': '504' }), info()), undefined, 'header matcher not met');
  t.match(c.decodeHeaders(req({}, { 'x-chaos': 'yes', 'x-envoy-fault-abort-request': '504' }), info()), { status: 504 });
  t.equal(c.decodeHeaders(req({}, { 'x-chaos': 'yes', 'x-envoy-fault-abort-request': '504', 'x-envoy-fault-abort-request-percentage': '0' }), info()), undefined);
  const p = c.decodeHeaders(req({}, { 'x-chaos': 'yes', 'x-envoy-fault-delay-request': '20' }), info());
  t.ok(p instanceof Promise);
  t.equal(await p, undefined);
});

t.test('upstream_cluster and max_active_faults', async (t) => {
  const c = chainOf('fault-max', { delay: { fixed_delay: '0.03s', percentage: all }, upstream_cluster: 'c', max_active_faults: 1 });
  t.equal(c.decodeHeaders(req(), info({ clusterName: 'other' })), undefined);
  const p1 = c.decodeHeaders(req(), info());
  t.ok(p1 instanceof Promise);
  t.equal(c.decodeHeaders(req(), info()), undefined, 'over max_active_faults: no fault');
  await p1;
  t.equal(stats.snapshot()['http.fault-max.faults_overflow'], 1);
});

t.test('bad config', async (t) => {
  const diag = new Diagnostics();
  t.equal(buildHttpFilterChain([filter('fault-bad', FAULT, { delay: {}, abort: { http_status: 99 } }), ROUTER], diag, 'f', { stats }), undefined);
  t.same(diag.errors.map((e) => e.path), ['f[0].typed_config.delay', 'f[0].typed_config.abort.http_status', 'f[0].typed_config.abort']);
});
