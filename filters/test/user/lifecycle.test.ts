import t from 'tap';

t.setTimeout(300_000);
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, UserFilterManager, decodePerFilterConfig, type LocalReply } from '../../src/index.js';
import { ROUTER, filter, info, req, res } from '../helpers.js';
import { fromFile, inline, tagger } from './fixtures.js';

const TYPE = 'pilotfish.filters.http.module';

function setup(t: { teardown(fn: () => void): void }): UserFilterManager {
  const mgr = new UserFilterManager();
  t.teardown(() => mgr.close());
  return mgr;
}

t.test('a module from a file: verified, loaded, self-tested, active; mutates and answers', async (t) => {
  const mgr = setup(t);
  const dir = t.testdir();
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('uf-file', TYPE, fromFile(dir, tagger('1.0.0'), '1.0.0', { config: { tag: 'blue' } })), ROUTER], diag, 'f', { userFilters: mgr });
  t.same(diag.errors, []);
  t.same(await chain!.ready, []);
  const i = info();
  const r = req();
  t.equal(await chain!.decodeHeaders(r, i), undefined);
  t.same(r.headers, { 'x-filter-version': '1.0.0', 'x-seen-config': 'blue' });
  const s = res();
  t.equal(await chain!.encodeHeaders(s, i), undefined);
  t.equal(s.headers['x-served-by'], '1.0.0');
  chain!.streamComplete(i);
  t.match(await chain!.decodeHeaders(req({}, { 'x-deny': '1' }), info()), { status: 403, body: 'denied by 1.0.0', details: 'user_filter{uf-file}' });
  t.match(mgr.describe(), [{ name: 'uf-file', active_version: '1.0.0', versions: [{ version: '1.0.0', state: 'active' }] }]);
  const stats = mgr.stats.snapshot();
  t.equal(stats['http.uf-file.calls'], 3);
  t.equal(stats['http.uf-file.rejections'], 1);
  t.equal(stats['http.uf-file.loads_ok'], 1);
});

t.test('rejected at config time, before any code is parsed: bad hash, incompatible API, bad range, missing file', async (t) => {
  const mgr = setup(t);
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['bad hash', { ...inline(tagger('1'), '1'), sha256: 'a'.repeat(64) }, 'f[0].typed_config.sha256', /integrity check failed/],
    ['incompatible api', inline(tagger('1'), '1', { api_version_range: '^2.0.0' }), 'f[0].typed_config.api_version_range', /provides 1\.0\.0/],
    ['invalid range', inline(tagger('1'), '1', { api_version_range: 'one point oh' }), 'f[0].typed_config.api_version_range', /invalid semver range/],
    ['missing file', { ...inline('x', '1'), inline_source: undefined, path: '/nonexistent/filter.js' }, 'f[0].typed_config.path', /cannot read/],
  ];
  for (const [what, cfg, path, msg] of cases) {
    const diag = new Diagnostics();
    const chain = buildHttpFilterChain([filter('uf-bad', TYPE, cfg), ROUTER], diag, 'f', { userFilters: mgr });
    t.equal(chain, undefined, what);
    t.match(diag.errors, [{ path, message: msg }], what);
  }
  t.same(mgr.describe(), [], 'nothing was loaded');
});

