import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../test-support/wait.js';

// The proxy process with the fast path configured through bootstrap_extensions, in a
// network namespace of its own (veth pair, 198.18.0.0/15 addresses only).
const BIN = new URL('../bin/pilotfish.js', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;

t.test('pilotfish proxy attaches the fast path and reports it in /server_info and /stats', { skip: isRoot ? false : 'needs root to create network namespaces and load BPF' }, async (t) => {
  // pid + random: a namespace left by a killed earlier run (same pid reused) never collides
  const ns = `pf-e2e-${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  const sh = (...args: string[]) => execFileSync(args[0]!, args.slice(1), { stdio: 'pipe' }).toString();
  t.teardown(() => {
    try { sh('ip', 'netns', 'del', ns); } catch { /* already gone */ }
  });
  sh('ip', 'netns', 'add', ns);
  sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  sh('ip', '-n', ns, 'link', 'add', 'pf0', 'type', 'veth', 'peer', 'name', 'pf1');
  sh('ip', '-n', ns, 'addr', 'add', '198.18.99.1/24', 'dev', 'pf0');
  sh('ip', '-n', ns, 'link', 'set', 'pf0', 'up');
  sh('ip', '-n', ns, 'link', 'set', 'pf1', 'up');

  const dir = mkdtempSync(join(tmpdir(), 'pf-fp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'proxy.yaml');
  writeFileSync(cfg, `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 19901 } } }
bootstrap_extensions:
- name: pilotfish.fastpath
  typed_config:
    "@type": type.googleapis.com/xds.type.v3.TypedStruct
    type_url: pilotfish.fastpath
    value:
      interface: pf0
      mode: native
      services:
      - { cluster: backends, address: 198.18.99.10, port: 80, protocol: TCP }
static_resources:
  clusters:
  - name: backends
    connect_timeout: 1s
    load_assignment:
      cluster_name: backends
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 198.18.99.2, port_value: 80 } } }
        - endpoint: { address: { socket_address: { address: 198.18.99.3, port_value: 80 } } }
`);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'proxy', '--config', cfg, '--drain-time-s', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  t.teardown(() => { child.kill('SIGKILL'); });
  const curl = (path: string) => sh('ip', 'netns', 'exec', ns, 'curl', '-s', '--max-time', '3', `http://127.0.0.1:19901${path}`);
  let info: { fastpath?: { active: boolean; mode: string; reason?: string } } = {};
  await eventually(() => {
    info = JSON.parse(curl('/server_info')) as typeof info; // throws while the proxy starts
    return info.fastpath;
  }, { timeoutMs: 60_000, intervalMs: 200 });
  t.ok(info.fastpath?.active, `fast path active (${JSON.stringify(info.fastpath)}; log: ${out.slice(-400)})`);
  t.match(info.fastpath?.mode ?? '', /^xdp-/, 'attached with XDP');
  const stats = curl('/stats');
  t.match(stats, /fastpath_/, 'fast path counters appear in /stats');
  const links = sh('ip', '-n', ns, '-d', 'link', 'show', 'pf0');
  t.match(links, /xdp/, 'an XDP program is attached to the interface');
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'proxy exits cleanly');
  const after = sh('ip', '-n', ns, '-d', 'link', 'show', 'pf0');
  t.notMatch(after, /prog\/xdp/, 'the XDP program is detached when the proxy exits');
});
