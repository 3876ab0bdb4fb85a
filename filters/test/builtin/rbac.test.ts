import t from 'tap';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, decodePerFilterConfig, FilterStats, FILTER_DISABLED } from '../../src/index.js';
import { ROUTER, filter, info, req } from '../helpers.js';

// This test's own counters (a proxy passes its own; nothing is process-wide).
const stats = new FilterStats();

const RBAC = 'envoy.extensions.filters.http.rbac.v3.RBAC';

function chainOf(name: string, config: Record<string, unknown>) {
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter(name, RBAC, config), ROUTER], diag, 'http_filters', { stats });
  return { chain, diag };
}

const spiffe = (id: string) => ({ authenticated: { principal_name: { exact: id } } });

t.test('ALLOW: SPIFFE principal + path/method permissions; everything else 403 with Envoy details', async (t) => {
  const { chain, diag } = chainOf('rbac-allow', {
    rules: {
      action: 'ALLOW',
      policies: {
        'frontend-reads': {
          permissions: [{ and_rules: { rules: [
            { header: { name: ':method', string_match: { exact: 'GET' } } },
            { url_path: { path: { prefix: '/api/' } } },
          ] } }],
          principals: [spiffe('spiffe://mesh.local/ns/default/sa/frontend')],
        },
        'ops-anything': {
          permissions: [{ any: true }],
          principals: [{ and_ids: { ids: [
            { authenticated: { principal_name: { safe_regex: { regex: 'spiffe://mesh\\.local/ns/ops/sa/.*' } } } },
            { header: { name: 'x-ops', present_match: true } },
          ] } }],
        },
      },
    },
  });
  t.same(diag.errors, []);
  const fe = info({ peerIdentity: 'spiffe://mesh.local/ns/default/sa/frontend' });
  t.equal(chain!.decodeHeaders(req({ path: '/api/users?x=1' }), fe), undefined, 'query string ignored by url_path');
  t.match(chain!.decodeHeaders(req({ method: 'POST', path: '/api/users' }), fe), {
    status: 403, body: 'RBAC: access denied', details: 'rbac_access_denied_matched_policy[none]',
  });
  t.match(chain!.decodeHeaders(req({ path: '/api/x' }), info()), { status: 403 }, 'no mTLS peer');
  const ops = info({ peerIdentity: 'spiffe://mesh.local/ns/ops/sa/admin' });
  t.equal(chain!.decodeHeaders(req({ method: 'DELETE', path: '/x' }, { 'x-ops': '1' }), ops), undefined);
  t.match(chain!.decodeHeaders(req({ method: 'DELETE', path: '/x' }), ops), { status: 403 });
  const s = stats.snapshot();
  t.equal(s['http.rbac-allow.allowed'], 2);
  t.equal(s['http.rbac-allow.denied'], 3);
});

t.test('DENY: matched policy name in details; not_rule, or_rules, source ip', async (t) => {
  const { chain, diag } = chainOf('rbac-deny', {
    rules: {
      action: 'DENY',
      policies: {
        'block-admin-from-outside': {
          permissions: [{ or_rules: { rules: [{ url_path: { path: { prefix: '/admin' } } }, { header: { name: 'x-debug', exact_match: 'on' } }] } }],
          principals: [{ not_id: { direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } } }],
        },
      },
    },
  });
  t.same(diag.errors, []);
  t.equal(chain!.decodeHeaders(req({ path: '/admin/x' }), info({ downstreamAddress: '10.1.2.3' })), undefined);
  t.match(chain!.decodeHeaders(req({ path: '/admin/x' }), info({ downstreamAddress: '::ffff:192.168.1.1' })), {
    status: 403, details: 'rbac_access_denied_matched_policy[block-admin-from-outside]',
  });
  t.match(chain!.decodeHeaders(req({}, { 'x-debug': 'on' }), info({ downstreamAddress: '192.168.1.1' })), { status: 403 });
  t.equal(chain!.decodeHeaders(req({ path: '/public' }), info({ downstreamAddress: '192.168.1.1' })), undefined);
});

