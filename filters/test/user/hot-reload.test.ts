import t from 'tap';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, handleUserFilterAdmin, sha256Hex, UserFilterManager, type HttpFilterChain } from '../../src/index.js';
import { ROUTER, filter, info, req } from '../helpers.js';
import { inline, tagger } from './fixtures.js';
import { until } from '../../../test-support/wait.js';

async function servedVersion(chain: HttpFilterChain): Promise<unknown> {
  const q = req();
  const i = info();
  const r = await chain.decodeHeaders(q, i);
  chain.streamComplete(i);
  return r ?? q.headers['x-filter-version'];
}


t.test('a watched manifest hot-swaps the module; a manifest that does not verify is rejected', async (t) => {
  const mgr = new UserFilterManager();
  t.teardown(() => mgr.close());
  const events: string[] = [];
  mgr.onEvent = (_n, v, e, why) => events.push(`${v}:${e}${why ? `:${why}` : ''}`);
  const dir = t.testdir();
  const manifest = join(dir, 'filter.json');
  const publish = (version: string, source: string, sha = sha256Hex(source)): void => {
    writeFileSync(join(dir, `filter-${version}.js`), source);
    // Module first, then the manifest by rename: the watcher never sees half a manifest.
    writeFileSync(`${manifest}.tmp`, JSON.stringify({ version, sha256: sha, path: `filter-${version}.js` }));
    renameSync(`${manifest}.tmp`, manifest);
  };
  publish('1.0.0', tagger('1.0.0'));
  const diag = new Diagnostics();
  const chain = buildHttpFilterChain([filter('uf-watch', 'pilotfish.filters.http.module', {
    manifest, api_version_range: '^1.0.0', time_budget_ms: 5000,
  }), ROUTER], diag, 'f', { userFilters: mgr });
  t.same(diag.errors, []);
  t.same(await chain!.ready, []);
  t.equal(await servedVersion(chain!), '1.0.0');

  publish('2.0.0', tagger('2.0.0'));
  await until('2.0.0 to serve', async () => (await servedVersion(chain!)) === '2.0.0');
  t.pass('swapped to 2.0.0');

  publish('3.0.0', tagger('3.0.0'), 'b'.repeat(64));
  await until('the bad manifest to be rejected', async () => events.some((e) => e.includes('manifest_rejected')));
  t.match(events.find((e) => e.includes('manifest_rejected')), /integrity check failed/);
  t.equal(await servedVersion(chain!), '2.0.0', 'still serving the last good version');
});

t.test('admin handler: describe, apply (NACK text on rejection), rollback', async (t) => {
  const mgr = new UserFilterManager();
  t.teardown(() => mgr.close());
  const q = new URLSearchParams({ name: 'uf-admin' });
  const ok = await handleUserFilterAdmin(mgr, 'POST', '/filters/apply', q, JSON.stringify(inline(tagger('1.0.0'), '1.0.0')));
  t.equal(ok.status, 200);
  t.match(JSON.parse(ok.body), { name: 'uf-admin', version: '1.0.0', state: 'active' });
  t.equal((await handleUserFilterAdmin(mgr, 'POST', '/filters/apply', q, JSON.stringify(inline(tagger('2.0.0'), '2.0.0')))).status, 200);
  const bad = await handleUserFilterAdmin(mgr, 'POST', '/filters/apply', q, JSON.stringify({ ...inline(tagger('3.0.0'), '3.0.0'), api_version_range: '>=2' }));
  t.equal(bad.status, 400);
  t.match(bad.body, /^filters\.uf-admin\.api_version_range: module needs filter API >=2/);
  t.equal((await handleUserFilterAdmin(mgr, 'POST', '/filters/apply', q, '{nope')).status, 400);
  const listing = await handleUserFilterAdmin(mgr, 'GET', '/filters', new URLSearchParams(), '');
  t.match(JSON.parse(listing.body), [{ name: 'uf-admin', active_version: '2.0.0' }]);
  const rb = await handleUserFilterAdmin(mgr, 'POST', '/filters/rollback', q, '');
  t.equal(rb.status, 200);
  t.match(JSON.parse(rb.body), [{ active_version: '1.0.0' }]);
  t.equal((await handleUserFilterAdmin(mgr, 'POST', '/filters/rollback', q, '')).status, 409);
  t.equal((await handleUserFilterAdmin(mgr, 'GET', '/filters/apply', q, '')).status, 405);
});
