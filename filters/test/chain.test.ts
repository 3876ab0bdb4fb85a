import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../config/src/index.js';
import {
  buildHttpFilterChain, decodePerFilterConfig, FilterStats, registerHttpFilter, FILTER_DISABLED,
  type HttpFilter, type FilterResult, type StreamInfo,
} from '../src/index.js';
import { ROUTER, filter, info, req, res } from './helpers.js';

// This test's own counters (a proxy passes its own; nothing is process-wide).
const stats = new FilterStats();

const TEST_TYPE = 'test.pilotfish.Probe';
/** A configurable filter for chain tests: records calls in metadata "trace". */
registerHttpFilter({
  kind: 'probe',
  typeUrl: TEST_TYPE,
  perRouteTypeUrls: ['test.pilotfish.ProbePerRoute'],
  create(cfg): HttpFilter {
    const c = cfg.config as { mode?: string; reply?: number; async?: boolean; failOpen?: boolean };
    const trace = (i: StreamInfo, what: string): void => {
      const list = (i.metadata.get('trace') as string[] | undefined) ?? [];
      list.push(`${cfg.name}:${what}`);
      i.metadata.set('trace', list);
    };
    const act = (i: StreamInfo, what: string): FilterResult | Promise<FilterResult> => {
      trace(i, what);
      const out = (): FilterResult => {
        if (c.mode === 'throw') throw new Error('boom');
        return c.reply ? { status: c.reply } : undefined;
      };
      if (c.async) return new Promise((resolve, reject) => setImmediate(() => { try { resolve(out()); } catch (e) { reject(e); } }));
      return out();
    };
    return {
      name: cfg.name,
      typeUrl: TEST_TYPE,
      failurePolicy: c.failOpen ? 'FAIL_OPEN' : 'FAIL_CLOSED',
      failureStatus: 500,
      decodeHeaders: (_r, i, pr) => act(i, pr === undefined ? 'dec' : `dec(${JSON.stringify(pr)})`),
      encodeHeaders: (_r, i) => act(i, 'enc'),
      streamComplete: (i) => trace(i, 'done'),
      describe: () => ({ kind: 'probe' }),
    };
  },
  decodePerRoute: (_t, config) => config,
});

const build = (configs: Parameters<typeof buildHttpFilterChain>[0]) => {
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain(configs, diag, 'http_filters', { stats });
  return { chain, diag };
};

t.test('router must be last; it is validated and left out of the chain', async (t) => {
  const ok = build([filter('a', TEST_TYPE), ROUTER]);
  t.ok(ok.chain);
  t.same(ok.diag.errors, []);
  t.same((ok.chain!.describe() as { filters: { name: string }[] }).filters.map((f) => f.name), ['a']);
  t.same(ok.chain!.router, { suppressEnvoyHeaders: false, dynamicStats: true, startChildSpan: false });

  const notLast = build([ROUTER, filter('a', TEST_TYPE)]);
  t.equal(notLast.chain, undefined);
  t.match(notLast.diag.errors, [{ path: 'http_filters[0]', message: /must be the last/ }, { path: 'http_filters[1]', message: /must be the terminal/ }]);

  const none = build([filter('a', TEST_TYPE)]);
  t.equal(none.chain, undefined);
  t.match(none.diag.errors, [{ path: 'http_filters[0]' }]);

  const empty = build([]);
  t.ok(empty.chain, 'an empty list means router only');
  t.equal(empty.chain!.hasRequestPhase, false);
  t.equal(empty.diag.warnings.length, 1);

  const routerOpts = build([{ ...ROUTER, config: { suppress_envoy_headers: true } }]);
  t.equal(routerOpts.chain!.router.suppressEnvoyHeaders, true);
});

t.test('unknown types: error unless is_optional; disabled filters skipped; duplicate names refused', async (t) => {
  const unknown = build([filter('x', 'envoy.extensions.filters.http.nope.v3.Nope'), ROUTER]);
  t.equal(unknown.chain, undefined);
  t.match(unknown.diag.errors, [{ path: 'http_filters[0].typed_config', message: /unknown filter type/ }]);

  const optional = build([filter('x', 'envoy.extensions.filters.http.nope.v3.Nope', {}, { isOptional: true }), filter('a', TEST_TYPE), ROUTER]);
  t.ok(optional.chain);
  t.match(optional.diag.warnings, [{ path: 'http_filters[0].typed_config', message: /optional, skipped/ }]);

  const disabled = build([filter('a', TEST_TYPE, { reply: 418 }, { disabled: true }), ROUTER]);
  t.ok(disabled.chain);
  t.equal(disabled.chain!.hasRequestPhase, false);
  t.equal(disabled.chain!.decodeHeaders(req(), info()), undefined);

  // Envoy accepts a filter name twice (istiod sends envoy.filters.http.rbac twice): both run.
  const dup = build([filter('a', TEST_TYPE), filter('a', TEST_TYPE), ROUTER]);
  t.same(dup.diag.errors, []);
  t.equal((dup.chain!.describe() as { filters: unknown[] }).filters.length, 2, 'both filters named "a" are in the chain');
});

