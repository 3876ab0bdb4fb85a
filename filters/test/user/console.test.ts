import t from 'tap';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, UserFilterManager } from '../../src/index.js';
import { ROUTER, filter, info, req } from '../helpers.js';
import { inline } from './fixtures.js';
import { until } from '../../../test-support/wait.js';

t.setTimeout(120_000);

// A user filter's console output reaches the proxy's log with the filter's name and
// version (it used to be discarded), and a filter that logs on every call cannot flood it.

const CHATTY = `
exports.onRequest = (req) => {
  const n = Number(req.headers['x-lines'] || '1');
  for (let i = 0; i < n; i++) console.warn('line', i, { path: req.path });
};
`;

t.test('console output is delivered with name, version and level; floods are rate-limited and counted', async (t) => {
  const mgr = new UserFilterManager();
  t.teardown(() => mgr.close());
  const lines: { name: string; version: string; level: string; line: string; dropped: number }[] = [];
  mgr.onLog = (name, version, level, line, dropped) => lines.push({ name, version, level, line, dropped });
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('chatty', 'pilotfish.filters.http.module', inline(CHATTY, '2.1.0')), ROUTER], diag, 'f', { userFilters: mgr });
  t.same(diag.errors, []);
  t.same(await chain!.ready, []);
  await chain!.decodeHeaders(req({ path: '/one' }), info());
  await until('the first console line', () => lines.length >= 1);
  t.same(lines[0], { name: 'chatty', version: '2.1.0', level: 'warn', line: 'line 0 {"path":"/one"}', dropped: 0 });

  // 1,000 lines in one call: at most the per-second allowance gets through now...
  await chain!.decodeHeaders(req({ path: '/flood' }, { 'x-lines': '1000' }), info());
  await until('the flood to be seen', () => lines.some((l) => l.line.includes('/flood')));
  await new Promise((r) => setTimeout(r, 200));
  const flood = lines.filter((l) => l.line.includes('/flood'));
  t.ok(flood.length <= 20, `${flood.length} of 1000 lines delivered in the first second`);
  // ...and the next line after the window says how many were dropped.
  await new Promise((r) => setTimeout(r, 1100));
  await chain!.decodeHeaders(req({ path: '/after' }), info());
  const after = await until('the line after the flood', () => lines.find((l) => l.line.includes('/after')));
  t.equal(after.dropped + flood.length, 1000, 'every suppressed line is counted');
});
