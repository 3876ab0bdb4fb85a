#!/usr/bin/env node
// Memory and start-up of `pilotfish proxy` with the minimal static HTTP bootstrap, side by
// side with nginx (same shape: one listener, one upstream, keep-alive pool) and a bare
// Node process (the floor every Node program pays), in alternating rounds of one run:
//
//   start to ready   spawn -> admin /ready 200 (nginx, node: -> first answer)
//   idle RSS         2 s after ready ("early") and --settle s after ready ("settled":
//                    V8's memory reducer has shrunk the young generation by then)
//   under load       wrk HTTP/1.1, --connections, --duration s: peak RSS (VmHWM),
//                    req/s and CPU ms per 1,000 requests of the proxy's process tree
//
// Variants: --root DIR (repeatable) runs another build (a checkout with dist/ and bin/,
// e.g. the previous commit's, for a before/after in the same run); --semi a,b,... adds
// this checkout with --max-semi-space-size=a (MB) etc. to find the young generation size;
// --pilotfish DIR measures another build as "pilotfish" (default: this checkout).
//
//   node bench/memory/run.mjs [--rounds 3] [--root DIR]... [--semi 1,2,4,16] [--flags "--no-liftoff-only"]... [--quick]
import { parseArgs } from 'node:util';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { startOrigin } from '../http/lib/targets.mjs';
import * as cfg from '../http/lib/configs.mjs';
import { startPinned, freePort, stopAll } from '../http/lib/procs.mjs';
import { memory, cpuSeconds, processTree } from '../http/lib/proc.mjs';
import { wrk } from '../http/lib/load.mjs';
import { median } from '../http/lib/stats.mjs';
import { get, minimalBootstrap } from './lib/pilotfish.mjs';
import { privateMB } from './lib/smaps.mjs';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: o } = parseArgs({ options: {
  help: { type: 'boolean' }, quick: { type: 'boolean' },
  rounds: { type: 'string' }, root: { type: 'string', multiple: true, default: [] },
  semi: { type: 'string' }, flags: { type: 'string', multiple: true, default: [] }, settle: { type: 'string' }, duration: { type: 'string' },
  connections: { type: 'string', default: '64' }, 'no-nginx': { type: 'boolean' },
  'proxy-core': { type: 'string', default: '0' }, 'load-core': { type: 'string', default: '1' },
  out: { type: 'string' }, pilotfish: { type: 'string' },
} });
if (o.help) {
  process.stdout.write('usage: node bench/memory/run.mjs [--rounds N] [--root DIR]... [--pilotfish DIR] [--semi 1,2,4] [--flags \"NODE FLAGS\"]... [--settle S] [--duration S] [--connections N] [--no-nginx] [--quick] [--out FILE]\n');
  process.exit(0);
}
const C = {
  rounds: Number(o.rounds ?? (o.quick ? 1 : 3)),
  settle: Number(o.settle ?? (o.quick ? 8 : 30)),
  duration: Number(o.duration ?? (o.quick ? 3 : 6)),
  connections: Number(o.connections),
  proxyCore: Number(o['proxy-core']),
  loadCore: Number(o['load-core']),
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'pf-mem-bench-'));
const hasNginx = !o['no-nginx'] && spawnSync('nginx', ['-v']).status === 0;

/** A variant: how to start it; `ready` resolves when it answers (pilotfish: admin /ready). */
function pilotfishVariant(label, root, nodeArgs = []) {
  return {
    label,
    describe: `node ${nodeArgs.join(' ')}${nodeArgs.length ? ' ' : ''}${root === REPO ? '' : root + '/'}bin/pilotfish.js proxy`,
    async start(origin) {
      const port = await freePort(), adminPort = await freePort();
      const config = join(dir, `pf-${port}.yaml`);
      writeFileSync(config, minimalBootstrap({ port, adminPort, upstreamPort: origin.h1Port }));
      const t0 = performance.now();
      const proc = startPinned({ core: C.proxyCore, cmd: process.execPath, args: [...nodeArgs, join(root, 'bin/pilotfish.js'), 'proxy', '-c', config, '--log-level', 'warning'], logFile: join(dir, `pf-${port}.log`) });
      await until(proc, async () => (await get(`http://127.0.0.1:${adminPort}/ready`, 500)).status === 200);
      return { proc, readyMs: performance.now() - t0, url: `http://127.0.0.1:${port}/` };
    },
  };
}