t.test('decode runs in order, encode in reverse; synchronous chains return no Promise', async (t) => {
  const { chain } = build([filter('a', TEST_TYPE), filter('b', TEST_TYPE), ROUTER]);
  const i = info();
  const r1 = chain!.decodeHeaders(req(), i);
  t.equal(r1, undefined, 'not a Promise');
  const r2 = chain!.encodeHeaders(res(), i);
  t.equal(r2, undefined);
  chain!.streamComplete(i);
  t.same(i.metadata.get('trace'), ['a:dec', 'b:dec', 'b:enc', 'a:enc', 'a:done', 'b:done']);
});

t.test('a local reply stops the chain; counted as a rejection', async (t) => {
  const { chain } = build([filter('stop1', TEST_TYPE, { reply: 401 }), filter('after1', TEST_TYPE), ROUTER]);
  const i = info();
  t.same(chain!.decodeHeaders(req(), i), { status: 401 });
  t.same(i.metadata.get('trace'), ['stop1:dec']);
  const s = stats.snapshot();
  t.equal(s['http.stop1.rejections'], 1);
  t.equal(s['http.stop1.calls'], 1);
  t.equal(s['http.after1.calls'] ?? 0, 0);
  t.type(s['http.stop1.time_us'], 'number');
});

t.test('async filters: the chain turns async at the first Promise and keeps order', async (t) => {
  const { chain } = build([filter('s1', TEST_TYPE), filter('as1', TEST_TYPE, { async: true }), filter('s2', TEST_TYPE), filter('as2', TEST_TYPE, { async: true, reply: 429 }), filter('s3', TEST_TYPE), ROUTER]);
  const i = info();
  const p = chain!.decodeHeaders(req(), i);
  t.ok(p instanceof Promise);
  t.same(await p, { status: 429 });
  t.same(i.metadata.get('trace'), ['s1:dec', 'as1:dec', 's2:dec', 'as2:dec']);
});

t.test('a throwing filter never escapes: fail closed = 500 local reply, fail open = continue', async (t) => {
  const closed = build([filter('thr1', TEST_TYPE, { mode: 'throw' }), filter('n1', TEST_TYPE), ROUTER]).chain!;
  const r = closed.decodeHeaders(req(), info());
  t.same(r, { status: 500, details: 'filter_failed{thr1}' });
  const open = build([filter('thr2', TEST_TYPE, { mode: 'throw', failOpen: true }), filter('n2', TEST_TYPE), ROUTER]).chain!;
  const i = info();
  t.equal(open.decodeHeaders(req(), i), undefined);
  t.same(i.metadata.get('trace'), ['thr2:dec', 'n2:dec']);
  const asyncThrow = build([filter('thr3', TEST_TYPE, { mode: 'throw', async: true }), ROUTER]).chain!;
  t.same(await asyncThrow.decodeHeaders(req(), info()), { status: 500, details: 'filter_failed{thr3}' });
  t.same(await asyncThrow.encodeHeaders(res(), info()), { status: 500, details: 'filter_failed{thr3}' });
  const s = stats.snapshot();
  t.equal(s['http.thr1.errors'], 1);
  t.equal(s['http.thr2.errors'], 1);
  t.equal(s['http.thr2.rejections'], 0);
  t.equal(s['http.thr3.errors'], 2);
});

t.test('per-route config reaches the filter by name; FilterConfig{disabled} skips it', async (t) => {
  const { chain } = build([filter('pr1', TEST_TYPE), filter('pr2', TEST_TYPE), ROUTER]);
  const diag = new Diagnostics();
  const perFilterConfig = {
    pr1: decodePerFilterConfig('pr1', { name: 'pr1', typeUrl: 'type.googleapis.com/test.pilotfish.ProbePerRoute', config: { x: 1 } }, diag, 'routes[0].typed_per_filter_config.pr1'),
    pr2: decodePerFilterConfig('pr2', { name: 'pr2', typeUrl: 'type.googleapis.com/envoy.config.route.v3.FilterConfig', config: { disabled: true } }, diag, 'routes[0].typed_per_filter_config.pr2'),
  };
  t.same(diag.errors, []);
  t.equal(perFilterConfig.pr2, FILTER_DISABLED);
  const i = info({ perFilterConfig });
  chain!.decodeHeaders(req(), i);
  t.same(i.metadata.get('trace'), ['pr1:dec({"x":1})']);

  const wrapped = decodePerFilterConfig('pr1', {
    name: 'pr1', typeUrl: 'envoy.config.route.v3.FilterConfig',
    config: { config: { '@type': 'type.googleapis.com/test.pilotfish.ProbePerRoute', y: 2 } },
  }, diag, 'p');
  t.same(wrapped, { y: 2 });

  const d2 = new Diagnostics();
  t.equal(decodePerFilterConfig('f', { name: 'f', typeUrl: 'x.Unknown', config: {} }, d2, 'vh.typed_per_filter_config.f'), undefined);
  t.match(d2.errors, [{ path: 'vh.typed_per_filter_config.f', message: /unknown per-route config type/ }]);
  const d3 = new Diagnostics();
  decodePerFilterConfig('f', { name: 'f', typeUrl: 'envoy.config.route.v3.FilterConfig', config: { is_optional: true, config: { '@type': 'x.Unknown' } } }, d3, 'p');
  t.same(d3.errors, []);
  t.equal(d3.warnings.length, 1);
});

