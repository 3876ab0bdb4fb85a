#!/usr/bin/env node
// Start to ready, many times: spawn -> admin /ready 200 of `pilotfish proxy` with the
// minimal static HTTP bootstrap, against the bare Node floor (`node -e` serving HTTP:
// spawn -> first answer) in alternating rounds of one run. Start-up is short and a loaded
// machine makes single samples swing by 2-3x, so this takes many rounds and reports
// medians and the ratio to the floor measured alongside (run.mjs measures it once per round).
//
//   node bench/memory/start.mjs [--rounds 15] [--root DIR]... [--core 0] [--json]
//
// --root DIR adds another build (before/after); --json writes the bootstrap as JSON (no
// YAML parser: Istio's envoy-rev.json) instead of YAML.
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { startPilotfish, freePort, get, minimalBootstrap } from './lib/pilotfish.mjs';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: o } = parseArgs({ options: {
  rounds: { type: 'string', default: '15' }, root: { type: 'string', multiple: true, default: [] },
  core: { type: 'string', default: '0' }, json: { type: 'boolean' }, help: { type: 'boolean' },
} });
if (o.help) {
  process.stdout.write('usage: node bench/memory/start.mjs [--rounds 15] [--root DIR]... [--core 0] [--json]\n');
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'pf-start-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const yaml = createRequire(import.meta.url)('yaml');

async function floor() {
  const port = await freePort();
  const t0 = performance.now();
  const p = spawn('taskset', ['-c', o.core, process.execPath, '-e', `require('http').createServer((q,s)=>s.end('ok')).listen(${port},'127.0.0.1')`], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 6000; i++) {
      if ((await get(`http://127.0.0.1:${port}/`, 500)).status === 200) return performance.now() - t0;
      await sleep(5);
    }
    throw new Error('node floor not answering');
  } finally {
    p.kill('SIGKILL');
  }
}

async function pilotfish(root) {
  const port = await freePort(), adminPort = await freePort();
  const text = minimalBootstrap({ port, adminPort, upstreamPort: 9 });
  const config = join(dir, `b-${port}.${o.json ? 'json' : 'yaml'}`);
  writeFileSync(config, o.json ? JSON.stringify(yaml.parse(text)) : text);
  const p = await startPilotfish({ root, config, core: o.core, logFile: join(dir, 'pilotfish.log'), readyUrl: `http://127.0.0.1:${adminPort}/ready` });
  await p.stop();
  return p.readyMs;
}

const variants = [['node floor', floor], ...[...o.root, REPO].map((r) => [`pilotfish ${r === REPO ? '(this checkout)' : basename(resolve(r))}`, () => pilotfish(resolve(r))])];
const samples = new Map(variants.map(([label]) => [label, []]));
const load0 = loadavg()[0];
try {
  for (let round = 0; round < Number(o.rounds); round++) {
    for (const [label, run] of variants) samples.get(label).push(await run());
    await sleep(200);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const floorMs = median(samples.get('node floor'));
console.log(`# start to ready, minimal static HTTP bootstrap (${o.json ? 'JSON' : 'YAML'})\n`);
console.log(`${new Date().toISOString()}, node ${process.version}, ${o.rounds} alternating rounds, pinned to core ${o.core}, load average ${load0.toFixed(1)} -> ${loadavg()[0].toFixed(1)}\n`);
console.log('| target | median ms | min ms | max ms | median - floor ms |\n|---|---|---|---|---|');
for (const [label] of variants) {
  const xs = samples.get(label);
  console.log(`| ${label} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} | ${label === 'node floor' ? '–' : (median(xs) - floorMs).toFixed(0)} |`);
}
