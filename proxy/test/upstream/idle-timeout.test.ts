import t from 'tap';
import fc from 'fast-check';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { decodeCluster, Diagnostics } from '../../../config/src/index.js';
import { get, startProxyYaml } from '../helpers.js';
import { idleOptions } from '../../src/upstream/pool.js';

// Cluster common_http_protocol_options.idle_timeout (istiod sets it from DestinationRule
// connectionPool.http.idleTimeout): an idle upstream connection is closed after it.

const HPO = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

t.test('idle_timeout decodes to milliseconds, with no warning', async () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 86_400 }), fc.integer({ min: 0, max: 999 }), (s, ms) => {
    const diag = new Diagnostics();
    const c = decodeCluster({
      name: 'c', type: 'STATIC', connect_timeout: '1s',
      typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': HPO, common_http_protocol_options: { idle_timeout: `${s}.${String(ms).padStart(3, '0')}s` }, explicit_http_config: { http_protocol_options: {} } } },
    }, diag, 'c');
    return c?.upstreamIdleTimeout === s * 1000 + ms && diag.warnings.length === 0 && diag.errors.length === 0;
  }), { numRuns: 200 });
  fc.assert(fc.property(fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: undefined }), (idle) => {
    const o = idleOptions(idle);
    return o.keepAliveTimeout > 0 && o.keepAliveTimeout <= o.keepAliveMaxTimeout && (idle === undefined || idle === 0 || o.keepAliveTimeout === idle);
  }));
});

t.test('an idle upstream connection closes after idle_timeout; without it, it stays open', async (t) => {
  const closedAfter: number[] = [];
  const server = http.createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: Socket) => {
    let last = Date.now();
    s.on('data', () => (last = Date.now()));
    s.on('close', () => closedAfter.push(Date.now() - last));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const port = (server.address() as AddressInfo).port;
  const cluster = (name: string, idle: string) => `
  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": ${HPO}
        explicit_http_config: { http_protocol_options: {} }
        common_http_protocol_options: { ${idle} }
    load_assignment: { cluster_name: ${name}, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }] }`;
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
          route_config: { virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: /short }, route: { cluster: short } }, { match: { prefix: / }, route: { cluster: default } }] }] }
  clusters:${cluster('short', 'idle_timeout: 0.3s')}${cluster('default', 'max_requests_per_connection: 100')}
`);
  t.equal((await get(p.port('l'), '/short')).status, 200);
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(closedAfter.length, 1, 'the idle_timeout cluster\'s connection was closed by the proxy');
  t.ok(closedAfter[0]! >= 250 && closedAfter[0]! < 1100, `closed after about 0.3 s idle (${closedAfter[0]} ms)`);
  t.equal((await get(p.port('l'), '/other')).status, 200);
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(closedAfter.length, 1, 'without idle_timeout the connection stays open longer');
});
