#!/usr/bin/env node
// What pilotfish's RSS is made of at its peak under load: RSS is sampled every 200 ms while
// one load runs (h1: wrk -c64; h2c: h2load -c8 -m16), and at each new high the V8 heap by
// space (the probe, bench/memory/lib/probe.mjs) and RSS by mapping kind (smaps) are read.
// The report is the reading at the highest RSS: what the peak is made of, so a flag or a
// change can be aimed at its biggest part.
//
//   node bench/memory/peak-anatomy.mjs [--load h1|h2c] [--duration 8] [--node-arg ARG]...
import { parseArgs } from 'node:util';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrigin } from '../http/lib/targets.mjs';
import { runCommand } from '../http/lib/load.mjs';
import { pinned } from '../http/lib/procs.mjs';
import { startPilotfish, freePort, minimalBootstrap } from './lib/pilotfish.mjs';
import { smapsBreakdown, rssMB, hwmMB } from './lib/smaps.mjs';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: o } = parseArgs({ options: {
  load: { type: 'string', default: 'h1' },
  duration: { type: 'string', default: '8' },
  'node-arg': { type: 'string', multiple: true, default: [] },
} });
const seconds = Number(o.duration);
const dir = mkdtempSync(join(tmpdir(), 'pf-peak-'));
const PROBE = fileURLToPath(new URL('./lib/probe.mjs', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (b) => (b / 1048576).toFixed(1);

const origin = await startOrigin({ dir, core: 1 });
try {
  const port = await freePort(), adminPort = await freePort();
  const config = join(dir, 'pf.yaml');
  writeFileSync(config, minimalBootstrap({ port, adminPort, upstreamPort: origin.h1Port }));
  const probeOut = join(dir, 'probe.json');
  const p = await startPilotfish({ root: REPO, config, core: 0, nodeArgs: ['--import', PROBE, ...o['node-arg']], env: { PF_PROBE_OUT: probeOut }, logFile: join(dir, 'pf.log'), readyUrl: `http://127.0.0.1:${adminPort}/ready` });
  try {
    const url = `http://127.0.0.1:${port}/`;
    const args = o.load === 'h2c' ? ['h2load', '-t1', '-c8', '-m16', `-D${seconds}`, url] : ['wrk', '-t1', '-c64', `-d${seconds}s`, url];
    const done = runCommand(...pinned(1, args[0], args.slice(1)), (seconds + 20) * 1000);
    let finished = false;
    void done.then(() => { finished = true; });
    let best = { rss: 0 };
    while (!finished) {
      await sleep(200);
      if (finished) break;
      const rss = rssMB(p.pid);
      if (rss <= best.rss + 0.5) continue;
      rmSync(probeOut, { force: true });
      const smaps = smapsBreakdown(p.pid);
      process.kill(p.pid, 'SIGUSR2');
      for (let i = 0; i < 50 && !existsSync(probeOut); i++) await sleep(20);
      try { best = { rss, smaps, probe: JSON.parse(readFileSync(probeOut, 'utf8')) }; } catch { /* written next time */ }
    }
    await done;
    console.log(`load ${o.load} ${seconds} s; VmHWM ${hwmMB(p.pid).toFixed(1)} MB; highest sampled RSS ${best.rss.toFixed(1)} MB`);
    if (best.smaps) console.log('by mapping (MB):', Object.entries(best.smaps).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', '));
    if (best.probe) {
      const u = best.probe.memoryUsage;
      console.log(`memoryUsage: heapTotal ${mb(u.heapTotal)}, heapUsed ${mb(u.heapUsed)}, external ${mb(u.external)}, arrayBuffers ${mb(u.arrayBuffers)}`);
      console.log('V8 spaces (committed / used MB):', best.probe.heapSpaces.map((s) => `${s.space_name} ${mb(s.space_size)}/${mb(s.space_used_size)}`).join(', '));
      const h = best.probe.heap;
      console.log(`malloced ${mb(h.malloced_memory)} (peak ${mb(h.peak_malloced_memory)}), external ${mb(h.external_memory)}`);
    }
  } finally {
    await p.stop();
  }
} finally {
  await origin.proc.stop();
  rmSync(dir, { recursive: true, force: true });
}
