/** Where the native parts live, and building them on demand (make) when they are stale. */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fastpath/ folder, from src/ or from a compiled dist/fastpath/src/. */
export function fastpathDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const c of [join(here, '..'), join(here, '..', '..', '..', 'fastpath')]) {
    if (existsSync(join(c, 'Makefile')) && existsSync(join(c, 'bpf', 'fp_abi.h'))) return c;
  }
  return join(here, '..');
}

export const buildDir = (): string => join(fastpathDir(), 'build');
export const daemonPath = (): string => join(buildDir(), 'pf-fastpathd');
export const abiDumpPath = (): string => join(buildDir(), 'abi-dump');
/** XDP_PASS alone, for veth peers in other namespaces (ip link ... xdpdrv obj). */
export const xdpPassObjectPath = (): string => join(buildDir(), 'xdp_pass.bpf.o');

function newestSource(dir: string): number {
  let newest = 0;
  for (const sub of ['bpf', 'native']) {
    const d = join(dir, sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) newest = Math.max(newest, statSync(join(d, f)).mtimeMs);
  }
  return Math.max(newest, statSync(join(dir, 'Makefile')).mtimeMs);
}

function isFresh(dir: string): boolean {
  const bins = [daemonPath(), abiDumpPath(), xdpPassObjectPath()];
  if (!bins.every((b) => existsSync(b))) return false;
  const src = newestSource(dir);
  return bins.every((b) => statSync(b).mtimeMs >= src);
}

let building: Promise<{ ok: true } | { ok: false; reason: string }> | undefined;

/** Runs `make -C fastpath` when the binaries are missing or older than their sources. */
export function ensureBuilt(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const dir = fastpathDir();
  if (isFresh(dir)) return Promise.resolve({ ok: true });
  building ??= new Promise((resolve) => {
    // parallel test processes may all find build/ stale: flock makes them take turns
    const lock = join(tmpdir(), 'pilotfish-fastpath-build.lock');
    const [cmd, argv] = existsSync('/usr/bin/flock') ? ['flock', [lock, 'make', '-s', '-C', dir]] : ['make', ['-s', '-C', dir]];
    execFile(cmd, argv, { timeout: 120_000 }, (err, _out, stderr) => {
      building = undefined;
      if (!err) return resolve({ ok: true });
      const why = (stderr || err.message).trim().split('\n').find((l) => /error|not found|No such/i.test(l)) ?? err.message;
      resolve({ ok: false, reason: `cannot build the fast path (make): ${why.trim()}` });
    });
  });
  return building;
}
