/**
 * `pilotfish fastpath ...` through the real CLI composition root, as a process.
 */
import t from 'tap';
import { pilotfishRun } from '../test-support/cli.js';

const cli = (args: string[]) => pilotfishRun(t, args);

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