const nginxVariant = {
  label: 'nginx',
  describe: 'nginx, 1 worker, proxy_pass to an upstream with keepalive 256 (master + worker counted)',
  async start(origin) {
    const h1Port = await freePort(), h2Port = await freePort();
    const d = join(dir, `nginx-${h1Port}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'nginx.conf'), cfg.nginxProxy({ dir: d, h1Port, h2Port, upstreamPort: origin.h1Port }));
    const t0 = performance.now();
    const proc = startPinned({ core: C.proxyCore, cmd: 'nginx', args: ['-p', d, '-c', join(d, 'nginx.conf'), '-e', join(d, 'error.log')], logFile: join(d, 'out.log') });
    const url = `http://127.0.0.1:${h1Port}/`;
    await until(proc, async () => (await get(url, 500)).status === 200);
    return { proc, readyMs: performance.now() - t0, url };
  },
};

/** The floor: a Node 20 process that loads nothing and serves one port. */
const nodeFloorVariant = {
  label: 'node floor',
  describe: 'node -e "http.createServer().listen()" (no proxying: what any Node process costs)',
  noLoad: true,
  async start() {
    const port = await freePort();
    const t0 = performance.now();
    const proc = startPinned({ core: C.proxyCore, cmd: process.execPath, args: ['-e', `require('http').createServer((q,s)=>s.end('ok')).listen(${port},'127.0.0.1')`], logFile: join(dir, `floor-${port}.log`) });
    const url = `http://127.0.0.1:${port}/`;
    await until(proc, async () => (await get(url, 500)).status === 200);
    return { proc, readyMs: performance.now() - t0, url };
  },
};

async function until(proc, cond) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (!proc.running) throw new Error(`exited before ready: ${proc.log().slice(-500)}`);
    if (await cond()) return;
    await sleep(5);
  }
  throw new Error('not ready in 60 s');
}

const variants = [nodeFloorVariant, ...(hasNginx ? [nginxVariant] : [])];
for (const r of o.root) variants.push(pilotfishVariant(`pilotfish ${basename(resolve(r))}`, resolve(r)));
const main = resolve(o.pilotfish ?? REPO);
variants.push(pilotfishVariant('pilotfish', main));
for (const s of (o.semi ?? '').split(',').filter(Boolean)) variants.push(pilotfishVariant(`pilotfish semi ${s} MB`, main, [`--max-semi-space-size=${s}`]));
// --flags "--no-liftoff-only" (repeatable): this checkout with those node flags, e.g. to
// undo one of bin/pilotfish.js's choices and see what it buys in the same run.
for (const f of o.flags) variants.push(pilotfishVariant(`pilotfish ${f}`, main, f.split(/\s+/).filter(Boolean)));

async function measure(v, origin) {
  const { proc, readyMs, url } = await v.start(origin);
  try {
    await sleep(2000);
    const early = memory(proc.pid).rssMB;
    await sleep(Math.max(0, C.settle - 2) * 1000);
    const settled = memory(proc.pid).rssMB;
    const own = processTree(proc.pid).reduce((a, pid) => a + privateMB(pid), 0); // nginx: master + worker
    if (v.noLoad) return { readyMs, early, settled, own };
    const cpu0 = cpuSeconds(proc.pid);
    const w = await wrk({ url, connections: C.connections, seconds: C.duration, core: C.loadCore });
    const cpu = cpuSeconds(proc.pid) - cpu0;
    const m = memory(proc.pid);
    return { readyMs, early, settled, own, peak: m.hwmMB, afterLoad: m.rssMB, rps: w.rps, cpuMsPer1k: (cpu * 1e6) / Math.max(1, w.requests) };
  } finally {
    await proc.stop(3000);
  }
}

const results = new Map(variants.map((v) => [v.label, []]));
const origin = await startOrigin({ dir, core: C.loadCore });
try {
  for (let round = 1; round <= C.rounds; round++) {
    for (const v of variants) {
      process.stderr.write(`round ${round}/${C.rounds}: ${v.label}\n`);
      results.get(v.label).push(await measure(v, origin));
    }
  }
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}

const med = (label, k) => {
  const xs = results.get(label).map((r) => r[k]).filter((x) => x !== undefined);
  return xs.length ? median(xs) : undefined;
};
const f = (x, d = 1) => (x === undefined ? '–' : x.toFixed(d));
const base = hasNginx ? 'nginx' : undefined;
console.log(`# memory and start-up, minimal static HTTP bootstrap\n`);
console.log(`${new Date().toISOString()}, node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`${C.rounds} alternating rounds (medians); proxy on core ${C.proxyCore}, origin (nginx) and wrk on core ${C.loadCore}; settled = ${C.settle} s after ready; load: wrk -t1 -c${C.connections} -d${C.duration}s HTTP/1.1 keep-alive, 64-byte body\n`);
console.log('| target | start to ready ms | idle RSS early MB | idle RSS settled MB | settled, private (USS) MB | peak RSS under load MB | req/s | CPU ms / 1k req |' + (base ? ' settled RSS ÷ nginx |' : ''));
console.log('|---|---|---|---|---|---|---|---|' + (base ? '---|' : ''));
for (const v of variants) {
  const settled = med(v.label, 'settled');
  const ratio = base ? ` ${f(settled / med(base, 'settled'), 2)}× |` : '';
  console.log(`| ${v.label} | ${f(med(v.label, 'readyMs'), 0)} | ${f(med(v.label, 'early'))} | ${f(settled)} | ${f(med(v.label, 'own'))} | ${f(med(v.label, 'peak'))} | ${f(med(v.label, 'rps'), 0)} | ${f(med(v.label, 'cpuMsPer1k'), 1)} |${ratio}`);
}
console.log('\n' + variants.map((v) => `- ${v.label}: ${v.describe}`).join('\n'));
if (o.out) writeFileSync(o.out, JSON.stringify({ conditions: C, results: Object.fromEntries(results) }, null, 2));
