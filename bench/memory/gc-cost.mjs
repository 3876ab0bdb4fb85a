#!/usr/bin/env node
// What V8's garbage collector costs `pilotfish proxy` under load, and the peak RSS it leaves,
// for builds or node flags side by side in alternating rounds of one run: each round starts
// a fresh proxy (the HTTP benchmark's bootstrap, `--trace-gc`), runs the loads one after the
// other (h2c: h2load -c8 -m16; h1: wrk -c64; rate-h2c: h2load 20 connections at 2,000 req/s in all),
// and reports per variant the peak RSS (VmHWM), CPU per request, and the scavenges and
// mark-compacts with their main-thread pauses (concurrent marking runs on V8's worker
// threads and shows in CPU only). Pause time per request is steadier than CPU per request on
// a busy machine: use it to see what a heap flag trades.
//
//   node bench/memory/gc-cost.mjs [--root DIR]... [--flags "NODE FLAGS"]... [--rounds 3] [--loads h2c,h1,rate-h2c] [--duration 5]
//
// --root DIR: another build (a directory with bin/pilotfish.js and dist/); --flags: this
// checkout with those node flags (e.g. --flags=--heap-growing-percent=0 undoes the launcher's).
import { parseArgs } from 'node:util';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrigin } from '../http/lib/targets.mjs';
import { runCommand } from '../http/lib/load.mjs';
import { pinned } from '../http/lib/procs.mjs';
import { cpuSeconds } from '../http/lib/proc.mjs';
import { median } from '../http/lib/stats.mjs';
import { startPilotfish, freePort, minimalBootstrap } from './lib/pilotfish.mjs';
import { hwmMB } from './lib/smaps.mjs';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: o } = parseArgs({ options: {
  help: { type: 'boolean' },
  root: { type: 'string', multiple: true, default: [] },
  flags: { type: 'string', multiple: true, default: [] },
  rounds: { type: 'string', default: '3' },
  loads: { type: 'string', default: 'h2c,h1,rate-h2c' },
  duration: { type: 'string', default: '5' },
  'proxy-core': { type: 'string', default: '0' }, 'load-core': { type: 'string', default: '1' },
} });
if (o.help) {
  process.stdout.write('usage: node bench/memory/gc-cost.mjs [--root DIR]... [--flags "NODE FLAGS"]... [--rounds N] [--loads h2c,h1,rate-h2c] [--duration S]\n');
  process.exit(0);
}
const seconds = Number(o.duration);
const proxyCore = Number(o['proxy-core']), loadCore = Number(o['load-core']);
const dir = mkdtempSync(join(tmpdir(), 'pf-gc-cost-'));

const variants = [{ label: 'pilotfish', root: REPO, args: [] }];
for (const r of o.root) variants.push({ label: `pilotfish ${basename(resolve(r))}`, root: resolve(r), args: [] });
for (const f of o.flags) variants.push({ label: `pilotfish ${f}`, root: REPO, args: f.split(/\s+/).filter(Boolean) });

/** Runs one load against `url`; resolves with the number of requests answered 2xx. */
async function load(kind, url) {
  const args = kind === 'h2c' ? ['h2load', '-t1', '-c8', '-m16', `-D${seconds}`, url]
    : kind === 'h1' ? ['wrk', '-t1', '-c64', `-d${seconds}s`, url]
    : kind === 'rate-h2c' ? ['h2load', '-t1', '-c20', '-m1', '--rps', '100', `-D${seconds}`, url]
    : undefined;
  if (!args) throw new Error(`unknown load ${kind} (h2c, h1, rate-h2c)`);
  const r = await runCommand(...pinned(loadCore, args[0], args.slice(1)), (seconds + 20) * 1000);
  if (r.code !== 0) throw new Error(`${args[0]} failed: ${r.err || r.out}`);
  const m = /(\d+) 2xx/.exec(r.out) ?? /(\d+) requests in/.exec(r.out);
  return m ? Number(m[1]) : 0;
}

/** Scavenges and mark-compacts in a --trace-gc log: count and main-thread pause (ms). */
function gcPauses(text) {
  const g = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0 };
  for (const m of text.matchAll(/: (Scavenge|Mark-Compact)[^,]*, ([\d.]+) \/ [\d.]+ ms/g)) {
    if (m[1] === 'Scavenge') { g.scavenges++; g.scavengeMs += Number(m[2]); } else { g.markCompacts++; g.markCompactMs += Number(m[2]); }
  }
  return g;
}

const origin = await startOrigin({ dir, core: loadCore });
const results = new Map(variants.map((v) => [v.label, []]));
try {
  console.log(`node ${process.version}; loads ${o.loads}, ${seconds} s each; proxy on core ${proxyCore}, load and origin on core ${loadCore}\n`);
  for (let round = 1; round <= Number(o.rounds); round++) {
    for (const v of variants) {
      const port = await freePort(), adminPort = await freePort();
      const config = join(dir, `pf-${port}.yaml`);
      writeFileSync(config, minimalBootstrap({ port, adminPort, upstreamPort: origin.h1Port }));
      const logFile = join(dir, `pf-${port}.log`);
      const p = await startPilotfish({ root: v.root, config, core: proxyCore, nodeArgs: ['--trace-gc', ...v.args], logFile, readyUrl: `http://127.0.0.1:${adminPort}/ready` });
      let requests = 0, cpu = 0, peak = 0, startLog = 0;
      try {
        startLog = readFileSync(logFile, 'utf8').length; // start-up's GCs are not the load's
        const cpu0 = cpuSeconds(p.pid);
        for (const kind of o.loads.split(',')) requests += await load(kind, `http://127.0.0.1:${port}/`);
        cpu = cpuSeconds(p.pid) - cpu0;
        peak = hwmMB(p.pid);
      } finally {
        await p.stop();
      }
      const g = gcPauses(readFileSync(logFile, 'utf8').slice(startLog));
      const r = { requests, peak, cpuUs: (cpu * 1e6) / Math.max(1, requests), gcUs: ((g.scavengeMs + g.markCompactMs) * 1000) / Math.max(1, requests), ...g };
      results.get(v.label).push(r);
      console.log(`round ${round} ${v.label.padEnd(28)} ${requests} requests, peak ${peak.toFixed(1)} MB, CPU ${r.cpuUs.toFixed(1)} µs/req; `
        + `${g.scavenges} scavenges ${g.scavengeMs.toFixed(0)} ms, ${g.markCompacts} mark-compacts ${g.markCompactMs.toFixed(0)} ms; GC pauses ${r.gcUs.toFixed(2)} µs/req`);
    }
  }
  console.log('\n| variant | peak RSS MB | CPU µs/req | GC pauses µs/req | mark-compacts | mark-compact pauses ms | scavenges |\n|---|---|---|---|---|---|---|');
  for (const [label, rs] of results) {
    const med = (k) => median(rs.map((r) => r[k]));
    console.log(`| ${label} | ${med('peak').toFixed(1)} | ${med('cpuUs').toFixed(1)} | ${med('gcUs').toFixed(2)} | ${med('markCompacts')} | ${med('markCompactMs').toFixed(0)} | ${med('scavenges')} |`);
  }
  console.log('\n(medians over rounds)');
} finally {
  await origin.proc.stop();
  rmSync(dir, { recursive: true, force: true });
}
