import t from 'tap';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

// The image and the compose demo in a real container engine (rootful podman; Debian's
// docker-compose through `podman system service`): build the Dockerfile from a clean
// context, check the image (non-root, every CLI command, the addon, the fast path when
// privileged, HEALTHCHECK, size), bring docker-compose.yml up, let the generator run,
// then check 0 failed requests, the reviews version split, mTLS between the proxies
// (plaintext and certificate-less TLS to a backend sidecar get no answer; the waypoint's
// SPIFFE ID in the sidecar's access log) and the health checks. Everything this test
// makes (containers, network, volume, images, the API service) is removed, also on failure
// or when tap's timeout kills it. Needs scripts/containers-setup.sh (the base image).
const ROOT = resolve(new URL('..', import.meta.url).pathname);
const TAG = `localhost/pilotfish-ci:${process.pid}`;
const PROJECT = `pfci${process.pid}`;
const ctr = (svc: string): string => `${PROJECT}_${svc}_1`;
const TRAFFIC_S = 15;

function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: ROOT, timeout: opts.timeoutMs ?? 60_000, env: opts.env ?? process.env, maxBuffer: 64 << 20, ...(opts.input !== undefined ? { input: opts.input } : {}) });
}
const ok = (r: SpawnSyncReturns<string>): boolean => r.status === 0;

function skipReason(): string | false {
  if (process.env.PILOTFISH_CONTAINERS === '0') return 'PILOTFISH_CONTAINERS=0';
  if (process.getuid?.() !== 0) return 'needs root (rootful podman)';
  for (const tool of ['podman', 'docker-compose']) if (run('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (run scripts/containers-setup.sh as root)`;
  const check = run('scripts/containers-setup.sh', ['--check']);
  if (!ok(check)) return check.stdout.trim().split('\n')[0] || 'scripts/containers-setup.sh --check failed';
  return false;
}

const skip = skipReason();
t.setTimeout(1_200_000);

let service: ChildProcess | undefined;
let sockDir: string | undefined;
let imagesBefore = new Set<string>();
let tornDown = false;
const composeEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  DOCKER_HOST: `unix://${join(sockDir!, 'podman.sock')}`,
  COMPOSE_PROJECT_NAME: PROJECT,
  PILOTFISH_IMAGE: TAG,
  PILOTFISH_ADMIN_PORT: String(ports[0]),
  PILOTFISH_FRONTEND_PORT: String(ports[1]),
});
let ports: number[] = [];
const compose = (args: readonly string[], timeoutMs = 180_000) => run('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), '-p', PROJECT, ...args], { timeoutMs, env: composeEnv() });

/** Synchronous and idempotent: runs from t.teardown and from signal/exit handlers. */
function teardown(): void {
  if (tornDown || skip) return;
  tornDown = true;
  if (sockDir && service) compose(['down', '-v', '--remove-orphans', '-t', '3'], 120_000);
  // Whatever compose left (or a crash before compose ran): by the project label.
  const ids = run('podman', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`]).stdout.split('\n').filter(Boolean);
  if (ids.length > 0) run('podman', ['rm', '-f', '-t', '0', ...ids]);
  for (const kind of ['network', 'volume'] as const) {
    const names = run('podman', [kind, 'ls', '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`]).stdout.split('\n').filter(Boolean);
    if (names.length > 0) run('podman', [kind, 'rm', '-f', ...names]);
  }
  // Images this run made: the tag and every build stage/layer (the cached base stays).
  run('podman', ['rmi', '-f', TAG]);
  const made = run('podman', ['images', '-aq', '--no-trunc']).stdout.split('\n').filter((id) => id && !imagesBefore.has(id));
  if (made.length > 0) run('podman', ['rmi', '-f', ...made], { timeoutMs: 120_000 });
  if (service && service.exitCode === null) service.kill('SIGTERM');
  if (sockDir) rmSync(sockDir, { recursive: true, force: true });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** What an earlier run killed with SIGKILL left behind (its pid is gone): same removal. */
