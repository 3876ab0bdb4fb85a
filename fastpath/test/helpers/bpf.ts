/** Shared test plumbing: skip only where BPF really cannot run, and build on demand. */
import { execFileSync } from 'node:child_process';
import { ensureBuilt } from '../../src/build.js';

let cached: string | undefined | null = null;

/** Undefined when BPF tests can run here; otherwise the reason to skip. */
export async function bpfUnavailable(): Promise<string | undefined> {
  if (cached !== null) return cached;
  if (process.platform !== 'linux') return (cached = 'BPF needs Linux');
  if (process.getuid?.() !== 0) return (cached = 'BPF tests need root');
  const b = await ensureBuilt();
  if (!b.ok) return (cached = b.reason);
  return (cached = undefined);
}

/** A short unique suffix for namespaces, links and cgroups of one test run. */
export function uniq(): string {
  return `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
}

export function shQuiet(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch {
    /* cleanup of something that may already be gone */
  }
}
