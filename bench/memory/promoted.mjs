#!/usr/bin/env node
// What the old generation fills with under load: the allocations that survive the young
// generation (a scavenge) and are then collected by a mark-compact, or still live at the end,
// by allocating function. That garbage is what grows the old generation (and peak RSS)
// between mark-compacts; code that allocates it is where a cut in the peak comes from.
//
// Starts `pilotfish proxy` with the HTTP benchmark's bootstrap and lib/probe.mjs
// ($PF_PROBE_PROMOTED: V8's sampling heap profiler, objects collected by minor GCs dropped),
// starts sampling once it is ready, runs one load (h2c: h2load -c8 -m16; h1: wrk -c64),
// then prints the sampled bytes per request by allocating function and by file.
//
//   node bench/memory/promoted.mjs [--load h2c|h1] [--duration 5] [--root DIR] [--top 25]
import { parseArgs } from 'node:util';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrigin } from '../http/lib/targets.mjs';
import { runCommand } from '../http/lib/load.mjs';
import { pinned } from '../http/lib/procs.mjs';
import { startPilotfish, freePort, minimalBootstrap } from './lib/pilotfish.mjs';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: o } = parseArgs({ options: {
  help: { type: 'boolean' }, load: { type: 'string', default: 'h2c' }, duration: { type: 'string', default: '5' },
  root: { type: 'string', default: REPO }, top: { type: 'string', default: '25' },
} });
if (o.help) {
  process.stdout.write('usage: node bench/memory/promoted.mjs [--load h2c|h1] [--duration S] [--root DIR] [--top N]\n');
  process.exit(0);
}
const PROBE = fileURLToPath(new URL('./lib/probe.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pf-promoted-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(file) {
  for (let i = 0; i < 3000 && !existsSync(file); i++) await sleep(10);
  await sleep(100);
  return JSON.parse(readFileSync(file, 'utf8'));
}

const origin = await startOrigin({ dir, core: 1 });
try {
  const port = await freePort(), adminPort = await freePort();
  const config = join(dir, 'bootstrap.yaml');
  writeFileSync(config, minimalBootstrap({ port, adminPort, upstreamPort: origin.h1Port }));
  const profileFile = join(dir, 'promoted.json'), reportFile = join(dir, 'probe.json');
  const p = await startPilotfish({
    root: resolve(o.root), config, core: 0, nodeArgs: ['--import', PROBE], logFile: join(dir, 'pilotfish.log'),
    env: { PF_PROBE_OUT: reportFile, PF_PROBE_PROMOTED: profileFile }, readyUrl: `http://127.0.0.1:${adminPort}/ready`,
  });
  let requests = 0;
  try {
    process.kill(p.pid, 'SIGUSR2'); // start sampling
    await sleep(200);
    const url = `http://127.0.0.1:${port}/`, s = Number(o.duration);
    const args = o.load === 'h1' ? ['wrk', '-t1', '-c64', `-d${s}s`, url] : ['h2load', '-t1', '-c8', '-m16', `-D${s}`, url];
    const r = await runCommand(...pinned(1, args[0], args.slice(1)), (s + 20) * 1000);
    const m = /(\d+) 2xx/.exec(r.out) ?? /(\d+) requests in/.exec(r.out);
    requests = m ? Number(m[1]) : 0;
    process.kill(p.pid, 'SIGUSR2'); // stop, write the profile and the report
    await waitFor(reportFile);
  } finally {
    await p.stop();
  }
  const profile = await waitFor(profileFile);
  const byFn = new Map(), byFile = new Map();
  let total = 0;
  const walk = (node) => {
    const self = node.selfSize;
    if (self > 0) {
      const f = node.callFrame;
      const file = f.url ? (f.url.startsWith('file:') ? relative(REPO, fileURLToPath(f.url)) : f.url) : '(native/V8)';
      const fn = `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`;
      byFn.set(fn, (byFn.get(fn) ?? 0) + self);
      byFile.set(file, (byFile.get(file) ?? 0) + self);
      total += self;
    }
    for (const c of node.children) walk(c);
  };
  walk(profile.head);
  const perReq = (b) => (requests ? b / requests : 0).toFixed(0);
  console.log(`${o.load}, ${o.duration} s: ${requests} requests; sampled bytes that survived a scavenge: ${(total / 1048576).toFixed(1)} MB, ${perReq(total)} B per request\n`);
  console.log('| allocating function | B per request | share |\n|---|---|---|');
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(o.top))) console.log(`| ${k} | ${perReq(v)} | ${((v / total) * 100).toFixed(1)}% |`);
  console.log('\n| file | B per request | share |\n|---|---|---|');
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, Number(o.top))) console.log(`| ${k} | ${perReq(v)} | ${((v / total) * 100).toFixed(1)}% |`);
} finally {
  await origin.proc.stop();
  rmSync(dir, { recursive: true, force: true });
}
