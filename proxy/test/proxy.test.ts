import t from 'tap';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { bootstrapYaml, get, refusedHost, startProxyYaml, startUpstream, staticCluster } from './helpers.js';
import { until } from '../../test-support/wait.js';

t.test('routes by virtual host and path, rewrites, direct responses and redirects', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: api
              domains: ["api.example.com", "api.example.com:*"]
              routes:
              - match: { prefix: "/v1/" }
                route: { cluster: b, prefix_rewrite: "/", host_rewrite_literal: "b.internal" }
              - match: { prefix: "/" }
                route: { cluster: a }
            - name: wild
              domains: ["*.example.com"]
              routes:
              - match: { path: "/exact", case_sensitive: false }
                direct_response: { status: 202, body: { inline_string: "exact" } }
              - match: { prefix: "/old" }
                redirect: { path_redirect: "/new", response_code: PERMANENT_REDIRECT }
            - name: default
              domains: ["*"]
              routes:
              - match: { prefix: "/a" }
                route: { cluster: a }`, staticCluster('a', [a.port]) + staticCluster('b', [b.port])));
  const port = p.port();

  let r = await get(port, '/v1/users?x=1', { host: 'api.example.com' });
  t.equal(r.status, 200);
  t.equal(JSON.parse(r.body).service, 'b', 'prefix route on exact domain goes to b');
  t.equal(b.requests.at(-1)?.url, '/users?x=1', 'prefix rewritten, query kept');
  t.equal(b.requests.at(-1)?.headers.host, 'b.internal', 'host rewritten');

  r = await get(port, '/EXACT', { host: 'www.example.com' });
  t.equal(r.status, 202, 'suffix wildcard + case-insensitive exact path -> direct response');
  t.equal(r.body, 'exact');

  r = await get(port, '/old?q=1', { host: 'www.example.com' });
  t.equal(r.status, 308);
  t.equal(r.headers.location, 'http://www.example.com/new?q=1');

  r = await get(port, '/zzz', { host: 'other.test' });
  t.equal(r.status, 404, 'no route: 404');

  r = await get(port, '/a/b', { host: 'other.test' });
  t.equal(JSON.parse(r.body).service, 'a', 'catch-all virtual host');
});

t.test('sets Envoy headers and strips hop-by-hop ones', async (t) => {
  const a = await startUpstream(t, 'a');
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              response_headers_to_add: [{ header: { key: x-vh, value: yes } }]
              routes:
              - match: { prefix: "/" }
                route: { cluster: a }
                request_headers_to_add: [{ header: { key: x-added, value: "1" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }]
                request_headers_to_remove: [x-secret]`, staticCluster('a', [a.port]), '          use_remote_address: true'));
  const r = await get(p.port(), '/h', { host: 'x', connection: 'keep-alive, x-hop', 'x-hop': 'drop me', 'x-secret': 's', 'x-forwarded-for': '203.0.113.7', 'x-added': 'old' });
  t.equal(r.status, 200);
  const seen = a.requests[0]!.headers;
  t.match(seen['x-request-id'], /^[0-9a-f-]{36}$/, 'x-request-id generated');
  t.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'edge proxy appends the peer to XFF');
  t.equal(seen['x-forwarded-proto'], 'http');
  t.notOk(seen['x-hop'], 'header named in Connection removed');
  t.notOk(seen['x-secret'], 'request_headers_to_remove applied');
  t.equal(seen['x-added'], '1', 'request_headers_to_add overwrote');
  t.equal(r.headers.server, 'pilotfish');
  t.match(r.headers['x-envoy-upstream-service-time'], /^\d+$/);
  t.equal(r.headers['x-vh'], 'yes', 'virtual host response header added');
  t.equal(r.headers['x-upstream'], 'a');
});

t.test('weighted clusters split traffic by weight', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { weighted_clusters: { clusters: [{ name: a, weight: 75 }, { name: b, weight: 25 }] } }`,
  staticCluster('a', [a.port]) + staticCluster('b', [b.port])));
  for (let i = 0; i < 400; i++) await get(p.port(), '/', { host: 'x' });
  const share = a.requests.length / 400;
  t.ok(share > 0.65 && share < 0.85, `cluster a got ${(share * 100).toFixed(1)}% (want ~75%)`);
});

t.test('round robin spreads requests over the endpoints of a cluster', async (t) => {
  const ups = [await startUpstream(t, 'u0'), await startUpstream(t, 'u1'), await startUpstream(t, 'u2')];
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: c } }]`, staticCluster('c', ups.map((u) => u.port))));
  for (let i = 0; i < 30; i++) await get(p.port(), '/', { host: 'x' });
  t.same(ups.map((u) => u.requests.length), [10, 10, 10]);
});

