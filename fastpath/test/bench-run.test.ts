/**
 * bench/fastpath/run.ts behaves like a tool: --help prints usage and starts nothing; a
 * finished run exits; an interrupted one (SIGTERM, SIGINT) removes what it made and
 * restores kernel.bpf_stats_enabled. And bench/README.md names entry points that exist.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { bpfUnavailable } from './helpers/bpf.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const runTs = join(root, 'bench', 'fastpath', 'run.ts');
const tsx = join(root, 'node_modules', '.bin', 'tsx');
const benchTmps = () => readdirSync(tmpdir()).filter((f) => f.startsWith('pf-bench-'));

function run(args: string[], onStderr?: (line: string) => void) {
  const p = spawn(tsx, [runTs, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  createInterface({ input: p.stderr }).on('line', (l) => onStderr?.(l));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }>((resolve) =>
    p.on('exit', (code, signal) => resolve({ code, signal, stdout })));
  return { p, done };
}

t.test('--help prints usage and starts nothing', async (t) => {
  const before = benchTmps().length;
  const { done } = run(['--help']);
  const r = await done;
  t.equal(r.code, 0);
  t.match(r.stdout, /^Usage: npx tsx bench\/fastpath\/run\.ts/);
  t.match(r.stdout, /--only PART/);
  t.equal(benchTmps().length, before, 'no temp dir made');
});

t.test('bad arguments are refused with the usage', async (t) => {
  const { done } = run(['--only', 'everything']);
  const r = await done;
  t.equal(r.code, 2);
});

t.test('bench/README.md names entry points that exist', async (t) => {
  const readme = readFileSync(join(root, 'bench', 'README.md'), 'utf8');
  const paths = [...new Set([...readme.matchAll(/\b(bench\/[\w./-]+\.(?:ts|mjs|js|c))\b/g)].map((m) => m[1]!))];
  t.ok(paths.length > 5, `${paths.length} paths named`);
  for (const p of paths) t.ok(existsSync(join(root, p)), `${p} exists`);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const m = /`npm run bench`[^`]*`([^`]+)`/.exec(readme);
  if (m) t.match(pkg.scripts.bench ?? '', m[1]!.replace(/^node /, ''), 'what README says `npm run bench` runs is what package.json runs');
});

const why = await bpfUnavailable();
t.test('a finished run exits; an interrupted run cleans up', { skip: why ? `needs BPF: ${why}` : false }, async (t) => {
  const stats = () => readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const statsBefore = stats();
  const cgRoot = '/sys/fs/cgroup/unified';

  const fin = run(['--only', 'observe', '--rounds', '1', '--seconds', '1']);
  const timer = setTimeout(() => fin.p.kill('SIGKILL'), 90_000);
  const r = await fin.done;
  clearTimeout(timer);
  t.equal(r.code, 0, 'a finished run exits by itself, with 0');
  t.match(r.stdout, /## connection telemetry overhead/);

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    let id = '';
    let tmp = '';
    let started!: () => void;
    const measuring = new Promise<void>((res) => { started = res; });
    const run2 = run(['--only', 'observe', '--rounds', '5', '--seconds', '3'], (l) => {
      const m = /^bench: run (\S+), namespaces \S+, temp (\S+)/.exec(l);
      if (m) { id = m[1]!; tmp = m[2]!; }
      if (/^round 1 observe:/.test(l)) started();
    });
    await measuring;
    t.equal(stats(), '1', 'stats enabled while it runs');
    t.ok(existsSync(`${cgRoot}/pf-bench-obs-${id}`), 'its cgroup exists while it runs');
    run2.p.kill(sig);
    const r2 = await run2.done;
    t.equal(r2.code, 130, `${sig}: exits 130`);
    t.equal(stats(), statsBefore, `${sig}: kernel.bpf_stats_enabled restored`);
    t.notOk(existsSync(tmp), `${sig}: temp dir removed`);
    t.notOk(existsSync(`${cgRoot}/pf-bench-obs-${id}`), `${sig}: cgroup removed`);
    t.notOk(readdirSync('/run/netns').some((n) => n.endsWith(`-${id}`)), `${sig}: no namespace left`);
  }
});
