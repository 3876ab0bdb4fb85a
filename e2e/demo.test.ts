import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import { join } from 'node:path';

// `pilotfish demo --duration 8s` as a process: control plane, waypoint and four sidecar
// processes with mTLS; it serves traffic through both reviews versions with zero failed
// requests, prints a summary, and leaves nothing behind (processes, ports, files).
const ROOT = new URL('..', import.meta.url).pathname;

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

t.test('demo --duration 8s: both versions, zero failures, clean exit', async (t) => {
  // The shipped mesh at a gentler rate: the test shares two cores with the rest of the suite.
  const dir = mkdtempSync(join(tmpdir(), 'pf-demo-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mesh = join(dir, 'mesh.yaml');
  writeFileSync(mesh, readFileSync(join(ROOT, 'demo/mesh.yaml'), 'utf8').replace('rps: 25', 'rps: 12'));
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/src/entry.ts'), 'demo', '--mesh', mesh, '--duration', '8s'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 0, `exit 0 (stderr: ${err.slice(0, 500)})`);
  const logs = /access logs and proxy output: (\S+)/.exec(out)?.[1];
  t.ok(logs, 'prints where to look');
  const ports = [...out.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  t.ok(ports.length >= 10, 'admin and listener addresses of the control plane, waypoint and sidecars');
  const line = /^summary (.*)$/m.exec(out);
  t.ok(line, 'prints a summary');
  if (!line || !logs) return;
  const s = JSON.parse(line[1]!) as { requests: number; failures: number; routes: Record<string, { total: number; versions: Record<string, number> }> };
  t.equal(s.failures, 0, `zero failed requests (${line[1]})`);
  t.ok(s.requests > 20, `served traffic (${s.requests} requests)`);
  const reviews = s.routes['/reviews']!.versions;
  t.ok((reviews.v1 ?? 0) > 0 && (reviews.v2 ?? 0) > 0, `both reviews versions served: ${JSON.stringify(reviews)}`);
  t.ok((s.routes['/ratings']?.total ?? 0) > 0, 'ratings served');
  t.notOk(existsSync(join(logs, '..')), 'working directory removed');
  for (const p of new Set(ports)) t.notOk(await tcpOpen(p), `127.0.0.1:${p} closed`);
});

t.test('demo --keep: says it keeps the working directory, and does', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-demo-keep-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mesh = join(dir, 'mesh.yaml');
  writeFileSync(mesh, readFileSync(join(ROOT, 'demo/mesh.yaml'), 'utf8').replace('rps: 25', 'rps: 5'));
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/src/entry.ts'), 'demo', '--mesh', mesh, '--duration', '2s', '--keep'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const logs = /access logs and proxy output: (\S+)/.exec(out)?.[1];
  const workdir = logs === undefined ? undefined : join(logs, '..');
  if (workdir !== undefined) t.teardown(() => rmSync(workdir, { recursive: true, force: true }));
  t.equal(code, 0);
  t.ok(workdir, 'prints where to look');
  if (workdir === undefined) return;
  t.match(out, `stopping: sidecars, waypoint, control plane; keeping ${workdir} (bootstraps, certificates, access logs)`);
  t.notMatch(out, /removing/, 'never says it removes what it keeps');
  t.ok(existsSync(workdir), 'the working directory is still there');
});
