#!/usr/bin/env node
// Runs the compiled CLI (npm ci builds it through the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';

// V8's young generation starts at 1 MB per semi-space and doubles under allocation
// pressure up to 16 MB (32 MB committed), which start-up alone reaches: ~12 MB of idle RSS
// that only the memory reducer gives back, tens of seconds later. A growth factor of 1
// keeps it at its initial size (bench/memory/run.mjs: same throughput within noise,
// lower idle and peak RSS). --max-semi-space-size cannot be set from here (V8 reads it
// once, when the heap is created), but the growth factor is read at every resize. An
// explicit young-generation flag in the node command line or NODE_OPTIONS wins.
const nodeFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
if (!nodeFlags.some((f) => /^--(max-semi-space-size|min-semi-space-size|semi-space-growth-factor)\b/.test(f))) {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

const compiled = new URL('../dist/cli/src/main.js', import.meta.url);
if (!existsSync(fileURLToPath(compiled))) {
  process.stderr.write('pilotfish: not built yet; run `npm run build` (npm ci does it for you)\n');
  process.exit(1);
}
const { main } = await import(compiled.href);
const code = await main(process.argv.slice(2));
if (code !== undefined && code !== null) process.exitCode = code;