t.test('apply(): failures at load are NACKed while the previous version keeps serving', async (t) => {
  const mgr = setup(t);
  const events: string[] = [];
  mgr.onEvent = (_n, v, e) => events.push(`${v}:${e}`);
  const ok = await mgr.apply('uf-apply', { config: inline(tagger('1.0.0'), '1.0.0') });
  t.ok(ok.ok);
  const chain = buildHttpFilterChain([filter('uf-apply', TYPE, inline(tagger('1.0.0'), '1.0.0')), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  const failures: [string, string, RegExp][] = [
    ['syntax error', 'exports.onRequest = (req) => {', /load failed: Error: does not compile: SyntaxError/],
    ['throw at load', 'throw new Error("no config for me")', /load failed: Error: no config for me/],
    ['infinite loop at load', 'for (;;) {}', /load failed: .*timed out/],
    ['memory hog at load', 'const a = []; for (;;) a.push(new Array(1e5).fill(1));', /out of memory|timed out/],
    ['no handlers', 'exports.foo = 1;', /neither onRequest nor onResponse/],
    ['self-test fails', 'exports.onRequest = () => ({ status: 500 }); exports.probe = { request: {}, expect: {} };', /self-test failed: probe\[0\]: expected continue, got status 500/],
    ['eval is off', 'exports.onRequest = () => {}; eval("1");', /load failed: EvalError/],
    ['no process access', 'exports.onRequest = () => {}; process.exit(1);', /load failed: ReferenceError: process is not defined/],
  ];
  let n = 2;
  for (const [what, src, msg] of failures) {
    const v = `1.0.${n++}`;
    const r = await mgr.apply('uf-apply', { config: inline(src, v, { load_timeout_ms: 3000, memory_limit_mb: 16 }) }, 'ecds.uf-apply');
    t.notOk(r.ok, what);
    if (!r.ok) t.match(r.errors, [{ path: 'ecds.uf-apply', message: msg }], what);
    const q = req();
    t.equal(await chain.decodeHeaders(q, info()), undefined, `${what}: still serving`);
    t.equal(q.headers['x-filter-version'], '1.0.0', `${what}: previous version`);
  }
  t.ok(events.includes('1.0.4:rejected'));
  t.notOk(events.some((e) => e.endsWith(':active') && e !== '1.0.0:active'), 'no rejected version ever served');
  t.equal(mgr.stats.snapshot()['http.uf-apply.loads_rejected'], failures.length);
  const sameVersionOtherCode = await mgr.apply('uf-apply', { config: inline(tagger('other'), '1.0.0') });
  t.notOk(sameVersionOtherCode.ok, 'a version number cannot be reused for different code');
});

t.test('run-time failures: throw, infinite loop, memory hog; fail closed or open; the sandbox recovers', async (t) => {
  const mgr = setup(t);
  const BUDGET = 500;
  const closed = buildHttpFilterChain([filter('uf-rt', TYPE, inline(tagger('1.0.0'), '1.0.0', { time_budget_ms: BUDGET, memory_limit_mb: 16 })), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  const open = buildHttpFilterChain([filter('uf-rt-open', TYPE, inline(tagger('1.0.0'), '1.0.0', { failure_policy: 'FAIL_OPEN', time_budget_ms: BUDGET })), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  t.same(await closed.ready, []);
  t.same(await open.ready, []);
  for (const h of ['x-throw', 'x-loop', 'x-hog']) {
    const t0 = performance.now();
    t.same(await closed.decodeHeaders(req({}, { [h]: '1' }), info()), { status: 500, details: 'filter_failed{uf-rt}' }, `${h}: fail closed`);
    const took = performance.now() - t0;
    // The sweeper fails a call at most budget + budget/4 after it was sent (625 ms here);
    // the rest of the bound is scheduling slack for a busy machine. A filter that ran
    // to completion (no cut-off) would not answer at all, a sweeper that missed its
    // tick would answer a full budget late.
    t.ok(took < BUDGET + BUDGET / 4 + 600, `${h}: answered in ${took.toFixed(0)} ms (budget ${BUDGET} ms)`);
    const q = req();
    t.equal(await closed.decodeHeaders(q, info()), undefined, `${h}: next request fine`);
    t.equal(q.headers['x-filter-version'], '1.0.0');
  }
  t.equal(await open.decodeHeaders(req({}, { 'x-throw': '1' }), info()), undefined, 'fail open continues');
  const s = mgr.stats.snapshot();
  t.equal(s['http.uf-rt.errors'], 3);
  t.ok(s['http.uf-rt.timeouts']! >= 1, 'the loop (and maybe the hog) ran out of time');
  t.equal(s['http.uf-rt-open.errors'], 1);
  t.match(mgr.describe(), [{ name: 'uf-rt', versions: [{ failures: 3, sandbox_restarts: 2 }] }, { name: 'uf-rt-open' }], 'loop and hog each cost one worker restart');
});

t.test('automatic rollback to the previous good version after rollback_after_failures', async (t) => {
  const mgr = setup(t);
  const chain = buildHttpFilterChain([filter('uf-rb', TYPE, inline(tagger('1.0.0'), '1.0.0')), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  await chain.ready;
  const v2 = await mgr.apply('uf-rb', { config: inline(tagger('2.0.0'), '2.0.0', { rollback_after_failures: 3 }) });
  t.ok(v2.ok);
  const version = async (h: Record<string, string> = {}) => {
    const q = req({}, h);
    const inf = info();
    const r = await chain.decodeHeaders(q, inf);
    chain.streamComplete(inf);
    return r === undefined ? q.headers['x-filter-version'] : (r as LocalReply).status;
  };
  t.equal(await version(), '2.0.0');
  for (let i = 0; i < 3; i++) t.equal(await version({ 'x-throw': '1' }), 500);
  t.equal(await version(), '1.0.0', 'rolled back');
  t.match(mgr.describe(), [{ active_version: '1.0.0', events: [{ event: 'active' }, { event: 'active' }, { version: '2.0.0', event: 'rolled_back' }, { version: '2.0.0', event: 'released' }] }]);
  t.equal(mgr.stats.snapshot()['http.uf-rb.rollbacks'], 1);
  t.equal(mgr.rollback('uf-rb'), false, 'nothing older to roll back to');
  // A chain rebuilt from config that still names 2.0.0 does not bring it back.
  const rebuilt = buildHttpFilterChain([filter('uf-rb', TYPE, inline(tagger('2.0.0'), '2.0.0', { rollback_after_failures: 3 })), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  t.same(await rebuilt.ready, []);
  const q = req();
  await rebuilt.decodeHeaders(q, info());
  t.equal(q.headers['x-filter-version'], '1.0.0', 'rollback is sticky across chain rebuilds');
  t.ok((await mgr.apply('uf-rb', { config: inline(tagger('2.0.0'), '2.0.0') })).ok, 'an explicit apply may bring it back');
  t.match(mgr.describe(), [{ active_version: '2.0.0' }]);
});

t.test('a request keeps the version it started with; the retired version is released when it ends', async (t) => {
  const mgr = setup(t);
  const chain = buildHttpFilterChain([filter('uf-drain', TYPE, inline(tagger('1.0.0'), '1.0.0', { keep_versions: 1 })), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  await chain.ready;
  const old = info();
  await chain.decodeHeaders(req(), old);
  t.ok((await mgr.apply('uf-drain', { config: inline(tagger('2.0.0'), '2.0.0', { keep_versions: 1 }) })).ok);
  t.match(mgr.describe(), [{ active_version: '2.0.0', versions: [{ version: '1.0.0', state: 'draining', in_flight: 1 }, { version: '2.0.0', state: 'active' }] }]);
  const fresh = info();
  const q = req();
  await chain.decodeHeaders(q, fresh);
  t.equal(q.headers['x-filter-version'], '2.0.0');
  const oldRes = res();
  await chain.encodeHeaders(oldRes, old);
  t.equal(oldRes.headers['x-served-by'], '1.0.0', 'old request finished on the old version');
  chain.streamComplete(old);
  chain.streamComplete(fresh);
  t.match(mgr.describe(), [{ versions: [{ version: '2.0.0', state: 'active' }] }]);
  t.equal((mgr.describe()[0] as { versions: unknown[] }).versions.length, 1, 'old version released');
});

t.test('several versions at once: canary share and per-route pinning', async (t) => {
  const mgr = setup(t);
  const chain = buildHttpFilterChain([filter('uf-canary', TYPE, inline(tagger('1.0.0'), '1.0.0')), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  await chain.ready;
  t.ok((await mgr.apply('uf-canary', { config: inline(tagger('2.0.0'), '2.0.0', { canary_percent: 30 }) })).ok);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const q = req();
    const inf = info();
    await chain.decodeHeaders(q, inf);
    chain.streamComplete(inf);
    const v = String(q.headers['x-filter-version']);
    counts[v] = (counts[v] ?? 0) + 1;
  }
  t.ok(counts['2.0.0']! > 80 && counts['2.0.0']! < 160, `~30% canary: ${JSON.stringify(counts)}`);
  t.match(mgr.describe(), [{ active_version: '1.0.0', canary: { version: '2.0.0', percent: 30 } }]);

  const diag = new Diagnostics();
  const pin = decodePerFilterConfig('uf-canary', { name: 'uf-canary', typeUrl: TYPE, config: { version: '2.0.0' } }, diag, 'r');
  t.same(diag.errors, []);
  for (let i = 0; i < 20; i++) {
    const q = req();
    await chain.decodeHeaders(q, info({ perFilterConfig: { 'uf-canary': pin } }));
    t.equal(q.headers['x-filter-version'], '2.0.0');
  }
  // Promote: the same version without canary_percent becomes the default.
  t.ok((await mgr.apply('uf-canary', { config: inline(tagger('2.0.0'), '2.0.0') })).ok);
  t.match(mgr.describe(), [{ active_version: '2.0.0', canary: undefined }]);
  const q = req();
  await chain.decodeHeaders(q, info());
  t.equal(q.headers['x-filter-version'], '2.0.0');
});

t.test('a chain whose user filter fails to load reports it through ready and fails closed', async (t) => {
  const mgr = setup(t);
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('uf-never', TYPE, inline('exports.onRequest = () => {}; throw new TypeError("bad init")', '1.0.0')), ROUTER], diag, 'f', { userFilters: mgr });
  t.same(diag.errors, [], 'the synchronous part is fine');
  t.match(await chain!.ready, [{ path: 'f[0].typed_config', message: /rejected: load failed: TypeError: bad init/ }]);
  t.same(await chain!.decodeHeaders(req(), info()), { status: 500, details: 'filter_failed{uf-never}' });
  const open = buildHttpFilterChain([filter('uf-never-open', TYPE, inline('throw 1', '1.0.0', { failure_policy: 'FAIL_OPEN' })), ROUTER], diag, 'f', { userFilters: mgr });
  await open!.ready;
  t.equal(await open!.decodeHeaders(req(), info()), undefined);
});

t.test('a version whose worker keeps dying is rolled back even without a failure threshold', async (t) => {
  const mgr = setup(t);
  const chain = buildHttpFilterChain([filter('uf-dead', TYPE, inline(tagger('1.0.0'), '1.0.0')), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  await chain.ready;
  t.ok((await mgr.apply('uf-dead', { config: inline(tagger('2.0.0'), '2.0.0', { time_budget_ms: 300, memory_limit_mb: 16 }) })).ok);
  // Each hog kills the worker (OOM or budget); the fourth death exhausts the 3 restarts.
  for (let i = 0; i < 4; i++) {
    const inf = info();
    t.match(await chain.decodeHeaders(req({}, { 'x-hog': '1' }), inf), { status: 500 });
    chain.streamComplete(inf);
  }
  const q = req();
  await chain.decodeHeaders(q, info());
  t.equal(q.headers['x-filter-version'], '1.0.0', 'back on the previous version');
  t.match(mgr.describe(), [{ active_version: '1.0.0', events: [{}, {}, {}, {}, {}, {}, { version: '2.0.0', event: 'rolled_back', reason: /sandbox restarts exhausted/ }] }]);
});
