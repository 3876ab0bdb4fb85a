import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeRouteConfiguration, formatProblem } from '../../../config/src/index.js';
import { RouteTable, rewritePath, type RouteRequest } from '../../src/routing/route-table.js';

function table(yaml: string): RouteTable {
  const diag = new Diagnostics();
  const rc = decodeRouteConfiguration(parseYaml(yaml), diag, 'rc');
  if (!rc) throw new Error(diag.errors.map(formatProblem).join('\n'));
  return new RouteTable(rc);
}

const req = (authority: string, path: string, headers: Record<string, string> = {}, method = 'GET'): RouteRequest => ({ authority, path, method, scheme: 'http', headers });

t.test('virtual host selection: exact, longest suffix, longest prefix, then *', async (t) => {
  const rt = table(`
virtual_hosts:
- { name: exact, domains: ["api.example.com"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }
- { name: port, domains: ["api.example.com:8443"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }
- { name: short-suffix, domains: ["*.com"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }
- { name: long-suffix, domains: ["*.example.com"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }
- { name: prefix, domains: ["internal.*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }
- { name: any, domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }`);
  const vh = (a: string) => rt.virtualHostFor(a)?.config.name;
  t.equal(vh('api.example.com'), 'exact');
  t.equal(vh('API.Example.COM'), 'exact', 'case-insensitive');
  t.equal(vh('api.example.com:8443'), 'port', 'exact with port');
  t.equal(vh('api.example.com:9999'), 'exact', 'port stripped when no domain has it');
  t.equal(vh('www.example.com'), 'long-suffix', 'longest suffix wins');
  t.equal(vh('foo.com'), 'short-suffix');
  t.equal(vh('internal.svc'), 'prefix');
  t.equal(vh('10.0.0.1'), 'any');
  t.equal(vh('[::1]:80'), 'any', 'IPv6 literal with port');
});

t.test('ignore_port_in_host_matching (istiod sets it): the port is dropped before matching', async (t) => {
  const rt = table(`
ignore_port_in_host_matching: true
virtual_hosts:
- { name: with-port, domains: ["reviews:9080"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }
- { name: bare, domains: ["reviews", "reviews.default.svc.cluster.local"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }`);
  t.equal(rt.virtualHostFor('reviews:9080')?.config.name, 'bare', 'a domain with a port never matches: the port is ignored');
  t.equal(rt.virtualHostFor('reviews.default.svc.cluster.local:9080')?.config.name, 'bare');
  t.equal(rt.virtualHostFor('[::1]:9080'), undefined, 'IPv6 literals keep their brackets; no catch-all here');
});

t.test('path matching: prefix, exact, regex, separated prefix, case sensitivity; query ignored', async (t) => {
  const rt = table(`
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - { name: exact, match: { path: "/exact" }, direct_response: { status: 200 } }
  - { name: ci, match: { path: "/CaSe", case_sensitive: false }, direct_response: { status: 200 } }
  - { name: regex, match: { safe_regex: { regex: "/users/[0-9]+" } }, direct_response: { status: 200 } }
  - { name: sep, match: { path_separated_prefix: "/api" }, direct_response: { status: 200 } }
  - { name: pre, match: { prefix: "/ap" }, direct_response: { status: 200 } }`);
  const name = (p: string) => rt.match(req('h', p))?.config.name;
  t.equal(name('/exact?x=1'), 'exact', 'query string is not part of the path');
  t.equal(name('/exact/'), undefined);
  t.equal(name('/case'), 'ci');
  t.equal(name('/users/42'), 'regex');
  t.equal(name('/users/42/x'), undefined, 'regex must match the whole path');
  t.equal(name('/api'), 'sep');
  t.equal(name('/api/v1'), 'sep');
  t.equal(name('/apiv1'), 'pre', 'separated prefix needs a / boundary');
});

t.test('header and query parameter matchers, invert, first match wins', async (t) => {
  const rt = table(`
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - name: canary
    match: { prefix: "/", headers: [{ name: x-canary, string_match: { exact: "yes" } }, { name: ":method", string_match: { exact: GET } }] }
    direct_response: { status: 200 }
  - name: debug
    match: { prefix: "/", query_parameters: [{ name: debug, present_match: true }] }
    direct_response: { status: 200 }
  - name: not-json
    match: { prefix: "/", headers: [{ name: content-type, string_match: { contains: json }, invert_match: true }] }
    direct_response: { status: 200 }
  - name: range
    match: { prefix: "/", headers: [{ name: x-n, range_match: { start: 10, end: 20 } }] }
    direct_response: { status: 200 }
  - { name: rest, match: { prefix: "/" }, direct_response: { status: 200 } }`);
  const name = (h: Record<string, string>, path = '/', method = 'GET') => rt.match(req('h', path, h, method))?.config.name;
  t.equal(name({ 'x-canary': 'yes' }), 'canary');
  t.equal(name({ 'x-canary': 'yes', 'content-type': 'application/json' }, '/', 'POST'), 'rest', 'the :method pseudo-header is matched (POST is not canary)');
  t.equal(name({ 'content-type': 'application/json' }, '/?debug'), 'debug');
  t.equal(name({ 'content-type': 'text/plain' }), 'not-json', 'inverted matcher on a present header');
  t.equal(name({ 'content-type': 'application/json', 'x-n': '15' }), 'range');
  t.equal(name({ 'content-type': 'application/json', 'x-n': '20' }), 'rest', 'range end is exclusive');
});

t.test('prefix and regex rewrites keep the query', async (t) => {
  const rt = table(`
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - { match: { prefix: "/old/" }, route: { cluster: c, prefix_rewrite: "/new/" } }
  - { match: { prefix: "/r/" }, route: { cluster: c, regex_rewrite: { pattern: { regex: "^/r/([a-z]+)/(.*)$" }, substitution: "/\\\\2/\\\\1" } } }`);
  const r1 = rt.match(req('h', '/old/a?q=1'))!;
  t.equal(rewritePath(r1, r1.config.action as never, '/old/a?q=1'), '/new/a?q=1');
  const r2 = rt.match(req('h', '/r/abc/xyz?z'))!;
  t.equal(rewritePath(r2, r2.config.action as never, '/r/abc/xyz?z'), '/xyz/abc?z');
});