t.test('describe() lists filters for /config_dump', async (t) => {
  const { chain } = build([filter('d1', TEST_TYPE), filter('skipme', TEST_TYPE, {}, { disabled: true }), ROUTER]);
  t.match(chain!.describe(), { filters: [{ name: 'd1', type_url: TEST_TYPE, kind: 'probe' }], skipped: [{ name: 'skipme', reason: 'disabled' }] });
});

t.test('property: building chains from arbitrary configs never throws', async (t) => {
  const types = [
    'envoy.extensions.filters.http.rbac.v3.RBAC', 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation',
    'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', 'envoy.extensions.filters.http.fault.v3.HTTPFault',
    'envoy.extensions.filters.http.cors.v3.Cors', 'envoy.extensions.filters.http.buffer.v3.Buffer',
    'envoy.extensions.filters.http.router.v3.Router', 'pilotfish.filters.http.module', 'unknown.Type',
  ];
  fc.assert(fc.property(
    fc.array(fc.record({
      name: fc.string(), typeUrl: fc.constantFrom(...types), config: fc.dictionary(fc.string(), fc.jsonValue()),
      disabled: fc.boolean(), isOptional: fc.boolean(),
    }), { maxLength: 4 }),
    (configs) => {
      const diag = new Diagnostics();
      const chain = buildHttpFilterChain(configs, diag, 'f', { stats });
      if (chain === undefined) return diag.errors.length > 0;
      chain.dispose();
      return true;
    },
  ), { numRuns: 300 });
  t.pass();
});

t.test('property: decoding arbitrary typed_per_filter_config never throws', async (t) => {
  const types = [
    'envoy.extensions.filters.http.rbac.v3.RBACPerRoute', 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute',
    'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', 'envoy.extensions.filters.http.fault.v3.HTTPFault',
    'envoy.extensions.filters.http.cors.v3.CorsPolicy', 'envoy.extensions.filters.http.buffer.v3.BufferPerRoute',
    'envoy.config.route.v3.FilterConfig', 'pilotfish.filters.http.module', 'unknown.Type',
  ];
  fc.assert(fc.property(
    fc.constantFrom(...types), fc.dictionary(fc.string(), fc.jsonValue()),
    (typeUrl, config) => {
      const diag = new Diagnostics();
      const v = decodePerFilterConfig('f', { name: 'f', typeUrl, config }, diag, 'r');
      return v !== undefined || diag.errors.length > 0 || diag.warnings.length > 0 || typeUrl === 'pilotfish.filters.http.module';
    },
  ), { numRuns: 500 });
  t.pass();
});

/** A filter that holds the CPU for `ms` per call: its time_us is known from below. */
registerHttpFilter({
  kind: 'busy',
  typeUrl: 'test.pilotfish.Busy',
  create(cfg): HttpFilter {
    const ms = (cfg.config as { ms: number }).ms;
    return {
      name: cfg.name,
      typeUrl: 'test.pilotfish.Busy',
      failurePolicy: 'FAIL_CLOSED',
      failureStatus: 500,
      describe: () => ({ kind: 'busy', ms }),
      decodeHeaders: () => {
        const end = performance.now() + ms;
        while (performance.now() < end);
        return undefined;
      },
    };
  },
});

t.test('time_us: exact for a first call, estimated from one call in 16 after (calls stay exact)', async (t) => {
  const { chain } = build([filter('busy1', 'test.pilotfish.Busy', { ms: 1 }), ROUTER]);
  chain!.decodeHeaders(req(), info());
  let s = stats.snapshot();
  t.equal(s['http.busy1.calls'], 1);
  t.ok(s['http.busy1.time_us']! >= 1000 && s['http.busy1.time_us']! < 50_000, `one 1 ms call: ${s['http.busy1.time_us']} µs`);
  for (let i = 1; i < 48; i++) chain!.decodeHeaders(req(), info());
  s = stats.snapshot();
  t.equal(s['http.busy1.calls'], 48, 'every call counted');
  // 3 timed calls of >= 1 ms each, scaled to 48 calls.
  t.ok(s['http.busy1.time_us']! >= 48_000 && s['http.busy1.time_us']! < 48 * 50_000, `48 calls of 1 ms: ${s['http.busy1.time_us']} µs`);
});
