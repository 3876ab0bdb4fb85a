import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// An admin address that cannot be bound stops the proxy with one line, like any other
// listener; it must not keep serving traffic without its admin endpoint.
const BIN = new URL('../bin/pilotfish.js', import.meta.url).pathname;

t.test('admin port in use: the proxy exits 1 with one line naming admin.address', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  t.teardown(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'pf-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'proxy.yaml');
  writeFileSync(cfg, `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } }
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c }
  clusters:
  - name: c
    load_assignment: { cluster_name: c, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } } }] }] }
`);
  const child = spawn(process.execPath, [BIN, 'proxy', '--config', cfg, '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => {
    child.once('exit', (c) => r(c));
    setTimeout(() => r(-1), 60_000).unref();
  });
  t.equal(code, 1, `exits with 1 (stderr: ${stderr})`);
  t.match(stderr, new RegExp(`admin\\.address: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
  t.equal(stderr.trim().split('\n').length, 1, 'one line, no stack trace');
});