function sweepStale(): void {
  const projects = new Set<string>();
  for (const kind of [['ps', '-a'], ['network', 'ls'], ['volume', 'ls']]) {
    const out = run('podman', [...kind, '--format', '{{.Labels}}']).stdout;
    for (const m of out.matchAll(/com\.docker\.compose\.project:(pfci(\d+))/g)) if (!alive(Number(m[2]))) projects.add(m[1]!);
  }
  for (const p of projects) {
    const ids = run('podman', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${p}`]).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) run('podman', ['rm', '-f', '-t', '0', ...ids]);
    for (const kind of ['network', 'volume']) {
      const names = run('podman', [kind, 'ls', '-q', '--filter', `label=com.docker.compose.project=${p}`]).stdout.split('\n').filter(Boolean);
      if (names.length > 0) run('podman', [kind, 'rm', '-f', ...names]);
    }
  }
  for (const tag of run('podman', ['images', '--format', '{{.Repository}}:{{.Tag}}']).stdout.split('\n')) {
    const m = /^localhost\/pilotfish-ci:(\d+)$/.exec(tag);
    if (m && !alive(Number(m[1]))) run('podman', ['rmi', '-f', tag]);
  }
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer().once('error', rej).listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The shell the `certs` init container of deploy/k8s runs (one command line). */
function k8sCertsScript(): string {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/k8s/20-waypoint.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const dep = docs.find((d) => d?.kind === 'Deployment');
  const init = (dep?.spec.template.spec.initContainers ?? []).find((c: { name: string }) => c.name === 'certs');
  return String(init?.args?.[0] ?? 'echo no certs init container; exit 1');
}

/** Runs a Node script inside a container (the image has no curl). */
function nodeIn(container: string, script: string, timeoutMs = 30_000) {
  return run('podman', ['exec', container, 'node', '-e', script], { timeoutMs });
}

/** A probe that answers `answered` when the peer sends an HTTP response, `refused` otherwise. */
const probeScript = (host: string, port: number, mode: 'plain' | 'tls-no-cert'): string => `
const net = require('net'), tls = require('tls');
const s = ${mode === 'plain' ? `net.connect(${port}, '${host}')` : `tls.connect({ host: '${host}', port: ${port}, rejectUnauthorized: false, servername: 'reviews' })`};
let data = '';
const done = (why) => { console.log(data.startsWith('HTTP/') ? 'answered ' + data.split('\\r\\n')[0] : 'refused ' + why); process.exit(0); };
s.on('${mode === 'plain' ? 'connect' : 'secureConnect'}', () => s.write('GET /reviews HTTP/1.1\\r\\nhost: reviews\\r\\n\\r\\n'));
s.on('data', (d) => { data += d; if (data.includes('\\r\\n\\r\\n')) done('n/a'); });
s.on('error', (e) => done(e.code || e.message));
s.on('close', () => done('closed'));
setTimeout(() => done('timeout'), 5000);
`;

t.test('image and compose mesh in podman', { skip }, async (t) => {
  process.once('exit', teardown);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { teardown(); process.exit(1); });
  t.teardown(teardown);
  sweepStale();
  imagesBefore = new Set(run('podman', ['images', '-aq', '--no-trunc']).stdout.split('\n').filter(Boolean));
  ports = [await freePort(), await freePort()];

  // Build from a clean clone-like context: only tracked and new files, never host builds.
  const t0 = Date.now();
  const build = run('podman', ['build', '--format', 'docker', '--pull=never', '-t', TAG, '.'], { timeoutMs: 900_000 });
  const buildS = (Date.now() - t0) / 1000;
  t.equal(build.status, 0, ok(build) ? `podman build (${buildS.toFixed(0)}s)` : `podman build: ${(build.stdout + build.stderr).slice(-2000)}`);
  if (!ok(build)) return;
  t.comment(`image built in ${buildS.toFixed(0)}s`);

  await t.test('the image: non-root, small, every command, the addon, the fast path', async (t) => {
    const inspect = JSON.parse(run('podman', ['image', 'inspect', TAG]).stdout)[0] as { Size: number; Healthcheck?: { Test: string[] }; Config: { User: string; Healthcheck?: { Test: string[] } } };
    t.equal(inspect.Config.User, 'node', 'runs as node by default');
    t.match((inspect.Healthcheck ?? inspect.Config.Healthcheck)?.Test.join(' ') ?? '', /\/ready/, 'HEALTHCHECK on the admin /ready');
    const mb = inspect.Size / 1e6;
    t.comment(`image size ${mb.toFixed(0)} MB`);
    const base = JSON.parse(run('podman', ['image', 'inspect', 'docker.io/library/node:20-bookworm-slim']).stdout)[0] as { Size: number };
    t.ok(inspect.Size - base.Size < 150e6, `pilotfish adds ${((inspect.Size - base.Size) / 1e6).toFixed(0)} MB to its base (production dependencies only)`);
    const inImage = (args: string[], extra: string[] = []) => run('podman', ['run', '--rm', '--network', 'none', '--no-healthcheck', ...extra, TAG, ...args], { timeoutMs: 120_000 });
    // One container for the unprivileged checks (each `podman run` costs seconds here).
    const k8sCerts = k8sCertsScript().replace(/\$\(SERVICE_ACCOUNT\)/g, 'waypoint');
    const script = [
      'echo "uid $(id -u)"',
      ...['proxy --help', 'controlplane --help', 'demo --help', 'certs --help', 'fastpath --help', 'example --help'].map((c) => `node /app/bin/pilotfish.js ${c} >/dev/null 2>/tmp/err; echo "cmd ${c}: $? $(head -c 200 /tmp/err | head -1)"`),
      `node -e "import('/app/dist/controlplane/src/index.js').then((m) => m.loadKubernetesClient()).then((k) => console.log('endpointslices', typeof k.makeInformer), (e) => console.log('endpointslices', e.message))"`,
      `node -e "import('/app/dist/proxy/src/net/original-dst.js').then((m) => console.log('addon', JSON.stringify(m.originalDstAvailability())))"`,
      'node /app/bin/pilotfish.js fastpath status | sed "s/^/fastpath-unprivileged /"',
      // deploy/k8s's certs init container, as written in the manifest, against a CA like the Secret.
      'node /app/bin/pilotfish.js certs init --dir /etc/pilotfish-ca --trust-domain pilotfish.demo >/dev/null',
      `( ${k8sCerts} ) >/dev/null 2>/tmp/err; echo "k8s-certs exit $? $(head -1 /tmp/err)"`,
      'openssl x509 -in /var/lib/pilotfish/certs/workload.crt -noout -ext subjectAltName | tail -1 | sed "s/^ */k8s-san /"',
      'ls /var/lib/pilotfish/certs | tr "\\n" " " | sed "s/^/k8s-files /"; echo',
    ].join('\n');
    const r = inImage(['-c', script], ['--entrypoint', 'sh', '--tmpfs', '/etc/pilotfish-ca:rw,mode=1777', '--tmpfs', '/var/lib/pilotfish/certs:rw,U']);
    const line = (prefix: string): string => r.stdout.split('\n').find((l) => l.startsWith(prefix)) ?? `(no "${prefix}" line; stderr: ${r.stderr.trim().split('\n')[0] ?? ''})`;
    t.equal(line('uid '), 'uid 1000', 'runs as uid 1000');
    for (const c of ['proxy', 'controlplane', 'demo', 'certs', 'fastpath', 'example']) t.match(line(`cmd ${c} `), /: 0 ?$/, `pilotfish ${c} --help: ${line(`cmd ${c} `)}`);
    t.equal(line('endpointslices '), 'endpointslices function', 'the control plane\'s Kubernetes source loads its (optional) client library');
    t.equal(line('addon '), 'addon {"ok":true}', 'the SO_ORIGINAL_DST addon loads');
    t.match(line('fastpath-unprivileged fastpath:'), /^fastpath-unprivileged fastpath: unavailable: needs root/, `unprivileged: one-line reason (${line('fastpath-unprivileged fastpath:')})`);
    t.match(line('k8s-certs exit'), /^k8s-certs exit 0/, `deploy/k8s certs init container: ${line('k8s-certs exit')}`);
    t.equal(line('k8s-san '), 'k8s-san URI:spiffe://pilotfish.demo/ns/demo/sa/waypoint', 'it issues the pod\'s SPIFFE ID');
    t.notMatch(line('k8s-files '), /root\.key/, 'and leaves no CA key behind');
    const priv = inImage(['fastpath', 'status'], ['--privileged', '--user', '0']);
    t.equal(priv.status, 0, `privileged: ${(priv.stdout + priv.stderr).trim().split('\n').slice(-2).join(' | ')}`);
    t.match(priv.stdout, /fastpath: available/);
  });

  // The mesh.
  const podmanSvc = run('sh', ['-c', 'command -v podman']).stdout.trim();
  sockDir = mkdtempSync(join(tmpdir(), 'pilotfish-podman-'));
  service = spawn(podmanSvc, ['system', 'service', '--time=0', `unix://${join(sockDir, 'podman.sock')}`], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(join(sockDir, 'podman.sock')); i++) await sleep(100);
  t.ok(existsSync(join(sockDir, 'podman.sock')), 'podman API service up');

  const t1 = Date.now();
  const up = compose(['up', '-d', '--no-build'], 300_000);
  t.equal(up.status, 0, ok(up) ? 'docker-compose up' : `docker-compose up: ${up.stderr.slice(-3000)}`);
  if (!ok(up)) return;
  t.comment(`compose up in ${((Date.now() - t1) / 1000).toFixed(0)}s`);

  // The generator prints a table and a summary line every 5s once the mesh answers.
  let summary: { seconds: number; routes: Record<string, { total: number; failures: number; versions: Record<string, number> }> } | undefined;
  let logs = '';
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    logs = run('podman', ['logs', ctr('traffic')]).stdout;
    const lines = logs.split('\n').filter((l) => l.startsWith('traffic-summary '));
    if (lines.length > 0) summary = JSON.parse(lines.at(-1)!.slice('traffic-summary '.length));
    if (summary && summary.seconds >= TRAFFIC_S) break;
    // The generator gives up (and is restarted) when the mesh never answers: no point waiting on.
    if (/did not answer 200 .* within/.test(logs)) break;
    await sleep(2000);
  }
  t.comment(`mesh serving after ${((Date.now() - t1) / 1000).toFixed(0)}s from compose up`);
  if (!summary || summary.seconds < TRAFFIC_S) {
    t.fail(`no traffic summary after ${TRAFFIC_S}s of traffic; traffic log:\n${logs.slice(-1500)}`);
    for (const svc of ['certs', 'controlplane', 'waypoint', 'frontend-sidecar', 'reviews-v1-sidecar']) { const l = run('podman', ['logs', '--tail', '15', ctr(svc)]); t.comment(`${svc}:\n${(l.stdout + l.stderr).slice(-1500)}`); }
    return;
  }
  t.match(logs, /route\s+rps\s+total\s+failed/, 'the live table is in the logs');
  const front = summary.routes['/ (frontend)']!;
  t.ok(front && front.total >= TRAFFIC_S * 10, `${front?.total} requests through the mesh`);
  t.equal(front?.failures, 0, '0 failed requests');
  if ((front?.failures ?? 0) > 0) {
    t.comment(`traffic:\n${logs.slice(-1200)}`);
    for (const svc of ['frontend-sidecar', 'waypoint', 'reviews-v2-sidecar']) { const l = run('podman', ['logs', '--tail', '12', ctr(svc)]); t.comment(`${svc}:\n${(l.stdout + l.stderr).slice(-1500)}`); }
  }
  for (const route of ['/reviews', '/ratings']) t.equal(summary.routes[route]?.failures, 0, `${route}: 0 failed`);
  const rv = summary.routes['/reviews']?.versions ?? {};
  const share = (rv.v1 ?? 0) / ((rv.v1 ?? 0) + (rv.v2 ?? 0));
  t.ok(share > 0.65 && share < 0.93, `reviews split ${JSON.stringify(rv)}: v1 share ${share.toFixed(2)} (mesh: 80/20)`);
  t.same(Object.keys(summary.routes['/ratings']?.versions ?? {}), ['v1'], 'ratings: v1 only');

  // mTLS between proxies. The probe itself can tell an answer: the frontend's plain edge answers.
  const edge = nodeIn(ctr('traffic'), probeScript('198.19.240.20', 15006, 'plain'));
  t.match(edge.stdout, /^answered HTTP\/1\.1/, `plain HTTP to the frontend edge is answered: ${edge.stdout.trim()}`);
  for (const [ip, name] of [['198.19.240.21', 'reviews-v1'], ['198.19.240.23', 'ratings']] as const) {
    const plain = nodeIn(ctr('traffic'), probeScript(ip, 15006, 'plain'));
    t.match(plain.stdout, /^refused/, `${name} sidecar: plaintext refused (${plain.stdout.trim()})`);
    const noCert = nodeIn(ctr('traffic'), probeScript(ip, 15006, 'tls-no-cert'));
    t.match(noCert.stdout, /^refused/, `${name} sidecar: TLS without a mesh client certificate refused (${noCert.stdout.trim()})`);
  }
  const access = run('podman', ['logs', '--tail', '50', ctr('reviews-v1-sidecar')]);
  t.match(access.stdout + access.stderr, /" 200 .*peer=spiffe:\/\/pilotfish\.demo\/ns\/demo\/sa\/waypoint/, 'reviews sidecar sees the waypoint\'s SPIFFE ID');

  // Health checks (run on demand: this machine has no systemd timers to run them).
  for (const svc of ['waypoint', 'frontend-sidecar', 'reviews-v2-sidecar', 'controlplane', 'ratings']) {
    const h = run('podman', ['healthcheck', 'run', ctr(svc)]);
    t.equal(h.status, 0, `${svc} healthy ${h.stdout.trim()} ${h.stderr.trim()}`);
  }
  const admin = await fetch(`http://127.0.0.1:${ports[0]}/ready`).then((r) => r.status, () => 0);
  t.equal(admin, 200, 'the waypoint admin is published on 127.0.0.1');
  t.comment(`build ${buildS.toFixed(0)}s, whole test ${((Date.now() - t0) / 1000).toFixed(0)}s before teardown`);
});
