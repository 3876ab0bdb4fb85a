/**
 * grpc_stats: Envoy's stat names (generic or per method by the allowlist /
 * stats_for_all_methods), grpc-status of real HTTP/2 gRPC calls through a proxy, and the
 * decoder on arbitrary input.
 */
import t from 'tap';
import fc from 'fast-check';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { decodeBootstrap, Diagnostics, formatProblem } from '../../config/src/index.js';
import { Logger, startProxy } from '../../proxy/src/index.js';
import { decodeGrpcStatsConfig, grpcStatusOf, statPrefix } from '../src/index.js';

t.test('stat prefixes follow Envoy\'s rules', async (t) => {
  const d = new Diagnostics();
  const generic = decodeGrpcStatsConfig({ emit_filter_state: true, stats_for_all_methods: false }, d, 'f')!;
  t.equal(d.warnings.length, 1, 'emit_filter_state is named as without effect');
  t.equal(statPrefix(generic, '/helloworld.Greeter/SayHello'), 'grpc.');
  const all = decodeGrpcStatsConfig({ stats_for_all_methods: { value: true } }, d, 'f')!;
  t.equal(statPrefix(all, '/helloworld.Greeter/SayHello'), 'grpc.helloworld.Greeter.SayHello.');
  const listed = decodeGrpcStatsConfig({ individual_method_stats_allowlist: { services: [{ name: 'helloworld.Greeter', method_names: ['SayHello'] }] }, replace_dots_in_grpc_service_name: true }, d, 'f')!;
  t.equal(statPrefix(listed, '/helloworld.Greeter/SayHello'), 'grpc.helloworld_Greeter.SayHello.');
  t.equal(statPrefix(listed, '/helloworld.Greeter/SayBye'), 'grpc.');
  t.equal(statPrefix(listed, '/not/a/method'), 'grpc.');
  t.same(d.errors, []);
  const bad = new Diagnostics();
  t.equal(decodeGrpcStatsConfig({ stats_for_all_methods: true, individual_method_stats_allowlist: {} }, bad, 'f'), undefined);
  t.match(bad.errors[0]!.message, /only one of/);
});

t.test('grpc-status: trailers first, then headers, else Envoy\'s HTTP mapping', async (t) => {
  t.equal(grpcStatusOf(200, undefined, '0'), 0);
  t.equal(grpcStatusOf(200, '5', undefined), 5);
  t.equal(grpcStatusOf(200, undefined, undefined), 2);
  t.equal(grpcStatusOf(503, undefined, undefined), 14);
  t.equal(grpcStatusOf(404, undefined, undefined), 12);
});

t.test('the decoder reports bad input by path and never throws', async () => {
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('emit_filter_state', 'stats_for_all_methods', 'individual_method_stats_allowlist', 'replace_dots_in_grpc_service_name', 'enable_upstream_stats', 'x'), fc.anything({ maxDepth: 3 })), (cfg) => {
      const d = new Diagnostics();
      const c = decodeGrpcStatsConfig(cfg, d, 'f');
      if (c === undefined && d.errors.length === 0) throw new Error('undefined without an error');
      if (c) statPrefix(c, '/a.B/C');
    }),
    { numRuns: 1000 },
  );
});

t.test('gRPC calls over HTTP/2 through a proxy: total, success, failure in the cluster scope', async (t) => {
  const upstream = http2.createServer();
  upstream.on('stream', (stream, headers) => {
    const fail = String(headers[':path']).endsWith('/Fail');
    // Trailers-only responses (grpc-status in the one HEADERS frame): pilotfish's HTTP/2
    // upstream client (undici) does not deliver response trailers yet, see docs/ISTIO.md.
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': fail ? '13' : '0' }, { endStream: true });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const upPort = (upstream.address() as AddressInfo).port;

  const diag = new Diagnostics();
  const b = decodeBootstrap({
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [{
        name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: 'in',
          route_config: { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'greeter' } }] }] },
          http_filters: [
            { name: 'envoy.filters.http.grpc_stats', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig', stats_for_all_methods: true } },
            { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
          ],
        } }] }],
      }],
      clusters: [{
        name: 'greeter', type: 'STATIC', connect_timeout: '1s',
        typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http2_protocol_options: {} } } },
        load_assignment: { cluster_name: 'greeter', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: upPort } } } }] }] },
      }],
    },
  }, diag);
  if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
  const proxy = await startProxy(b, { log: new Logger('error'), adminPort: 0, drainTimeMs: 100, onQuit: () => undefined });
  t.teardown(() => proxy.stop(0));

  const client = http2.connect(`http://127.0.0.1:${proxy.server.boundPorts.get('l')}`);
  t.teardown(() => client.close());
  const call = (method: string): Promise<string | undefined> => new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': `/helloworld.Greeter/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    req.on('response', (h) => (status = h['grpc-status'] === undefined ? undefined : String(h['grpc-status'])));
    req.on('data', () => undefined);
    req.on('end', () => resolve(status));
    req.on('error', reject);
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
  t.equal(await call('SayHello'), '0');
  t.equal(await call('SayHello'), '0');
  t.equal(await call('Fail'), '13');

  const stats = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: proxy.adminPort!, path: '/stats', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  t.match(stats, /^cluster\.greeter\.grpc\.helloworld\.Greeter\.SayHello\.total: 2$/m);
  t.match(stats, /^cluster\.greeter\.grpc\.helloworld\.Greeter\.SayHello\.success: 2$/m);
  t.match(stats, /^cluster\.greeter\.grpc\.helloworld\.Greeter\.Fail\.failure: 1$/m);
  t.notMatch(stats, /helloworld\.Greeter\.Fail\.success/);
});
