import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, decodePerFilterConfig } from '../../src/index.js';
import { ROUTER, filter, info, req } from '../helpers.js';

// Properties of the built-in filters' decoders now that they run on config's ObjectReader.

type Json = Record<string, unknown>;
const pct100 = { numerator: 100, denominator: 'HUNDRED' };

/** A valid config per filter, and the objects in it a field can be added to (path below typed_config). */
const CASES: { type: string; config: () => Json; spots: Record<string, (c: Json) => Json> }[] = [
  {
    type: 'envoy.extensions.filters.http.rbac.v3.RBAC',
    config: () => ({ rules: { action: 'ALLOW', policies: { p: { permissions: [{ header: { name: 'x', string_match: { exact: 'y' } } }], principals: [{ any: true }] } } } }),
    spots: {
      '': (c) => c,
      rules: (c) => c['rules'] as Json,
      'rules.policies.p': (c) => ((c['rules'] as Json)['policies'] as Json)['p'] as Json,
      'rules.policies.p.permissions[0]': (c) => ((((c['rules'] as Json)['policies'] as Json)['p'] as Json)['permissions'] as Json[])[0]!,
      'rules.policies.p.permissions[0].header': (c) => (((((c['rules'] as Json)['policies'] as Json)['p'] as Json)['permissions'] as Json[])[0]!)['header'] as Json,
    },
  },
  {
    type: 'envoy.extensions.filters.http.fault.v3.HTTPFault',
    config: () => ({ abort: { http_status: 503, percentage: { ...pct100 } } }),
    spots: { '': (c) => c, abort: (c) => c['abort'] as Json, 'abort.percentage': (c) => (c['abort'] as Json)['percentage'] as Json },
  },
  {
    type: 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
    config: () => ({ stat_prefix: 's', token_bucket: { max_tokens: 1, fill_interval: '1s' }, filter_enabled: { default_value: { ...pct100 } } }),
    spots: { '': (c) => c, token_bucket: (c) => c['token_bucket'] as Json, filter_enabled: (c) => c['filter_enabled'] as Json },
  },
  {
    type: 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation',
    config: () => ({ mutations: { request_mutations: [{ append: { header: { key: 'x-a', value: 'b' } } }, { remove_on_match: { key_matcher: { prefix: 'x-' } } }] } }),
    spots: {
      '': (c) => c,
      mutations: (c) => c['mutations'] as Json,
      'mutations.request_mutations[0]': (c) => ((c['mutations'] as Json)['request_mutations'] as Json[])[0]!,
      'mutations.request_mutations[1].remove_on_match.key_matcher': (c) =>
        ((((c['mutations'] as Json)['request_mutations'] as Json[])[1]!)['remove_on_match'] as Json)['key_matcher'] as Json,
    },
  },
  {
    type: 'envoy.extensions.filters.http.buffer.v3.Buffer',
    config: () => ({ max_request_bytes: 1024 }),
    spots: { '': (c) => c },
  },
  {
    type: 'envoy.extensions.filters.http.router.v3.Router',
    config: () => ({ suppress_envoy_headers: true }),
    spots: { '': (c) => c },
  },
];

function build(type: string, config: Json, name = 'f') {
  const diag = new Diagnostics();
  const router = type.endsWith('.Router');
  const filters = router ? [filter(name, type, config)] : [filter(name, type, config), ROUTER];
  return { chain: buildHttpFilterChain(filters, diag, 'hf'), diag };
}

t.test('the base configs are valid and quiet', async (t) => {
  for (const c of CASES) {
    const { chain, diag } = build(c.type, c.config());
    t.ok(chain, c.type);
    t.same([...diag.errors, ...diag.warnings], [], c.type);
  }
});

t.test('property: building any built-in filter from arbitrary JSON never throws, and reports only under its path', async (t) => {
  fc.assert(fc.property(fc.constantFrom(...CASES.map((c) => c.type)), fc.dictionary(fc.string(), fc.jsonValue()), (type, config) => {
    const { diag } = build(type, config);
    return [...diag.errors, ...diag.warnings].every((p) => p.path.startsWith('hf'));
  }), { numRuns: 600 });
  t.pass();
});

t.test('property: an unknown field is a warning at its exact path, and the filter still builds', async (t) => {
  const spot = fc.constantFrom(...CASES.flatMap((c) => Object.keys(c.spots).map((s) => [c, s] as const)));
  fc.assert(fc.property(spot, fc.stringMatching(/^x[a-z_]{0,12}$/), fc.jsonValue().filter((v) => v !== null), ([c, s], key, value) => {
    const config = c.config();
    c.spots[s]!(config)[key] = value;
    const { chain, diag } = build(c.type, config);
    const path = `hf[0].typed_config${s === '' ? '' : `.${s}`}.${key}`;
    return chain !== undefined && diag.errors.length === 0 && diag.warnings.length === 1 && diag.warnings[0]!.path === path;
  }), { numRuns: 400 });
  t.pass();
});

const randomCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length })
  .map((flips) => [...s].map((ch, i) => (flips[i] ? ch.toUpperCase() : ch.toLowerCase())).join(''));

t.test('property: enums match case-insensitively, as Envoy\'s loader does', async (t) => {
  fc.assert(fc.property(randomCase('DENY'), randomCase('TEN_THOUSAND'), randomCase('DRAFT_VERSION_03'), (action, denominator, xrl) => {
    const rbac = build('envoy.extensions.filters.http.rbac.v3.RBAC', { rules: { action, policies: { p: { permissions: [{ any: true }], principals: [{ any: true }] } } } }, 'rbac-case');
    const denied = rbac.chain?.decodeHeaders(req(), info());
    const fault = build('envoy.extensions.filters.http.fault.v3.HTTPFault', { abort: { http_status: 503, percentage: { numerator: 10_000, denominator } } }, 'fault-case');
    const aborted = fault.chain?.decodeHeaders(req(), info());
    const lrl = build('envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
      { stat_prefix: 's', token_bucket: { max_tokens: 1, fill_interval: '60s' }, enable_x_ratelimit_headers: xrl }, 'lrl-case');
    return [rbac, fault, lrl].every((b) => b.diag.errors.length === 0)
      && (denied as { status?: number } | undefined)?.status === 403
      && (aborted as { status?: number } | undefined)?.status === 503;
  }), { numRuns: 100 });
  t.pass();
});

t.test('per-route configs: unknown fields warned by path, camelCase accepted', async (t) => {
  const d = new Diagnostics();
  decodePerFilterConfig('cors', {
    name: 'cors', typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
    config: { allowOriginStringMatch: [{ exact: 'https://a.example' }], allowMethods: 'GET', allow_origin: ['x'] },
  }, d, 'vh.typed_per_filter_config.cors');
  t.same(d.errors, []);
  t.same(d.warnings.map((w) => w.path), ['vh.typed_per_filter_config.cors.allow_origin']);
});
