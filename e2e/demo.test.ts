import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pilotfish, ROOT } from '../test-support/cli.js';
import { tcpOpen } from '../test-support/net.js';

// `pilotfish demo --duration 8s` as a process: control plane, waypoint and four sidecar
// processes with mTLS; it serves traffic through both reviews versions with zero failed
// requests, prints a summary, and leaves nothing behind (processes, ports, files).

t.test('demo --duration 8s: both versions, zero failures, clean exit', async (t) => {
  // The shipped mesh at a gentler rate: the test shares two cores with the rest of the suite.
  const dir = mkdtempSync(join(tmpdir(), 'pf-demo-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mesh = join(dir, 'mesh.yaml');
  writeFileSync(mesh, readFileSync(join(ROOT, 'demo/mesh.yaml'), 'utf8').replace('rps: 25', 'rps: 12'));
  const demo = pilotfish(t, ['demo', '--mesh', mesh, '--duration', '8s']);
  const code = await demo.exited;
  const out = demo.stdout();
  const err = demo.stderr();
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
  const demo = pilotfish(t, ['demo', '--mesh', mesh, '--duration', '2s', '--keep']);
  const code = await demo.exited;
  const out = demo.stdout();
  const logs = /access logs and proxy output: (\S+)/.exec(out)?.[1];
  const workdir = logs === undefined ? undefined : join(logs, '..');
  if (workdir !== undefined) t.teardown(() => rmSync(workdir, { recursive: true, force: true }));
  // On failure the demo's last words say which piece did not come up and where its log is.
  t.equal(code, 0, 'exit 0', { output: out.slice(-3000) });
  t.ok(workdir, 'prints where to look');
  if (workdir === undefined) return;
  t.match(out, `stopping: sidecars, waypoint, control plane; keeping ${workdir} (bootstraps, certificates, access logs)`);
  t.notMatch(out, /removing/, 'never says it removes what it keeps');
  t.ok(existsSync(workdir), 'the working directory is still there');
});
