import t from 'tap';
import { get, startProxyYaml, startUpstream } from '../helpers.js';

// Route fields istiod sets on every route: max_grpc_timeout (a gRPC request's timeout
// comes from its grpc-timeout header, capped) and the virtual host's
// include_request_attempt_count (x-envoy-attempt-count on each try).

t.test('max_grpc_timeout and include_request_attempt_count', async (t) => {
  let failuresLeft = 0;
  const up = await startUpstream(t, 'up', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/retry' && failuresLeft > 0) {
      failuresLeft--;
      res.writeHead(503).end('busy');
      return;
    }
    setTimeout(() => res.end('done'), Number(url.searchParams.get('d') ?? '0'));
  });
  const p = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              include_request_attempt_count: true
              routes:
              - { match: { prefix: /grpc }, route: { cluster: up, timeout: 0.2s, max_grpc_timeout: 0s } }
              - { match: { prefix: /capped }, route: { cluster: up, timeout: 5s, max_grpc_timeout: 0.3s } }
              - { match: { prefix: /retry }, route: { cluster: up, retry_policy: { retry_on: 5xx, num_retries: 3 } } }
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 1s
    load_assignment: { cluster_name: up, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${up.port} } } } }] }] }
`);
  const port = p.port('l');
  const grpc = (timeout?: string) => ({ 'content-type': 'application/grpc', ...(timeout ? { 'grpc-timeout': timeout } : {}) });
  const timed = async (path: string, headers: Record<string, string>) => {
    const start = Date.now();
    const r = await get(port, path, headers, 'POST', 'x');
    return { status: r.status, body: r.body, ms: Date.now() - start };
  };
  const long = await timed('/grpc?d=500', grpc('2S'));
  t.equal(long.body, 'done', 'a gRPC request with grpc-timeout 2S outlives the 0.2 s route timeout');
  const plain = await timed('/grpc?d=500', { 'content-type': 'text/plain' });
  t.equal(plain.status, 504, 'a non-gRPC request keeps the route timeout');
  const short = await timed('/grpc?d=500', grpc('100m'));
  t.not(short.body, 'done', 'grpc-timeout 100m times out');
  t.ok(short.ms < 450, `and does so early (${short.ms} ms)`);
  const capped = await timed('/capped?d=800', grpc());
  t.not(capped.body, 'done', 'no grpc-timeout: max_grpc_timeout caps it');
  t.ok(capped.ms >= 250 && capped.ms < 750, `at about 0.3 s (${capped.ms} ms)`);

  failuresLeft = 2;
  up.requests.length = 0;
  const retried = await get(port, '/retry');
  t.equal(retried.body, 'done');
  t.same(up.requests.map((r) => r.headers['x-envoy-attempt-count']), ['1', '2', '3'], 'each try says which it is');
});
