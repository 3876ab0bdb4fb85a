import t from 'tap';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, decodePerFilterConfig } from '../../src/index.js';
import { ROUTER, filter, info, req, res } from '../helpers.js';

const HM = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';
const add = (key: string, value: string, append_action?: string) => ({ append: { header: { key, value }, ...(append_action ? { append_action } : {}) } });

t.test('request and response mutations with every append action', async (t) => {
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('hm', HM, {
    mutations: {
      request_mutations: [
        add('x-append', 'b'), add('x-absent', 'new', 'ADD_IF_ABSENT'), add('x-present', 'new', 'ADD_IF_ABSENT'),
        add('x-over', 'new', 'OVERWRITE_IF_EXISTS_OR_ADD'), add('x-only-if', 'new', 'OVERWRITE_IF_EXISTS'),
        { remove: 'X-Secret' }, { remove_on_match: { key_matcher: { prefix: 'x-internal-' } } },
      ],
      response_mutations: [add('server', 'pilotfish', 'OVERWRITE_IF_EXISTS_OR_ADD'), { remove: 'x-powered-by' }],
    },
  }), ROUTER], diag, 'f');
  t.same(diag.errors, []);
  const r = req({}, { 'x-append': 'a', 'x-present': 'old', 'x-over': 'old', 'x-secret': 's', 'x-internal-a': '1', 'x-internal-b': '2', keep: 'k' });
  t.equal(chain!.decodeHeaders(r, info()), undefined);
  t.same(r.headers, { 'x-append': ['a', 'b'], 'x-present': 'old', 'x-over': 'new', keep: 'k', 'x-absent': 'new' });
  const s = res(200, { 'x-powered-by': 'express' });
  chain!.encodeHeaders(s, info());
  t.same(s.headers, { server: 'pilotfish' });
});

t.test('per-route mutations: filter-level wins by default, route wins with most_specific_header_mutations_wins', async (t) => {
  const diag = new Diagnostics();
  const perRoute = decodePerFilterConfig('hm', {
    name: 'hm', typeUrl: 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute',
    config: { mutations: { request_mutations: [add('x-who', 'route', 'OVERWRITE_IF_EXISTS_OR_ADD')] } },
  }, diag, 'r');
  for (const [wins, want] of [[false, 'filter'], [true, 'route']] as const) {
    const chain = buildHttpFilterChain([filter('hm', HM, {
      most_specific_header_mutations_wins: wins,
      mutations: { request_mutations: [add('x-who', 'filter', 'OVERWRITE_IF_EXISTS_OR_ADD')] },
    }), ROUTER], diag, 'f');
    const r = req();
    chain!.decodeHeaders(r, info({ perFilterConfig: { hm: perRoute } }));
    t.equal(r.headers['x-who'], want);
  }
  t.same(diag.errors, []);
});

t.test('invalid mutations are reported with paths', async (t) => {
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('hm', HM, {
    mutations: { request_mutations: [{ remove: ':path' }, add('host', 'x'), {}, add('x', 'y', 'SOMETIMES'), { remove: 'a', append: {} }] },
  }), ROUTER], diag, 'f');
  t.equal(chain, undefined);
  t.same(diag.errors.map((e) => e.path), [
    'f[0].typed_config.mutations.request_mutations[0].remove',
    'f[0].typed_config.mutations.request_mutations[1].append.header.key',
    'f[0].typed_config.mutations.request_mutations[2]',
    'f[0].typed_config.mutations.request_mutations[3].append.append_action',
    'f[0].typed_config.mutations.request_mutations[4]',
  ]);
});
