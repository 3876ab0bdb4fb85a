/**
 * The pieces that put pilotfish in Istio's istio-proxy container: the `envoy` shim that
 * pilot-agent runs with Envoy's flags, and the injection template (valid YAML whose patch
 * targets Istio's container by name). The image itself needs Istio's proxyv2 base, which
 * this machine cannot pull; the shim is what runs inside it, exercised here for real.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '../..');
const SHIM = join(ROOT, 'deploy/istio/envoy-shim.sh');
const built = existsSync(join(ROOT, 'dist/cli/src/main.js'));

t.test('the envoy shim runs pilotfish with pilot-agent\'s flags', { skip: built ? false : 'dist/ not built (npm run build)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-shim-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bootstrap = join(dir, 'envoy-rev.json');
  writeFileSync(bootstrap, JSON.stringify({ node: { id: 'sidecar~198.18.0.9~x.default~default.svc.cluster.local', cluster: 'x.default' }, static_resources: {} }));
  const env = { ...process.env, PILOTFISH_NODE: process.execPath, PILOTFISH_HOME: ROOT };
  const ok = spawnSync('sh', [SHIM, '-c', bootstrap, '--mode', 'validate', '--drain-time-s', '45', '--disable-hot-restart', '-l', 'warning'], { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /configuration '.*envoy-rev\.json' OK/, 'pilotfish validated the bootstrap pilot-agent rendered');
  const bad = spawnSync('sh', [SHIM, '-c', bootstrap, '--no-such-flag'], { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(bad.status, 2, 'an unknown Envoy flag is a usage error, as in Envoy');
  t.match(bad.stderr, /unknown Envoy flag "--no-such-flag"/);
});

t.test('PILOTFISH_DISABLE=1 runs the original Envoy with the same arguments', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-shim-orig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fakeEnvoy = join(dir, 'envoy.orig');
  writeFileSync(fakeEnvoy, '#!/bin/sh\necho "envoy.orig $*"\n');
  chmodSync(fakeEnvoy, 0o755);
  const r = spawnSync('sh', [SHIM, '-c', 'x.json', '--concurrency', '2'], { env: { ...process.env, PILOTFISH_DISABLE: '1', ENVOY_ORIG: fakeEnvoy }, encoding: 'utf8' });
  t.equal(r.stdout.trim(), 'envoy.orig -c x.json --concurrency 2');
});

t.test('the injection template patches Istio\'s istio-proxy container', async (t) => {
  const values = parse(readFileSync(join(ROOT, 'deploy/istio/injection-template.yaml'), 'utf8')) as { sidecarInjectorWebhook: { templates: Record<string, string> } };
  const tpl = values.sidecarInjectorWebhook.templates.pilotfish;
  t.type(tpl, 'string', 'a template named pilotfish (pods opt in with inject.istio.io/templates: sidecar,pilotfish)');
  // Go template actions are opaque to YAML inside quoted scalars; the patch must still be YAML.
  const patch = parse(tpl!.replace(/\{\{[^}]*\}\}/g, 'X')) as { spec: { containers: { name: string; image: string; env: { name: string }[] }[] } };
  const c = patch.spec.containers;
  t.equal(c.length, 1);
  t.equal(c[0]!.name, 'istio-proxy', 'merges into the container Istio\'s sidecar template made (strategic merge by name)');
  t.ok(c[0]!.image, 'swaps its image');
  t.same(c[0]!.env.map((e) => e.name), ['PILOTFISH_DISABLE']);
  const docker = readFileSync(join(ROOT, 'deploy/istio/Dockerfile'), 'utf8');
  t.match(docker, /COPY --chmod=0755 deploy\/istio\/envoy-shim\.sh \/usr\/local\/bin\/envoy/, 'the image installs this shim as Envoy');
});
