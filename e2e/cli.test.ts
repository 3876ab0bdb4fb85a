import t from 'tap';
import * as http from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { bootstrapYaml, get, staticCluster } from '../proxy/test/helpers.js';
import { pilotfish, pilotfishSync } from '../test-support/cli.js';
import { until } from '../test-support/wait.js';

// End-to-end: the real CLI (compiled, as `npx pilotfish` runs it) as a separate process.
const run = (args: string[]) => pilotfishSync(args);

const dir = mkdtempSync(join(tmpdir(), 'pilotfish-e2e-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('every command has --help', async (t) => {
  for (const args of [['--help'], ['proxy', '--help'], ['example', '--help'], ['certs', '--help'], ['controlplane', '--help'], ['fastpath', '--help']]) {
    const r = run(args);
    t.equal(r.status, 0, `${args.join(' ')} exits 0`);
    t.match(r.stdout, /Usage|usage/, `${args.join(' ')} prints usage`);
  }
});

t.test('bad flags and bad config: one line naming the problem, non-zero exit', async (t) => {
  let r = run(['proxy', '--bogus']);
  t.equal(r.status, 2);
  t.match(r.stderr, /^pilotfish proxy: .*--bogus.*\n$/);
  r = run(['proxy']);
  t.equal(r.status, 2);
  t.match(r.stderr, /--config FILE is required/);
  r = run(['frobnicate']);
  t.equal(r.status, 2);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, `static_resources:
  clusters:
  - name: c
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 99999 } } }
`);
  r = run(['proxy', '--config', bad]);
  t.equal(r.status, 1);
  t.match(r.stderr, /static_resources\.clusters\[0\]\.load_assignment\.endpoints\[0\]\.lb_endpoints\[0\]\.endpoint\.address\.socket_address\.port_value: must be between 0 and 65535/);
  r = run(['proxy', '--config', join(dir, 'missing.yaml')]);
  t.equal(r.status, 1);
  t.match(r.stderr, /cannot read config file/);
  const router = join(dir, 'router.yaml');
  writeFileSync(router, `static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { virtual_hosts: [{ name: v, domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }] }
          http_filters: [{ name: nope, typed_config: { "@type": type.googleapis.com/does.not.Exist } }]
`);
  r = run(['proxy', '--config', router, '--mode', 'validate']);
  t.equal(r.status, 1, 'validate mode builds filter chains too');
  t.match(r.stderr, /http_filters\[0\]\.typed_config: unknown filter type/);
});

t.test('serves traffic as a process and drains gracefully on SIGTERM', async (t) => {
  let release: (() => void) | undefined;
  const upstream = http.createServer((req, res) => {
    if (req.url === '/slow') release = () => res.end('slow done');
    else res.end('fast');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => { upstream.closeAllConnections(); upstream.close(); });
  const upPort = (upstream.address() as AddressInfo).port;
  const cfg = join(dir, 'proxy.yaml');
  writeFileSync(cfg, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`, staticCluster('up', [upPort])));
  const proxy = pilotfish(t, ['proxy', '--config', cfg, '--drain-time-s', '5'], { compiled: true });
  const port = Number((await proxy.waitFor(/"listener started","listener":"main","address":"127\.0\.0\.1:(\d+)"/))[1]);
  const adminPort = Number((await proxy.waitFor(/"admin listening","address":"127\.0\.0\.1:(\d+)"/))[1]);
  t.equal((await get(port, '/')).body, 'fast');
  t.equal((await get(adminPort, '/ready')).status, 200);

  const slow = get(port, '/slow').then((r) => ({ status: r.status, body: r.body }));
  await until('the slow request to reach the upstream', () => release !== undefined);
  const exited = proxy.stop('SIGTERM');
  // Draining: the listener stops accepting (once the process has handled the signal),
  // the in-flight request still completes.
  await until('the listener to refuse new connections after SIGTERM', () => get(port, '/').then(() => false, () => true));
  t.pass('new connections are refused while draining');
  release!();
  t.same(await slow, { status: 200, body: 'slow done' }, 'in-flight request finished during drain');
  t.equal(await exited, 0, 'exits 0 after draining');
});
