/**
 * `pilotfish fastpath ...` through the real CLI composition root, as a process.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  const script = `const { main } = await import('./cli/src/main.ts'); process.exitCode = await main(${JSON.stringify(args)});`;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

t.test('fastpath --help', async (t) => {
  const r = await cli(['fastpath', '--help']);
  t.equal(r.code, 0, r.out);
  t.match(r.out, /usage: pilotfish fastpath <command>/);
});

t.test('fastpath status says whether the fast path can run, and why not', async (t) => {
  const r = await cli(['fastpath', 'status']);
  const last = r.out.trim().split('\n').pop() ?? '';
  if (r.code === 0) t.match(last, /^fastpath: available/);
  else {
    t.equal(r.code, 1, r.out);
    t.match(last, /^fastpath: unavailable: \S/, 'one line with the reason');
  }
  t.match(r.out, /^kernel: /m);
});

t.test('unknown subcommand', async (t) => {
  const r = await cli(['fastpath', 'frobnicate']);
  t.equal(r.code, 2);
  t.match(r.out, /unknown fastpath command/);
});
