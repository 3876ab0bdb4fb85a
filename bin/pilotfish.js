#!/usr/bin/env node
// Runs the compiled CLI (npm ci builds it through the `prepare` script).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';

// V8's young generation starts at 1 MB per semi-space and doubles under allocation
// pressure up to 16 MB (32 MB committed), which start-up alone reaches: ~12 MB of RSS
// that only the memory reducer gives back, tens of seconds later, and as much again in
// every peak. Kept at 1 MB, scavenges run 12× as often and GC pauses cost ~22 µs per
// proxied request (vs ~3 µs); at 4 MB, ~4 µs (bench/memory/run.mjs and the GC figures in
// docs/ARCHITECTURE.md). So the young generation may grow up to 4 MB per semi-space.
// --max-semi-space-size cannot be set from here (V8 reads it once, when the heap is
// created), but the growth factor is read at every resize: after each GC, growth is
// allowed (factor 2) below the cap and stopped (factor 1) at it. An explicit
// young-generation flag in the node command line or NODE_OPTIONS wins.
// GC is observed only while the young generation grows: a 'gc' PerformanceObserver costs
// an entry object and a callback per scavenge (2.4% of the CPU at 2,000 h2c requests/s),
// so at the cap it is disconnected, and a slow unref'd check notices when V8's memory
// reducer has shrunk the young generation (idle) and lets it grow again.
const SEMI_SPACE_CAP_BYTES = 4 * 1024 * 1024;
const SHRINK_CHECK_MS = 1000;
const nodeFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
if (!nodeFlags.some((f) => /^--(max[-_]semi[-_]space[-_]size|min[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor)\b/.test(f))) {
  // new_space's size counts both semi-spaces.
  const atCap = () => (v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0) >= 2 * SEMI_SPACE_CAP_BYTES;
  const observer = new PerformanceObserver(() => {
    if (!atCap()) return;
    v8.setFlagsFromString('--semi-space-growth-factor=1');
    observer.disconnect();
    const shrinkCheck = setInterval(() => {
      if (atCap()) return;
      clearInterval(shrinkCheck);
      v8.setFlagsFromString('--semi-space-growth-factor=2');
      observer.observe({ entryTypes: ['gc'] });
    }, SHRINK_CHECK_MS);
    shrinkCheck.unref();
  });
  observer.observe({ entryTypes: ['gc'] });
}

// After each full GC V8 lets the old generation grow by a factor of up to 4 (with a heap
// limit of ≥ 2 GB: 4 GB here, 24 GB of RAM) before the next one, and by at least 8 MB.
// A proxy's live heap barely moves under load (~9 MB on the HTTP benchmark's bootstrap,
// h2c load included), but requests in flight across two scavenges are promoted and die in
// the old generation (~2.2 KB per h2c request, three quarters of it node:http2's stream
// objects: bench/memory/promoted.mjs): under h2c load (8 connections × 16 streams) it
// swung between ~13 and ~41 MB, ~25 MB of peak RSS that was garbage. A fixed factor of
// 1.5 keeps the limit at live + max(50%, 8 MB) + the young generation: peak RSS under that
// load 104 → 81 MB; ~4× as many mark-compacts (10 vs 2 per ~100,000 requests, +0.5 µs of
// pause per request), CPU per request within noise (bench/memory/gc-cost.mjs). V8 reads
// the flag whenever it computes the limit, so it can be set here; an explicit one on the
// node command line or in NODE_OPTIONS wins.
if (!nodeFlags.some((f) => /^--heap[-_]growing[-_]percent\b/.test(f))) v8.setFlagsFromString('--heap-growing-percent=50');

// llhttp (the raw HTTP/1.1 path's parser) is compiled on V8's baseline wasm compiler only,
// which removed the ~30 MB jump of RSS in the first second of load: proxy/src/http1/llhttp.ts.

const compiled = new URL('../dist/cli/src/main.js', import.meta.url);
if (!existsSync(fileURLToPath(compiled))) {
  process.stderr.write('pilotfish: not built yet; run `npm run build` (npm ci does it for you)\n');
  process.exit(1);
}
const { main } = await import(freshBundle() ?? compiled.href);

const code = await main(process.argv.slice(2));
if (code !== undefined && code !== null) process.exitCode = code;

/**
 * dist/bundle/main.js (cli/bundle.mjs, run by `npm run build` after tsc) when it is newer
 * than every compiled file it was built from: one file starts ~40% sooner than ~180 ES
 * modules and holds ~5 MB less. A bare `tsc` afterwards makes it stale, and then the
 * unbundled dist/ runs, so the code that runs is always the code last compiled.
 * PILOTFISH_BUNDLE=0 runs the unbundled build.
 */
function freshBundle() {
  if (process.env.PILOTFISH_BUNDLE === '0') return undefined;
  const root = new URL('../', import.meta.url);
  try {
    const manifest = JSON.parse(readFileSync(new URL('dist/bundle/inputs.json', root), 'utf8'));
    const entry = new URL(manifest.entry, root);
    const builtAt = statSync(entry).mtimeMs;
    for (const input of manifest.inputs) if (statSync(new URL(input, root)).mtimeMs > builtAt) return undefined;
    return entry.href;
  } catch {
    return undefined; // no bundle (a bare tsc build, the container image) or an input gone
  }
}
