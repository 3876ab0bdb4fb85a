import t from 'tap';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, decodePerFilterConfig, FilterStats } from '../../src/index.js';
import { ROUTER, filter, info, req, res } from '../helpers.js';

// This test's own counters (a proxy passes its own; nothing is process-wide).
const stats = new FilterStats();

const diag = new Diagnostics();
const chain = buildHttpFilterChain([filter('cors', 'envoy.extensions.filters.http.cors.v3.Cors'), ROUTER], diag, 'f', { stats })!;
const policy = decodePerFilterConfig('cors', {
  name: 'cors', typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
  config: {
    allow_origin_string_match: [{ exact: 'https://app.example.com' }, { suffix: '.trusted.dev' }],
    allow_methods: 'GET, POST', allow_headers: 'content-type,x-token', expose_headers: 'x-trace',
    max_age: '600', allow_credentials: true, forward_not_matching_preflights: false,
  },
}, diag, 'vh.typed_per_filter_config.cors');
const withPolicy = () => info({ perFilterConfig: { cors: policy } });

t.test('config decodes', async (t) => t.same(diag.errors, []));

t.test('preflight from an allowed origin is answered locally', async (t) => {
  const r = chain.decodeHeaders(req({ method: 'OPTIONS' }, { origin: 'https://app.example.com', 'access-control-request-method': 'POST' }), withPolicy());
  t.same(r, {
    status: 200, details: 'cors_response',
    headers: {
      'access-control-allow-origin': 'https://app.example.com', 'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'content-type,x-token', 'access-control-max-age': '600',
      'access-control-allow-credentials': 'true',
    },
  });
});

t.test('actual request from an allowed origin gets CORS response headers', async (t) => {
  const i = withPolicy();
  t.equal(chain.decodeHeaders(req({}, { origin: 'https://a.trusted.dev' }), i), undefined);
  const r = res();
  chain.encodeHeaders(r, i);
  t.same(r.headers, { 'access-control-allow-origin': 'https://a.trusted.dev', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-trace' });
});

t.test('disallowed origin: no headers; preflight refused when not forwarded', async (t) => {
  const i = withPolicy();
  t.equal(chain.decodeHeaders(req({}, { origin: 'https://evil.com' }), i), undefined);
  const r = res();
  chain.encodeHeaders(r, i);
  t.same(r.headers, {});
  t.match(chain.decodeHeaders(req({ method: 'OPTIONS' }, { origin: 'https://evil.com', 'access-control-request-method': 'GET' }), withPolicy()), { status: 403 });
  t.ok(stats.snapshot()['http.cors.origin_invalid']! >= 2);
});

t.test('no policy on the route: the filter does nothing', async (t) => {
  t.equal(chain.decodeHeaders(req({ method: 'OPTIONS' }, { origin: 'https://app.example.com', 'access-control-request-method': 'POST' }), info()), undefined);
});

t.test('an origin matcher that matches "*" allows any origin, as Envoy\'s example config relies on', async (t) => {
  const d = new Diagnostics();
  for (const matcher of [{ safe_regex: { regex: '\\*' } }, { exact: '*' }, { prefix: '*' }]) {
    const star = decodePerFilterConfig('cors', {
      name: 'cors', typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
      config: { allow_origin_string_match: [matcher], allow_methods: 'GET', forward_not_matching_preflights: true },
    }, d, 'vh.typed_per_filter_config.cors');
    const i = info({ perFilterConfig: { cors: star } });
    const r = chain.decodeHeaders(req({ method: 'OPTIONS' }, { origin: 'https://anything.example', 'access-control-request-method': 'GET' }), i);
    t.match(r, { status: 200, headers: { 'access-control-allow-origin': 'https://anything.example' } }, `${JSON.stringify(matcher)}: preflight answered, not forwarded`);
  }
  t.same(d.errors, []);
});
