import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, until } from '../test-support/wait.js';

// `pilotfish demo` with its mesh file edited while it runs: the reviews split moves to v2
// at once, ratings scales out (a new app + sidecar joins and serves) and back in (the
// surplus instance drains and stops) — without a failed request; Ctrl-C then removes the
// working directory (certificates, bootstraps, logs).
const ROOT = new URL('..', import.meta.url).pathname;
const lines = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').length - 1 : 0);


/**
 * True when `quiet` got no new line while `busy` got n more: a window counted in
 * requests that did flow, so a slow machine makes it longer instead of emptier.
 */
async function quietWhile(quiet: string, busy: string, n: number): Promise<boolean> {
  const q = lines(quiet);
  const b = lines(busy);
  await until(`${n} more requests in ${busy}`, () => lines(busy) >= b + n, { intervalMs: 100 });
  return lines(quiet) === q;
}

t.test('live edits: split, scale out, scale in, Ctrl-C', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-demo-edit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mesh = join(dir, 'mesh.yaml');
  writeFileSync(mesh, readFileSync(join(ROOT, 'demo/mesh.yaml'), 'utf8').replace('rps: 25', 'rps: 15'));
  // Its own process group: the demo starts a control plane, sidecars and apps, and a
  // SIGKILL of the demo alone (a failed run) would leave them running.
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/src/entry.ts'), 'demo', '--mesh', mesh], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  t.teardown(async () => {
    const group = (sig: NodeJS.Signals): void => { try { process.kill(-child.pid!, sig); } catch { /* gone */ } };
    if (child.exitCode === null && child.signalCode === null) {
      // Ctrl-C first (the demo stops what it started and removes its directory), then force.
      group('SIGINT');
      await new Promise<void>((r) => { const timer = setTimeout(r, 10_000); child.once('exit', () => { clearTimeout(timer); r(); }); });
    }
    group('SIGKILL');
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));

  if (!(await eventually(() => /access logs and proxy output: (\S+)/.test(out) || child.exitCode !== null, { timeoutMs: 90_000, intervalMs: 100 })) || child.exitCode !== null) {
    t.fail(`demo did not come up: ${out}`);
    return;
  }
  const logs = /access logs and proxy output: (\S+)/.exec(out)![1]!;
  const v1 = join(logs, 'reviews-v1-0.access.log');
  const v2 = join(logs, 'reviews-v2-1.access.log');
  t.ok(existsSync(join(logs, '..', 'certs', 'ca.pem')), 'the dev CA lives in the working directory');
  await eventually(() => lines(v2) > 0, { intervalMs: 100 });
  t.match(readFileSync(v2, 'utf8'), /peer=spiffe:\/\/pilotfish\.demo\/ns\/demo\/sa\/waypoint/, 'mTLS: the backend sidecar saw the waypoint\'s SPIFFE ID');

  // 1. all reviews traffic to v2, ratings to two replicas
  writeFileSync(mesh, readFileSync(mesh, 'utf8')
    .replace('v1: { replicas: 1, weight: 80 }', 'v1: { replicas: 1, weight: 0 }')
    .replace('v2: { replicas: 1, weight: 20 }', 'v2: { replicas: 1, weight: 100 }')
    .replace(/ratings:\n    versions:\n      v1: \{ replicas: 1/, 'ratings:\n    versions:\n      v1: { replicas: 2'));
  // the split moves once the control plane has pushed it (requests in flight may still land)
  await until('v1 to stop getting requests after the split moved', () => quietWhile(v1, v2, 5), { intervalMs: 0 });
  t.ok(await quietWhile(v1, v2, 15), 'v1 gets no new requests after the split moved, v2 keeps serving');
  const ratings2 = join(logs, 'ratings-v1-3.access.log');
  t.ok(await eventually(() => lines(ratings2) >= 5, { timeoutMs: 60_000, intervalMs: 100 }), 'the scaled-out ratings instance joined and serves');

  // 2. scale ratings back in: the surplus instance drains, leaves EDS and stops
  writeFileSync(mesh, readFileSync(mesh, 'utf8').replace('v1: { replicas: 2', 'v1: { replicas: 1'));
  await until('the removed ratings instance to get no more requests', () => quietWhile(ratings2, v2, 5), { timeoutMs: 60_000, intervalMs: 0 });
  t.ok(await quietWhile(ratings2, v2, 10), 'the removed instance gets no more requests');

  child.kill('SIGINT');
  t.equal(await exited, 0, 'Ctrl-C: exit 0');
  const line = /^summary (.*)$/m.exec(out);
  t.ok(line, 'prints a summary');
  if (line) t.equal((JSON.parse(line[1]!) as { failures: number }).failures, 0, 'zero failed requests through every edit');
  t.notOk(existsSync(join(logs, '..')), 'working directory removed');
});
