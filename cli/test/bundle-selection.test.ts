/**
 * bin/pilotfish.js runs dist/bundle/main.js only while the bundle is newer than every
 * compiled file it was built from; otherwise (a bare `tsc` after `npm run build`, no
 * bundle, PILOTFISH_BUNDLE=0) the unbundled dist/cli/src/main.js, so what runs is always
 * the code compiled last. Checked on a copy of the launcher in a scratch checkout whose
 * two entry points say which one ran.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LAUNCHER = fileURLToPath(new URL('../../bin/pilotfish.js', import.meta.url));

function scratchCheckout(t: { teardown(f: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'pf-bundle-sel-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const d of ['bin', 'dist/cli/src', 'dist/proxy/src', 'dist/bundle']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(LAUNCHER, join(root, 'bin/pilotfish.js'));
  writeFileSync(join(root, 'package.json'), '{"type":"module"}');
  const entry = (which: string) => `export async function main() { process.stdout.write('${which}'); return 0; }\n`;
  writeFileSync(join(root, 'dist/cli/src/main.js'), entry('unbundled'));
  writeFileSync(join(root, 'dist/proxy/src/server.js'), '');
  writeFileSync(join(root, 'dist/bundle/main.js'), entry('bundle'));
  writeFileSync(join(root, 'dist/bundle/inputs.json'), JSON.stringify({ entry: 'dist/bundle/main.js', inputs: ['dist/cli/src/main.js', 'dist/proxy/src/server.js'], chunks: {} }));
  // The build order: tsc's files first, the bundle after them.
  const past = new Date(Date.now() - 60_000);
  for (const f of ['dist/cli/src/main.js', 'dist/proxy/src/server.js']) utimesSync(join(root, f), past, past);
  return root;
}

function run(root: string, env: Record<string, string> = {}): string {
  const r = spawnSync(process.execPath, [join(root, 'bin/pilotfish.js'), 'version'], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  return r.stdout;
}

t.test('a bundle newer than its inputs runs; a newer input, PILOTFISH_BUNDLE=0 or no manifest run dist/ unbundled', async (t) => {
  const root = scratchCheckout(t);
  t.equal(run(root), 'bundle', 'fresh bundle: it runs');
  t.equal(run(root, { PILOTFISH_BUNDLE: '0' }), 'unbundled', 'PILOTFISH_BUNDLE=0: the unbundled build runs');
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'dist/proxy/src/server.js'), later, later);
  t.equal(run(root), 'unbundled', 'an input compiled after the bundle: the unbundled build runs');
  rmSync(join(root, 'dist/bundle/inputs.json'));
  t.equal(run(root), 'unbundled', 'no manifest: the unbundled build runs');
});