t.test('upstream failures map to Envoy statuses and response flags', async (t) => {
  const slow = await startUpstream(t, 'slow', (_req, res) => setTimeout(() => res.end('late'), 1500));
  // refused for the whole test (a freed port can be taken by a parallel test)
  const dead = await refusedHost(t);
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/slow" }
                route: { cluster: slow, timeout: 0.2s }
              - match: { prefix: "/dead" }
                route: { cluster: dead }
              - match: { prefix: "/missing" }
                route: { cluster_header: x-cluster }`, staticCluster('slow', [slow.port]) + staticCluster('dead', [dead])));
  let r = await get(p.port(), '/slow', { host: 'x' });
  t.equal(r.status, 504, 'route timeout -> 504');
  t.equal(r.body, 'upstream request timeout');
  r = await get(p.port(), '/dead', { host: 'x' });
  t.equal(r.status, 503, 'connection refused -> 503');
  t.match(r.body, /connection failure/);
  r = await get(p.port(), '/missing', { host: 'x', 'x-cluster': 'nope' });
  t.equal(r.status, 503, 'unknown cluster -> 503');
  const stats = await get(p.adminPort!, '/stats');
  t.match(stats.body, /cluster\.slow\.upstream_rq_timeout: 1/);
  t.match(stats.body, /cluster\.dead\.upstream_cx_connect_fail: 1/);
});

t.test('retries 5xx per retry_policy and reports retry stats', async (t) => {
  let n = 0;
  const flaky = await startUpstream(t, 'flaky', (_req, res) => {
    n++;
    res.writeHead(n < 3 ? 503 : 200);
    res.end(n < 3 ? 'no' : 'yes');
  });
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: f, retry_policy: { retry_on: "5xx", num_retries: 3, retry_back_off: { base_interval: 0.001s } } }`,
  staticCluster('f', [flaky.port])));
  const r = await get(p.port(), '/', { host: 'x' }, 'POST', 'payload');
  t.equal(r.status, 200);
  t.equal(r.body, 'yes');
  t.equal(flaky.requests.length, 3, 'two retries');
  t.same(flaky.requests.map((q) => q.body), ['payload', 'payload', 'payload'], 'buffered body replayed on each retry');
  const stats = await get(p.adminPort!, '/stats');
  t.match(stats.body, /cluster\.f\.upstream_rq_retry: 2/);
  t.match(stats.body, /cluster\.f\.upstream_rq_retry_success: 1/);
});

t.test('circuit breaker max_requests answers 503 with x-envoy-overloaded', async (t) => {
  const hold: (() => void)[] = [];
  const up = await startUpstream(t, 'hold', (_req, res) => hold.push(() => res.end('ok')));
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: c } }]`,
  staticCluster('c', [up.port], '    circuit_breakers: { thresholds: [{ max_requests: 1 }] }')));
  const first = get(p.port(), '/', { host: 'x' });
  await until('the first request to reach the upstream', () => hold.length > 0, { intervalMs: 5 });
  const second = await get(p.port(), '/', { host: 'x' });
  t.equal(second.status, 503);
  t.equal(second.headers['x-envoy-overloaded'], 'true');
  hold.forEach((f) => f());
  t.equal((await first).status, 200);
  const stats = await get(p.adminPort!, '/stats');
  t.match(stats.body, /cluster\.c\.upstream_rq_pending_overflow: 1/);
});

t.test('h2c with prior knowledge, and an HTTP/2 upstream', async (t) => {
  const h2up = http2.createServer((req, res) => {
    res.setHeader('x-proto', req.httpVersion);
    res.end(`h2 upstream saw ${req.headers[':path']}`);
  });
  await new Promise<void>((r) => h2up.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => h2up.close(r)));
  const h2port = (h2up.address() as net.AddressInfo).port;
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: h2 } }]`,
  staticCluster('h2', [h2port], `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }`)));
  const client = http2.connect(`http://127.0.0.1:${p.port()}`);
  t.teardown(() => client.close());
  const { status, headers, body } = await new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const s = client.request({ ':path': '/grpc-like', ':authority': 'x' });
    let body = '';
    let headers: http2.IncomingHttpHeaders = {};
    s.on('response', (h) => (headers = h));
    s.setEncoding('utf8');
    s.on('data', (c: string) => (body += c));
    s.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
    s.on('error', reject);
  });
  t.equal(status, 200);
  t.equal(body, 'h2 upstream saw /grpc-like');
  t.equal(headers['x-proto'], '2.0', 'upstream spoke HTTP/2');
  // HTTP/1.1 on the same port still works (codec AUTO).
  const r = await get(p.port(), '/h1', { host: 'x' });
  t.equal(r.body, 'h2 upstream saw /h1');
});

t.test('tcp_proxy joins connections to the cluster', async (t) => {
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => echo.close(r)));
  const p = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: echo
          cluster: echo
  clusters:
${staticCluster('echo', [(echo.address() as net.AddressInfo).port])}
`);
  const sock = net.connect(p.port('tcp'), '127.0.0.1');
  t.teardown(() => sock.destroy());
  const got = await new Promise<string>((resolve) => {
    let d = '';
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => {
      d += c;
      if (d.length >= 11) resolve(d);
    });
    sock.write('hello world');
  });
  t.equal(got, 'hello world');
});
