import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { decodeBootstrap, Diagnostics, formatProblem } from '../config/src/index.js';
import { parseMeshText } from '../controlplane/src/index.js';

// docker-compose.yml as Debian's docker-compose reads it (no engine needed): every build
// context, Dockerfile, mounted directory and config file it names exists, and the
// pilotfish configs it mounts decode cleanly. The Dockerfile is multi-stage and non-root.
const ROOT = resolve(new URL('..', import.meta.url).pathname);

const compose = spawnSync('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config'], { encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
const missingTool = compose.error !== undefined && (compose.error as NodeJS.ErrnoException).code === 'ENOENT';

t.test('docker-compose config accepts the file; everything it names exists', { skip: missingTool ? 'docker-compose is not installed (scripts/setup.sh installs it)' : false }, async (t) => {
  t.equal(compose.status, 0, `docker-compose config: ${compose.stderr}`);
  const cfg = parseYaml(compose.stdout) as { services: Record<string, { build?: { context: string; dockerfile?: string }; command?: string[]; volumes?: (string | { type: string; source: string; target: string })[]; network_mode?: string; user?: string }> };
  const names = Object.keys(cfg.services);
  for (const want of ['controlplane', 'waypoint', 'frontend', 'frontend-sidecar', 'reviews-v1', 'reviews-v2', 'ratings', 'traffic']) t.ok(names.includes(want), `service ${want}`);
  for (const [name, svc] of Object.entries(cfg.services)) {
    if (svc.build) {
      t.ok(existsSync(svc.build.context) && statSync(svc.build.context).isDirectory(), `${name}: build context ${svc.build.context} exists`);
      t.ok(existsSync(join(svc.build.context, svc.build.dockerfile ?? 'Dockerfile')), `${name}: Dockerfile exists`);
    }
    const mounts = new Map<string, string>();
    for (const v of svc.volumes ?? []) {
      const [source, target] = typeof v === 'string' ? v.split(':') : [v.source, v.target];
      if (source!.startsWith('/') || source!.startsWith('.')) {
        t.ok(existsSync(source!), `${name}: volume source ${source} exists`);
        mounts.set(target!, source!);
      }
    }
    if (svc.network_mode?.startsWith('service:')) t.ok(names.includes(svc.network_mode.slice(8)), `${name}: shares the network of an existing service`);
    // Files named on the command line must be in a mounted directory.
    for (const arg of svc.command ?? []) {
      if (!arg.startsWith('/etc/pilotfish/')) continue;
      const host = join(mounts.get('/etc/pilotfish') ?? '/nonexistent', arg.slice('/etc/pilotfish/'.length));
      t.ok(existsSync(host), `${name}: ${arg} is ${host}`);
      if (!existsSync(host)) continue;
      const text = readFileSync(host, 'utf8');
      if (svc.command?.[0] === 'controlplane') {
        t.doesNotThrow(() => parseMeshText(text), `${name}: the mesh parses`);
      } else {
        const diag = new Diagnostics();
        const b = decodeBootstrap(parseYaml(text), diag);
        t.ok(b && diag.errors.length === 0, `${name}: ${arg} decodes: ${diag.errors.map(formatProblem).join('; ')}`);
      }
    }
  }
});

t.test('Dockerfile: multi-stage, non-root, copies only what exists and is not ignored', async (t) => {
  const df = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const stages = df.split('\n').filter((l) => /^FROM\s/i.test(l));
  t.ok(stages.length >= 2, 'multi-stage');
  const final = df.slice(df.lastIndexOf('\nFROM '));
  t.match(final, /^USER\s+(node|\d{3,})/m, 'the runtime stage runs as a non-root user');
  t.notMatch(final, /^USER\s+(root|0)\b/m);
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of df.split('\n')) {
    const m = /^COPY\s+(?!--from)(.+)$/i.exec(line.trim());
    if (!m) continue;
    const parts = m[1]!.split(/\s+/);
    for (const src of parts.slice(0, -1)) {
      t.ok(existsSync(join(ROOT, src)), `COPY ${src} exists`);
      t.notOk(ignore.includes(src) || ignore.includes(src.replace(/\/$/, '')), `COPY ${src} is not excluded by .dockerignore`);
    }
  }
});

t.test('compose mesh is mTLS between proxies: certificates from the certs service, checked SPIFFE IDs', { skip: missingTool ? 'docker-compose is not installed (scripts/setup.sh installs it)' : false }, async (t) => {
  const cfg = parseYaml(compose.stdout) as { services: Record<string, { command?: string[]; volumes?: (string | { source: string; target: string })[]; depends_on?: Record<string, { condition: string }> }> };
  const certsCmd = (cfg.services.certs?.command ?? []).join(' ');
  const minted = new Set([...certsCmd.matchAll(/for sa in ([a-z ]+);/g)].flatMap((m) => m[1]!.trim().split(/\s+/)));
  t.ok(minted.size >= 4, `certs service mints ${[...minted].join(', ')}`);
  const dir = join(ROOT, 'deploy/compose');
  const certFiles = new Set<string>();
  for (const [name, svc] of Object.entries(cfg.services)) {
    const configArg = svc.command?.[0] === 'proxy' ? svc.command[svc.command.indexOf('--config') + 1] : undefined;
    if (!configArg) continue;
    const mountsCerts = (svc.volumes ?? []).some((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`).includes(':/var/lib/pilotfish/certs'));
    t.ok(mountsCerts, `${name}: mounts the certs volume`);
    t.equal(svc.depends_on?.certs?.condition, 'service_completed_successfully', `${name}: starts after the certs are minted`);
    const text = readFileSync(join(dir, configArg.slice('/etc/pilotfish/'.length)), 'utf8');
    for (const m of text.matchAll(/filename: (\/var\/lib\/pilotfish\/certs\/[^ }]+)/g)) certFiles.add(m[1]!);
    if (name.endsWith('-sidecar') && name !== 'frontend-sidecar') {
      const b = parseYaml(text) as { static_resources: { listeners: { name: string; filter_chains: { transport_socket?: { typed_config: Record<string, any> } }[] }[] } };
      const inbound = b.static_resources.listeners.find((l) => l.name === 'inbound')!;
      const ts = inbound.filter_chains[0]!.transport_socket?.typed_config;
      t.equal(ts?.require_client_certificate, true, `${name}: inbound requires a client certificate`);
      t.same(ts?.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher, { prefix: 'spiffe://pilotfish.demo/' }, `${name}: only mesh identities`);
    }
  }
  const mesh = parseMeshText(readFileSync(join(dir, 'mesh.yaml'), 'utf8'));
  t.ok(mesh.tls, 'the control plane mesh has a tls block');
  for (const f of [mesh.tls!.certificate, mesh.tls!.privateKey, mesh.tls!.ca]) certFiles.add(f);
  for (const s of mesh.services) t.match(s.peer ?? '', /^spiffe:\/\/pilotfish\.demo\/ns\/demo\/sa\/(reviews|ratings)$/, `${s.name}: the waypoint checks its SPIFFE ID`);
  // Every certificate file a proxy names is one the certs service writes.
  for (const f of certFiles) {
    const base = f.slice('/var/lib/pilotfish/certs/'.length);
    const ok = base === 'root.crt' || [...minted].some((sa) => base === `${sa}.chain.crt` || base === `${sa}.key` || base === `${sa}.crt`);
    t.ok(ok, `${f} is minted by the certs service`);
  }
});
