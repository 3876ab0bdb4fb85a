import t from 'tap';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// `pilotfish demo` as a process: control plane, waypoint and four sidecar processes with
// mTLS, traffic for a few seconds; mid-run the mesh file shifts reviews to v2 and scales
// ratings out. Zero failed requests, both versions served, the new ratings instance
// served traffic; scaling back in drains an instance without a failure; nothing is left
// listening afterwards.
const ROOT = new URL('..', import.meta.url).pathname;

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

t.test('demo: both versions, live edits, zero failures, clean stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-demo-test-'));
  let workdir: string | undefined;
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });
  const mesh = join(dir, 'mesh.yaml');
  copyFileSync(join(ROOT, 'demo/mesh.yaml'), mesh);
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'demo/src/bin.ts'), 'demo', '--mesh', mesh, '--duration', '11s', '--keep'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));

  // wait until the mesh is serving (the demo prints where to look), then edit the mesh
  const end = Date.now() + 90_000;
  while (!/access logs and proxy output: (\S+)/.test(out)) {
    if (Date.now() > end || child.exitCode !== null) t.fail(`demo did not come up: ${out}\n${err}`);
    if (child.exitCode !== null || Date.now() > end) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  workdir = join(/access logs and proxy output: (\S+)/.exec(out)![1]!, '..');
  const adminPorts = [...out.matchAll(/admin http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  t.ok(adminPorts.length >= 5, 'frontend, waypoint and three backend sidecars');
  await new Promise((r) => setTimeout(r, 2500));
  writeFileSync(mesh, readFileSync(mesh, 'utf8').replace('v1: { replicas: 1, weight: 80 }', 'v1: { replicas: 1, weight: 0 }').replace('v2: { replicas: 1, weight: 20 }', 'v2: { replicas: 1, weight: 100 }').replace(/ratings:\n    versions:\n      v1: \{ replicas: 1/, 'ratings:\n    versions:\n      v1: { replicas: 2'));

  // scale back in: the surplus instance drains (terminating), leaves EDS, then stops
  await new Promise((r) => setTimeout(r, 3500));
  writeFileSync(mesh, readFileSync(mesh, 'utf8').replace('v1: { replicas: 2', 'v1: { replicas: 1'));

  const code = await exited;
  t.equal(code, 0, `exit 0 (stderr: ${err})`);
  const line = /^summary (.*)$/m.exec(out);
  t.ok(line, 'prints a summary');
  if (!line) return;
  const s = JSON.parse(line[1]!) as { requests: number; failures: number; routes: Record<string, { total: number; versions: Record<string, number> }> };
  t.equal(s.failures, 0, 'zero failed requests');
  t.ok(s.requests > 50, `served traffic (${s.requests} requests)`);
  const reviews = s.routes['/reviews']!.versions;
  t.ok((reviews.v1 ?? 0) > 0 && (reviews.v2 ?? 0) > 0, `both versions served: ${JSON.stringify(reviews)}`);
  t.ok((reviews.v2 ?? 0) > (reviews.v1 ?? 0), 'the weight edit moved traffic to v2');
  const logs = join(workdir, 'logs');
  const newRatings = join(logs, 'ratings-v1-3.access.log');
  t.ok(existsSync(newRatings) && readFileSync(newRatings, 'utf8').length > 0, 'the scaled-out ratings instance served requests');
  t.match(readFileSync(join(logs, 'reviews-v2-1.access.log'), 'utf8'), /peer=spiffe:\/\/pilotfish\.demo\/ns\/demo\/sa\/waypoint/, 'mTLS: the backend sidecar saw the waypoint\'s SPIFFE ID');
  for (const p of adminPorts) t.notOk(await tcpOpen(p), `admin port ${p} closed after stop`);
});
