import t from 'tap';

// Long by nature; the machine is shared (2 cores), so leave room beyond tap's default.
t.setTimeout(600_000);
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, UserFilterManager } from '../../src/index.js';
import { ROUTER, filter, info, req, res } from '../helpers.js';
import { inline, tagger } from './fixtures.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function heapAfterGc(): Promise<number> {
  // Terminated workers finish exiting asynchronously; let them, then collect twice
  // (FinalizationRegistry callbacks run between the two).
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 50));
    gc();
  }
  return process.memoryUsage().heapUsed;
}

t.test('1,000 reloads (with traffic in between) do not grow memory', async (t) => {
  const mgr = new UserFilterManager();
  t.teardown(() => mgr.close());
  const chain = buildHttpFilterChain([filter('uf-mem', 'pilotfish.filters.http.module', inline(tagger('v0'), 'v0', { keep_versions: 1 })), ROUTER], new Diagnostics(), 'f', { userFilters: mgr })!;
  t.same(await chain.ready, []);
  const reload = async (n: number): Promise<void> => {
    // A fresh source text each time, as a real new version would be.
    const r = await mgr.apply('uf-mem', { config: inline(tagger(`v${n}`) + `\n// build ${n}\n`, `v${n}`, { keep_versions: 1 }) });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const inf = info();
    const q = req();
    await chain.decodeHeaders(q, inf);
    await chain.encodeHeaders(res(), inf);
    chain.streamComplete(inf);
    if (q.headers['x-filter-version'] !== `v${n}`) throw new Error(`served by ${String(q.headers['x-filter-version'])}`);
  };
  const WARMUP = 100;
  const TOTAL = 1000;
  for (let n = 1; n <= WARMUP; n++) await reload(n);
  const before = await heapAfterGc();
  const t0 = performance.now();
  for (let n = WARMUP + 1; n <= TOTAL; n++) await reload(n);
  const perReloadMs = (performance.now() - t0) / (TOTAL - WARMUP);
  const after = await heapAfterGc();
  const growthMb = (after - before) / 1024 / 1024;
  t.comment(`heap after gc: ${(before / 1048576).toFixed(1)} MB after ${WARMUP} reloads, ${(after / 1048576).toFixed(1)} MB after ${TOTAL}; ${perReloadMs.toFixed(1)} ms per reload`);
  t.ok(growthMb < 4, `heap grew ${growthMb.toFixed(2)} MB over ${TOTAL - WARMUP} reloads`);
  const d = mgr.describe() as { versions: unknown[] }[];
  t.equal(d[0]!.versions.length, 1, 'only the active version is loaded');
});
