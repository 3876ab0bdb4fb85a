#!/usr/bin/env node
// Runs the whole test suite (type check, module boundaries, then node-tap over every *.test.ts) and ends
// with one plain summary line, "N passed, N failed, N skipped", that any CI can read.
import { spawn, spawnSync } from 'node:child_process';

const tsc = spawnSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.log('typecheck: 0 passed, 1 failed');
  process.exit(1);
}

// Module boundaries (imports through index.ts only, nothing imports cli/, no cycles).
const boundaries = spawnSync(process.execPath, ['scripts/check-boundaries.mjs'], { stdio: 'inherit' });
if (boundaries.status !== 0) {
  console.log('boundaries: 0 passed, 1 failed');
  process.exit(1);
}

const child = spawn('npx', ['tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail = (tail + d.toString()).slice(-4000);
});
child.on('exit', (code) => {
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))?/.exec(tail);
  const [pass, fail, skip] = m ? [Number(m[2] ?? 0), Number(m[3] ?? 0), Number(m[4] ?? 0)] : [0, code === 0 ? 0 : 1, 0];
  console.log(`\ntests: ${pass} passed, ${fail} failed, ${skip} skipped`);
  if (code !== 0 || process.argv.length > 2) process.exit(code ?? 1);
  // Coverage of the pure parts, enforced per part (~1 min on a quiet host). It runs after the suite,
  // never beside it: tap keeps its process data in .tap/, which two concurrent runs corrupt.
  const coverage = spawnSync(process.execPath, ['scripts/coverage.mjs', '--check'], { stdio: 'inherit' });
  if (coverage.status !== 0) {
    console.log('coverage: 0 passed, 1 failed');
    process.exit(1);
  }
  process.exit(0);
});
