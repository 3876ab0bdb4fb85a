/**
 * The whole proxy from YAML: an ORIGINAL_DST cluster with use_http_header routes each
 * request to the address in x-envoy-original-dst-host (no interception needed for this
 * path), refuses to loop back into its own listener, and pipe endpoints work behind
 * both the HTTP router and the TCP proxy.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootstrapYaml, get, startProxyYaml, startUpstream } from '../helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilotfish-od-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const passthrough = `
  - name: PassthroughCluster
    type: ORIGINAL_DST
    connect_timeout: 1s
    lb_policy: CLUSTER_PROVIDED
    cleanup_interval: 60s
    original_dst_lb_config: { use_http_header: true }`;
const allTo = (cluster: string) => `
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: ${cluster} } }]`;

t.test('x-envoy-original-dst-host picks the upstream per request; none -> 503 UH; own listener -> 503, no loop', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const p = await startProxyYaml(t, bootstrapYaml(allTo('PassthroughCluster'), passthrough));
  const port = p.port();
  let r = await get(port, '/one', { 'x-envoy-original-dst-host': `127.0.0.1:${a.port}` });
  t.equal(r.status, 200);
  t.equal(r.headers['x-upstream'], 'a');
  r = await get(port, '/two', { 'x-envoy-original-dst-host': `127.0.0.1:${b.port}` });
  t.equal(r.headers['x-upstream'], 'b');
  t.equal(b.requests[0]?.url, '/two');

  r = await get(port, '/none');
  t.equal(r.status, 503, 'no header and no intercepted destination');
  t.match(r.body, /no healthy upstream/);

  r = await get(port, '/loop', { 'x-envoy-original-dst-host': `127.0.0.1:${port}` });
  t.equal(r.status, 503, 'the proxy\'s own listener is refused');
  const rt = p.server.clusterRuntimes().get('PassthroughCluster')!;
  t.equal(rt.originalDst?.size, 2, 'two hosts created, none for the loop');
  const stats = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: p.adminPort, path: '/stats', agent: false }, (res) => {
      let s = '';
      res.on('data', (c) => (s += c));
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  t.match(stats, /cluster\.PassthroughCluster\.original_dst_loop_refused: 1/);
  t.match(stats, /cluster\.PassthroughCluster\.membership_total: 2/);
  const clusters = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: p.adminPort, path: '/clusters', agent: false }, (res) => {
      let s = '';
      res.on('data', (c) => (s += c));
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  t.match(clusters, new RegExp(`PassthroughCluster::127\\.0\\.0\\.1:${a.port}::`), '/clusters lists the hosts ORIGINAL_DST created');
});

t.test('pipe endpoints behind the HTTP router and the TCP proxy', async (t) => {
  const httpSock = path.join(dir, 'http.sock');
  const server = http.createServer((req, res) => res.end(`uds ${req.url} ${req.headers.host}`));
  await new Promise<void>((r) => server.listen(httpSock, r));
  t.teardown(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));
  const echoSock = path.join(dir, 'echo.sock');
  const echo = net.createServer((s) => s.on('data', (d) => s.write(`echo:${d}`)));
  await new Promise<void>((r) => echo.listen(echoSock, r));
  t.teardown(() => new Promise((r) => echo.close(r)));

  const pipeCluster = (name: string, sock: string) => `
  - name: ${name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: ${name}
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: "${sock}" } } } }] }]`;
  const yaml = bootstrapYaml(allTo('local_app'), pipeCluster('local_app', httpSock) + pipeCluster('echo', echoSock)).replace('  clusters:\n', `  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: echo
  clusters:
`);
  const p = await startProxyYaml(t, yaml);
  const r = await get(p.port('main'), '/hello', { host: 'app.local' });
  t.equal(r.status, 200);
  t.equal(r.body, 'uds /hello app.local', 'HTTP over the Unix socket, Host kept');
  const got = await new Promise<string>((resolve, reject) => {
    const s = net.connect(p.port('tcp'), '127.0.0.1', () => s.write('ping'));
    s.once('data', (d) => { resolve(String(d)); s.destroy(); });
    s.on('error', reject);
  });
  t.equal(got, 'echo:ping', 'TCP proxy to a pipe endpoint');
});
