// Loaded into a process under measurement with `node --import <this file>`: on SIGUSR2 it
// writes what the process's memory is made of to $PF_PROBE_OUT (JSON): V8 heap by space,
// code statistics, process.memoryUsage(), and the CommonJS modules loaded. With
// $PF_PROBE_ESM set it also records every ES module loaded (a module.register hook,
// which runs on its own thread and so costs a few MB itself: use it for lists, not RSS).
// With $PF_PROBE_PROMOTED set, the first SIGUSR2 starts sampling the allocations that
// survive the young generation (V8's sampling heap profiler, keeping what a mark-compact
// collects but not what a scavenge does: the garbage that makes the old generation grow
// under load) and the second writes that profile there (promoted.mjs reads it) and the report.
import { writeFileSync, statSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { Session } from 'node:inspector';
import v8 from 'node:v8';

const out = process.env.PF_PROBE_OUT;
if (process.env.PF_PROBE_ESM) {
  register(new URL('./esm-recorder.mjs', import.meta.url), { data: { file: process.env.PF_PROBE_ESM } });
}

function size(file) {
  try { return statSync(file).size; } catch { return 0; }
}

let promoted;
process.on('SIGUSR2', () => {
  if (process.env.PF_PROBE_PROMOTED && !promoted) {
    promoted = new Session();
    promoted.connect();
    // 4 KB mean interval: ~one sample per few requests, cheap enough to leave the load's shape as is.
    promoted.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
    return;
  }
  if (promoted) {
    promoted.post('HeapProfiler.stopSampling', (err, r) => {
      if (!err) writeFileSync(process.env.PF_PROBE_PROMOTED, JSON.stringify(r.profile));
    });
  }
  // With --expose-gc and $PF_PROBE_GC: a full GC first, so heapUsed is live data only.
  if (process.env.PF_PROBE_GC && typeof globalThis.gc === 'function') globalThis.gc();
  const require = createRequire(import.meta.url);
  const cjs = Object.keys(require.cache);
  const report = {
    memoryUsage: process.memoryUsage(),
    heapSpaces: v8.getHeapSpaceStatistics(),
    heapCode: v8.getHeapCodeStatistics(),
    heap: v8.getHeapStatistics(),
    cjs: cjs.map((f) => ({ file: f, bytes: size(f) })),
  };
  // $PF_PROBE_SNAPSHOT: also a heap snapshot there (for a breakdown by object type),
  // written before the report, whose appearance tells the caller the probe is done.
  if (process.env.PF_PROBE_SNAPSHOT) v8.writeHeapSnapshot(process.env.PF_PROBE_SNAPSHOT);
  if (out) writeFileSync(out, JSON.stringify(report));
});
