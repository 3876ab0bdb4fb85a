/**
 * The pilotfish command as a child process, for e2e tests. From source (`node --import tsx
 * cli/src/entry.ts ...`, always the current code) or compiled (`bin/pilotfish.js`, what
 * `npx pilotfish` runs; needs `npm run build`). Output is collected from the start, so no
 * line is missed between two waits; the process is killed in teardown if still running.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEFAULT_WAIT_MS } from './wait.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ENTRY = fileURLToPath(new URL('../cli/src/entry.ts', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/pilotfish.js', import.meta.url));

/** The part of a tap Test the helpers need. */
export interface Scope {
  teardown(fn: () => unknown): void;
}

export interface CliOptions {
  /** Run bin/pilotfish.js (the build) instead of the sources. */
  readonly compiled?: boolean;
  /** Added to this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
  /** Extra `--import` modules for the child (e.g. a loader hook). */
  readonly imports?: readonly string[];
  readonly cwd?: string;
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** stdout and stderr interleaved as they arrived. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** The first match of `re` in the output so far or to come; rejects after `ms` with the output. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
  /** SIGTERM (default) and the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function argvFor(args: readonly string[], opts: CliOptions): string[] {
  if (opts.compiled) return [...(opts.imports ?? []).flatMap((i) => ['--import', i]), BIN, ...args];
  return ['--import', 'tsx', ...(opts.imports ?? []).flatMap((i) => ['--import', i]), ENTRY, ...args];
}

/** Starts `pilotfish ...args` in the background. */
export function pilotfish(t: Scope, args: readonly string[], opts: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, argvFor(args, opts), {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let all = '';
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of waiters) w();
  };
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    all += d.toString();
    wake();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    all += d.toString();
    wake();
  });
  let code: number | null | undefined;
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => {
    code = c;
    r(c);
    wake();
  }));
  t.teardown(() => {
    if (code === undefined) child.kill('SIGKILL');
  });
  return {
    child,
    output: () => all,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor: (re, ms = DEFAULT_WAIT_MS * 2) => new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(all);
        if (m === null) {
          if (code !== undefined) done(new Error(`pilotfish ${args.join(' ')} exited (${code}) before printing ${re}; output: ${all.slice(-2000)}`));
          return;
        }
        done(undefined, m);
      };
      const done = (e: Error | undefined, m?: RegExpExecArray): void => {
        waiters.delete(check);
        clearTimeout(timer);
        if (e) reject(e);
        else resolve(m!);
      };
      const timer = setTimeout(() => done(new Error(`timed out after ${ms} ms waiting for ${re}; output: ${all.slice(-2000)}`)), ms);
      waiters.add(check);
      check();
    }),
    stop: (signal = 'SIGTERM') => {
      if (code === undefined) child.kill(signal);
      return exited;
    },
  };
}

/** Runs `pilotfish ...args` to completion (compiled by default: what users run). */
export function pilotfishSync(args: readonly string[], opts: CliOptions & { readonly timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, argvFor(args, { compiled: true, ...opts }), {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
  });
}

/** Runs `pilotfish ...args` from source to completion: exit code and interleaved output. */
export async function pilotfishRun(t: Scope, args: readonly string[], opts: CliOptions & { readonly timeoutMs?: number } = {}): Promise<{ code: number | null; out: string }> {
  const p = pilotfish(t, args, opts);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, out: p.output() };
}
