#!/usr/bin/env node
// Builds proxy/native/build/original_dst.node (the SO_ORIGINAL_DST / SO_COOKIE addon) with
// the system C compiler against Node's own headers: no node-gyp, so nothing is downloaded
// (node-gyp fetches headers when it cannot find them; only the npm registry is reachable).
// Never fails the install: without a compiler or headers it writes the reason to
// build/unavailable.txt, which the proxy logs once, and exits 0.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'original_dst.c');
const outDir = join(here, 'build');
const out = join(outDir, 'original_dst.node');
const reasonFile = join(outDir, 'unavailable.txt');
const force = process.argv.includes('--force');

function give_up(reason) {
  mkdirSync(outDir, { recursive: true });
  rmSync(out, { force: true });
  writeFileSync(reasonFile, `${reason}\n`);
  console.error(`native: original_dst addon not built: ${reason}`);
  process.exit(0);
}

/** Node's headers: next to this node binary, its configured prefix, distro and node-gyp locations. */
function includeDir() {
  const candidates = [
    resolve(process.execPath, '../../include/node'),
    join(String(process.config.variables.node_prefix ?? '/usr'), 'include/node'),
    '/usr/include/node',
    '/usr/local/include/node',
    join(homedir(), '.cache/node-gyp', process.versions.node, 'include/node'),
  ];
  return candidates.find((d) => existsSync(join(d, 'node_api.h')));
}

if (process.platform !== 'linux') give_up(`SO_ORIGINAL_DST is Linux-only (platform ${process.platform})`);
if (!force && existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) process.exit(0);
const inc = includeDir();
if (!inc) give_up(`Node's headers (node_api.h) not found for ${process.execPath}; install them (Debian: libnode-dev / nodejs headers)`);
const cc = process.env.CC || 'cc';
mkdirSync(outDir, { recursive: true });
try {
  execFileSync(cc, ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-I', inc, '-o', out, src], { stdio: ['ignore', 'inherit', 'pipe'] });
} catch (e) {
  const err = /** @type {{ code?: string, stderr?: Buffer }} */ (e);
  const why = err.code === 'ENOENT' ? `no C compiler (${cc}) on PATH` : `${cc} failed: ${String(err.stderr ?? '').split('\n').find((l) => l.includes('error')) ?? 'see build output'}`;
  give_up(why);
}
rmSync(reasonFile, { force: true });
