import t from 'tap';
import * as http from 'node:http';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';
import { parseGrpcTimeout } from '../../src/http/connection-manager.js';

t.test('grpc-timeout parsing', async (t) => {
  t.equal(parseGrpcTimeout('200m'), 200);
  t.equal(parseGrpcTimeout('2S'), 2000);
  t.equal(parseGrpcTimeout('1M'), 60000);
  t.equal(parseGrpcTimeout('1H'), 3600000);
  t.equal(parseGrpcTimeout('1500u'), 2, 'sub-millisecond rounds up');
  t.equal(parseGrpcTimeout('1n'), 1);
  t.equal(parseGrpcTimeout('123456789m'), undefined, 'more than 8 digits');
  t.equal(parseGrpcTimeout('10'), undefined, 'no unit');
  t.equal(parseGrpcTimeout('-1S'), undefined);
  t.equal(parseGrpcTimeout(undefined), undefined);
});

t.test('max_stream_duration: HCM, route override, grpc-timeout cap', async (t) => {
  const up = await startUpstream(t, 'up', (req, res) => {
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? '0');
    if (req.url?.startsWith('/stall')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => res.end('rest'), ms);
      return;
    }
    setTimeout(() => res.end('done'), ms);
  });
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/nolimit" }
                route: { cluster: up, max_stream_duration: { max_stream_duration: 0s } }
              - match: { prefix: "/short" }
                route: { cluster: up, max_stream_duration: { max_stream_duration: 0.15s } }
              - match: { prefix: "/grpc" }
                route: { cluster: up, max_stream_duration: { grpc_timeout_header_max: 1.2s } }
              - match: { prefix: "/" }
                route: { cluster: up }`, staticCluster('up', [up.port]), '          common_http_protocol_options: { max_stream_duration: 1.5s }'));
  const port = p.port();

  let start = performance.now();
  let r = await get(port, '/slow?ms=8000');
  let took = performance.now() - start;
  t.equal(r.status, 408, 'HCM max_stream_duration: 408');
  t.equal(r.body, 'downstream duration timeout');
  // Limits far apart (0.1 s, 0.15 s, 1.2 s, 1.5 s) so the checks hold on a busy machine.
  t.ok(took >= 1450 && took < 6000, `after ~1.5 s (${took.toFixed(0)} ms)`);

  r = await get(port, '/fast?ms=10');
  t.equal(r.status, 200, 'within the limit');

  r = await get(port, '/nolimit?ms=2000');
  t.equal(r.status, 200, 'route max_stream_duration 0 disables the HCM limit');

  start = performance.now();
  r = await get(port, '/short?ms=8000');
  took = performance.now() - start;
  t.equal(r.status, 408, 'route max_stream_duration');
  t.ok(took < 1200, `route limit (150 ms) replaces the HCM one (${took.toFixed(0)} ms)`);

  start = performance.now();
  r = await get(port, '/grpc?ms=8000', { 'grpc-timeout': '100m' });
  took = performance.now() - start;
  t.equal(r.status, 408, 'grpc-timeout honoured');
  t.ok(took < 1000, `grpc-timeout 100m (${took.toFixed(0)} ms)`);

  start = performance.now();
  r = await get(port, '/grpc?ms=8000', { 'grpc-timeout': '10S' });
  took = performance.now() - start;
  t.equal(r.status, 408);
  t.ok(took >= 1150 && took < 6000, `grpc-timeout capped by grpc_timeout_header_max 1.2 s (${took.toFixed(0)} ms)`);

  r = await get(port, '/grpc?ms=10');
  t.equal(r.status, 200, 'no grpc-timeout: route has no max_stream_duration, the HCM one applies');

  // After the response started: the stream is reset, not answered.
  const outcome = await new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/stall?ms=3000', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(`ended:${res.statusCode}:${body}`));
      res.on('error', () => resolve(`reset after ${res.statusCode}:${body}`));
      res.on('aborted', () => resolve(`reset after ${res.statusCode}:${body}`));
    });
    req.on('error', () => resolve('error'));
  });
  t.equal(outcome, 'reset after 200:partial', 'response started: reset');
  const stats = await (await fetch(`http://127.0.0.1:${p.adminPort}/stats`)).text();
  t.match(stats, /http\.ingress\.downstream_rq_max_duration_reached: 5\b/);
});
