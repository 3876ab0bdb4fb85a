import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { bootstrapYaml, get, staticCluster } from '../proxy/test/helpers.js';
import { until } from '../test-support/wait.js';

// End-to-end: the real CLI (compiled, as `npx pilotfish` runs it) as a separate process.
const BIN = new URL('../bin/pilotfish.js', import.meta.url).pathname;

function run(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
}

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

/** Collects a child's output from the start, so no line is missed between two waits. */
function outputOf(child: ChildProcess): { text: () => string; wait: (re: RegExp, ms?: number) => Promise<string> } {
  let buf = '';
  const waiters = new Set<() => void>();
  const on = (d: Buffer) => {
    buf += d.toString();
    for (const w of waiters) w();
  };
  child.stdout?.on('data', on);
  child.stderr?.on('data', on);
  return {
    text: () => buf,
    wait: (re, ms = 60_000) => new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(buf);
        if (!m) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(m[0]);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${re}; got: ${buf}`));
      }, ms);
      waiters.add(check);
      check();
    }),
  };
}

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
  const child = spawn(process.execPath, [BIN, 'proxy', '--config', cfg, '--drain-time-s', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const out = outputOf(child);
  const line = await out.wait(/"listener started","listener":"main","address":"127\.0\.0\.1:(\d+)"/);
  const port = Number(/:(\d+)"$/.exec(line)![1]);
  const adminLine = await out.wait(/"admin listening","address":"127\.0\.0\.1:(\d+)"/);
  const adminPort = Number(/:(\d+)"$/.exec(adminLine)![1]);
  t.equal((await get(port, '/')).body, 'fast');
  t.equal((await get(adminPort, '/ready')).status, 200);

  const slow = get(port, '/slow').then((r) => ({ status: r.status, body: r.body }));
  await until('the slow request to reach the upstream', () => release !== undefined);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  // Draining: the listener stops accepting (once the process has handled the signal),
  // the in-flight request still completes.
  await until('the listener to refuse new connections after SIGTERM', () => get(port, '/').then(() => false, () => true));
  t.pass('new connections are refused while draining');
  release!();
  t.same(await slow, { status: 200, body: 'slow done' }, 'in-flight request finished during drain');
  t.equal(await exited, 0, 'exits 0 after draining');
});