t.test('shadow rules: never block, count and record the would-be result', async (t) => {
  const { chain } = chainOf('rbac-shadow', {
    shadow_rules: {
      action: 'ALLOW',
      policies: { p: { permissions: [{ url_path: { path: { exact: '/ok' } } }], principals: [{ any: true }] } },
    },
    shadow_rules_stat_prefix: 'istio_dry_run_',
  });
  const i1 = info();
  t.equal(chain!.decodeHeaders(req({ path: '/nope' }), i1), undefined);
  // Envoy's namespace and keys (prefixed with shadow_rules_stat_prefix; no policy id when none matched).
  t.same(i1.metadata.get('envoy.filters.http.rbac'), { istio_dry_run_shadow_engine_result: 'denied' });
  const i2 = info();
  t.equal(chain!.decodeHeaders(req({ path: '/ok' }), i2), undefined);
  t.same(i2.metadata.get('envoy.filters.http.rbac'), { istio_dry_run_shadow_effective_policy_id: 'p', istio_dry_run_shadow_engine_result: 'allowed' });
  const s = stats.snapshot();
  t.equal(s['http.rbac-shadow.istio_dry_run_shadow_denied'], 1);
  t.equal(s['http.rbac-shadow.istio_dry_run_shadow_allowed'], 1);
});

t.test('RBACPerRoute replaces the rules for a route; without rbac it disables the filter', async (t) => {
  const { chain } = chainOf('rbac-route', { rules: { action: 'ALLOW', policies: {} } });
  t.match(chain!.decodeHeaders(req(), info()), { status: 403 }, 'ALLOW with no policies denies all');
  const diag = new Diagnostics();
  const open = decodePerFilterConfig('rbac-route', {
    name: 'rbac-route', typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute',
    config: { rbac: { rules: { action: 'DENY', policies: {} } } },
  }, diag, 'r');
  const off = decodePerFilterConfig('rbac-route', {
    name: 'rbac-route', typeUrl: 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute', config: {},
  }, diag, 'r');
  t.same(diag.errors, []);
  t.equal(off, FILTER_DISABLED);
  t.equal(chain!.decodeHeaders(req(), info({ perFilterConfig: { 'rbac-route': open } })), undefined);
  t.equal(chain!.decodeHeaders(req(), info({ perFilterConfig: { 'rbac-route': off } })), undefined);
});

t.test('bad config: path-prefixed errors, no throw', async (t) => {
  const { chain, diag } = chainOf('rbac-bad', {
    rules: {
      action: 'MAYBE',
    },
    shadow_rules: {
      policies: {
        p: {
          permissions: [{ url_path: { path: { safe_regex: { regex: '(' } } } }, { metadata: {} }, {}],
          principals: [{ remote_ip: { address_prefix: 'not-an-ip' } }],
          condition: {},
        },
        q: { permissions: [], principals: [{ any: true }] },
      },
    },
  });
  t.equal(chain, undefined);
  const paths = diag.errors.map((e) => e.path);
  t.ok(paths.includes('http_filters[0].typed_config.rules.action'));
  t.ok(paths.includes('http_filters[0].typed_config.shadow_rules.policies.p.condition'));
  t.ok(paths.includes('http_filters[0].typed_config.shadow_rules.policies.q.permissions'));
});

t.test('a failing RBAC filter fails closed with 403', async (t) => {
  const { chain } = chainOf('rbac-fail', { rules: { action: 'ALLOW', policies: { p: { permissions: [{ any: true }], principals: [{ header: { name: 'x', exact_match: 'y' } }] } } } });
  const bad = req();
  // A header map whose access throws stands in for a bug inside the filter.
  bad.headers = new Proxy({}, { get() { throw new Error('broken'); } });
  t.same(chain!.decodeHeaders(bad, info()), { status: 403, details: 'filter_failed{rbac-fail}' });
});
