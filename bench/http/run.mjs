#!/usr/bin/env node
// HTTP data-path benchmark: pilotfish side by side with direct, nginx, HAProxy,
// node-http-proxy, @fastify/http-proxy and a thinnest node:http+undici baseline.
// See bench/README.md. `node bench/http/run.mjs --help`.
import { parseArgs } from 'node:util';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TARGETS, DEFAULT_TARGETS, REPO, startOrigin } from './lib/targets.mjs';
import { stopAll, setNice } from './lib/procs.mjs';
import { cpuSeconds, cpuSplit, memory, systemBusySeconds } from './lib/proc.mjs';
import { wrk, h2loadThroughput, h2loadRate } from './lib/load.mjs';
import { median } from './lib/stats.mjs';
import { renderReport } from './lib/report.mjs';
import { summarizeProfile, renderProfile } from './lib/cpuprofile.mjs';
import { makeCerts, buildClientCertShim, loadgenEnv } from './lib/mtls.mjs';
import { perfAvailable, perfRecord, summarizePerf, renderPerf } from './lib/native-profile.mjs';

const HELP = `usage: node bench/http/run.mjs [options]

  --quick                 ~1 minute smoke: 1 round, 2 s per measurement
  --rounds N              alternating rounds (A B C A B C ...), medians reported (default 3)
  --duration S            seconds per throughput measurement, h1 and h2c (default 8)
  --rate-duration S       seconds per fixed-rate measurement (default 5)
  --warmup S              seconds of warm-up load per target and protocol before round 1 (default 2)
  --idle-settle S         idle RSS is read at ready and again S seconds later, before any load
                          (default 12: V8's memory reducer first runs ~8 s after start; 0 = skip)
  --targets a,b,...       default: ${DEFAULT_TARGETS.join(',')}
                          also available: ${Object.keys(TARGETS).filter((t) => !DEFAULT_TARGETS.includes(t)).join(',')}
  --scenarios a,b,...     h1,h2c,rate-h1,rate-h2c (the default), mtls-h1,mtls-h2: keep-alive over TLS 1.3
                          with a client certificate (wrk / h2load through lib/client-cert-shim.c),
                          mtls-conn: a new mTLS connection per request (µs/request = per connection)
  --connections N         wrk connections for h1 (default 64)
  --h2-clients N          h2load connections for h2c (default 8)
  --h2-streams N          h2load concurrent streams per connection (default 16)
  --rate R                fixed request rate, req/s (default 2000)
  --rate-clients N        connections for the fixed-rate runs, one request in flight each (default 20)
  --conn-clients N        wrk connections for mtls-conn, each request on a new connection (default 8)
  --proxy-core N          core the proxy is pinned to (default 0)
  --load-core N           core for the load generator and the origin (default 1)
  --out DIR               where the JSON goes (default bench/results)
  --keep-temp             keep the generated configs and logs
  --nice=N                run target, origin and load generator at this niceness, each in its own
                          session/autogroup so it counts against other sessions' work too
                          (e.g. --nice=-10 on a box shared with builds/tests; default 0)
  --wait-quiet S          before each measurement wait up to S seconds for background load on the
                          machine to drop under 15% of a core (default 5; 0 = don't wait)
  --profile               instead of the comparison: run --profile-target with h1 then h2c load
                          (then mtls-h1, mtls-h2 when named in --scenarios)
                          (--duration each, after --warmup), V8 CPU profile of the measured window
                          only, and print self time by category and function
  --profile-target NAME   a Node target (default pilotfish); with --native any target with a process
  --native                with --profile: perf record instead of V8's profiler, time split into kernel,
                          TLS (OpenSSL, TLSWrap), JavaScript, V8 runtime/GC, libuv, node C++, libc
                          (needs perf; root or kernel.perf_event_paranoid <= 1)
  --pilotfish-bin PATH    pilotfish entry script (default bin/pilotfish.js), e.g. to compare two builds
  --pilotfish-bin-b PATH  a second build: target NAME@b (e.g. pilotfish-raw@b) runs pilotfish target NAME
                          from it, alternating with the others in the same run (before/after)
  --node-arg ARG          extra node flag for pilotfish (repeatable), e.g. --node-arg=--max-semi-space-size=16
`;

const { values: o } = parseArgs({
  options: {
    help: { type: 'boolean' }, quick: { type: 'boolean' },
    rounds: { type: 'string' }, duration: { type: 'string' }, 'rate-duration': { type: 'string' },
    warmup: { type: 'string' }, targets: { type: 'string' }, scenarios: { type: 'string' },
    connections: { type: 'string', default: '64' }, 'h2-clients': { type: 'string', default: '8' },
    'h2-streams': { type: 'string', default: '16' }, rate: { type: 'string', default: '2000' },
    'rate-clients': { type: 'string', default: '20' }, 'conn-clients': { type: 'string', default: '8' }, 'proxy-core': { type: 'string', default: '0' },
    'load-core': { type: 'string', default: '1' }, out: { type: 'string' }, 'keep-temp': { type: 'boolean' },
    profile: { type: 'boolean' }, 'profile-target': { type: 'string', default: 'pilotfish' }, native: { type: 'boolean' },
    nice: { type: 'string', default: '0' }, 'wait-quiet': { type: 'string', default: '5' }, 'idle-settle': { type: 'string', default: '12' },
    'node-arg': { type: 'string', multiple: true, default: [] }, 'pilotfish-bin': { type: 'string' }, 'pilotfish-bin-b': { type: 'string' },
  },
});
if (o.help) { process.stdout.write(HELP); process.exit(0); }

const quick = !!o.quick;
const C = {
  rounds: Number(o.rounds ?? (quick ? 1 : 3)),
  duration: Number(o.duration ?? (quick ? 2 : 8)),
  rateDuration: Number(o['rate-duration'] ?? (quick ? 2 : 5)),
  warmup: Number(o.warmup ?? (quick ? 1 : 2)),
  connections: Number(o.connections),
  h2Clients: Number(o['h2-clients']),
  h2Streams: Number(o['h2-streams']),
  rate: Number(o.rate),
  rateClients: Number(o['rate-clients']),
  connClients: Number(o['conn-clients']),
  proxyCore: Number(o['proxy-core']),
  loadCore: Number(o['load-core']),
  nice: Number(o.nice),
  waitQuiet: Number(o['wait-quiet']),
  idleSettle: Number(o['idle-settle']),
};
setNice(C.nice);
const targetNames = (o.targets ?? DEFAULT_TARGETS.join(',')).split(',').filter(Boolean);
// `NAME@b`: pilotfish target NAME run from --pilotfish-bin-b (another build, in the same run).
const target = (n) => TARGETS[n.endsWith('@b') ? n.slice(0, -2) : n];
for (const t of targetNames) {
  if (!target(t)) { console.error(`unknown target ${t}`); process.exit(2); }
  if (t.endsWith('@b') && (!t.startsWith('pilotfish') || !o['pilotfish-bin-b'])) { console.error(`${t}: @b needs a pilotfish target and --pilotfish-bin-b`); process.exit(2); }
}
const SCENARIOS = ['h1', 'h2c', 'rate-h1', 'rate-h2c', 'mtls-h1', 'mtls-h2', 'mtls-conn'];
/** The connection a scenario loads: its warm-up protocol and which targets apply. */
const PROTOCOL = { h1: 'h1', 'rate-h1': 'h1', h2c: 'h2c', 'rate-h2c': 'h2c', 'mtls-h1': 'mtls-h1', 'mtls-h2': 'mtls-h2', 'mtls-conn': 'mtls-h1' };
// mtls-* only when asked for: an mTLS listener and TLS traffic change the proxies' memory
// figures (idle and peak RSS), which the default run reports against their own targets.
const DEFAULT_SCENARIOS = ['h1', 'h2c', 'rate-h1', 'rate-h2c'];
const scenarios = (o.scenarios ?? DEFAULT_SCENARIOS.join(',')).split(',').filter(Boolean);
for (const s of scenarios) if (!SCENARIOS.includes(s)) { console.error(`unknown scenario ${s}`); process.exit(2); }

const dir = mkdtempSync(join(tmpdir(), 'pilotfish-bench-'));
const outDir = o.out ?? join(REPO, 'bench', 'results');
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

let cleaning = false;
async function cleanup() {
  if (cleaning) return;
  cleaning = true;
  await stopAll();
  if (!o['keep-temp']) rmSync(dir, { recursive: true, force: true });
  else log(`configs and logs kept in ${dir}`);
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => cleanup().then(() => process.exit(130)));

function versions() {
  const v = (cmd, args, re) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return (`${r.stdout}${r.stderr}`.match(re) ?? ['?'])[0].trim();
  };
  const pkg = (n) => { try { return JSON.parse(readFileSync(join(REPO, 'node_modules', n, 'package.json'), 'utf8')).version; } catch { return '?'; } };
  return {
    node: process.version,
    nginx: v('nginx', ['-v'], /nginx\/[\d.]+/),
    haproxy: v('haproxy', ['-v'], /HAProxy version [\S]+/),
    wrk: v('wrk', ['-v'], /wrk [\S]+/),
    h2load: v('h2load', ['--version'], /nghttp2\/[\d.]+/),
    undici: pkg('undici'), 'http-proxy': pkg('http-proxy'), fastify: pkg('fastify'), '@fastify/http-proxy': pkg('@fastify/http-proxy'),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait (bounded) until nothing but us uses the CPUs; returns seconds waited. */
async function waitQuiet() {
  if (!C.waitQuiet) return 0;
  const t0 = Date.now();
  for (;;) {
    const s0 = systemBusySeconds(), self0 = process.cpuUsage();
    await sleep(500);
    const self = process.cpuUsage(self0);
    const bg = (systemBusySeconds().total - s0.total - (self.user + self.system) / 1e6) / 0.5;
    const waited = (Date.now() - t0) / 1000;
    if (bg < 0.15 || waited >= C.waitQuiet) return waited;
  }
}

/** Certificates and the load generators' client-certificate shim, made once per run when an mtls scenario runs. */
let mtlsKit;
function mtlsSetup() {
  if (!mtlsKit) {
    const pki = makeCerts(dir);
    mtlsKit = { pki, env: loadgenEnv(pki, buildClientCertShim(dir)) };
  }
  return mtlsKit;
}

/** Measure one scenario against one started target. */
async function measure(scenario, t, origin, { seconds = null, quiet = true } = {}) {
  const core = C.loadCore;
  const waited = quiet ? await waitQuiet() : 0;
  const cpu0 = t.pid ? cpuSplit(t.pid) : null;
  const ocpu0 = cpuSeconds(origin.pid);
  const sys0 = systemBusySeconds(), self0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  let r;
  if (scenario === 'h1') r = await wrk({ url: t.h1Url, connections: C.connections, seconds: seconds ?? C.duration, core });
  else if (scenario === 'h2c') r = await h2loadThroughput({ url: t.h2Url, clients: C.h2Clients, streams: C.h2Streams, seconds: seconds ?? C.duration, core });
  // Keep-alive over mTLS: the same connection counts as h1 / h2c, each connection's one
  // handshake inside the measured window (amortised over the run's requests).
  else if (scenario === 'mtls-h1') r = await wrk({ url: t.mtlsUrl, connections: C.connections, seconds: seconds ?? C.duration, core, env: mtlsKit.env });
  else if (scenario === 'mtls-h2') r = await h2loadThroughput({ url: t.mtlsUrl, clients: C.h2Clients, streams: C.h2Streams, seconds: seconds ?? C.duration, core, env: mtlsKit.env });
  // A new mTLS connection per request (full handshake, client certificate each time: wrk
  // does not resume sessions): µs/request here is the cost of a connection.
  else if (scenario === 'mtls-conn') r = await wrk({ url: t.mtlsUrl, connections: C.connClients, seconds: seconds ?? C.duration, core, env: mtlsKit.env, close: true });
  else r = await h2loadRate({
    url: scenario === 'rate-h1' ? t.h1Url : t.h2Url, h1: scenario === 'rate-h1', rate: C.rate, clients: C.rateClients,
    seconds: seconds ?? C.rateDuration, core, logFile: join(dir, 'h2load.log'),
  });
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const cpu1 = t.pid ? cpuSplit(t.pid) : null;
  const cpu = cpu1 ? cpu1.user + cpu1.sys - cpu0.user - cpu0.sys : null;
  const sysCpu = cpu1 ? cpu1.sys - cpu0.sys : null;
  const ocpu = cpuSeconds(origin.pid) - ocpu0;
  const sys1 = systemBusySeconds(), self = process.cpuUsage(self0);
  // Background load: machine busy time not spent by the target, the origin, the load
  // generator or this harness (other people's builds and tests on a shared box).
  const ours = (cpu ?? 0) + ocpu + (r.loadgenCpuSeconds ?? 0) + (self.user + self.system) / 1e6;
  const proxyCoreBackground = t.pid ? Math.max(0, (sys1.perCore[C.proxyCore] - sys0.perCore[C.proxyCore]) - cpu) / wall : null;
  return {
    ...r,
    wallSeconds: wall,
    proxyCpuSeconds: cpu,
    cpuUsPerReq: cpu !== null && r.requests ? (cpu * 1e6) / r.requests : null,
    sysUsPerReq: sysCpu !== null && r.requests ? (sysCpu * 1e6) / r.requests : null,
    proxyCoreBusy: cpu !== null ? cpu / wall : null,
    originUsPerReq: r.requests ? (ocpu * 1e6) / r.requests : null,
    backgroundCores: Math.max(0, sys1.total - sys0.total - ours) / wall,
    proxyCoreBackground,
    waitedForQuietSeconds: waited,
  };
}

// `mtls: true` = both mtls scenarios; `mtls: 'h1'` = HTTP/1.1 over mTLS only.
const applicable = (scenario, name) => {
  const m = target(name).mtls;
  if (scenario.startsWith('mtls-')) return m === true || (m === 'h1' && scenario === 'mtls-h1');
  return !scenario.endsWith('h2c') || target(name).h2c;
};
const wantsMtls = () => scenarios.some((s) => s.startsWith('mtls-'));

async function startTarget(name, origin, extra = {}) {
  // The mTLS port only when an mtls scenario runs: it costs the proxy memory (TLS contexts) the other figures should not carry.
  const mtls = wantsMtls() && target(name).mtls ? { pki: mtlsSetup().pki } : undefined;
  return target(name).start({
    dir, core: C.proxyCore, origin, name: name.replace('@', '-at-'), pilotfishBin: name.endsWith('@b') ? o['pilotfish-bin-b'] : o['pilotfish-bin'],
    nodeArgs: name.startsWith('pilotfish') ? o['node-arg'] : [], mtls, ...extra,
  });
}

async function compare() {
  const started = new Date();
  log(`temp dir ${dir}; targets ${targetNames.join(', ')}; scenarios ${scenarios.join(', ')}; ${C.rounds} round(s)`);
  const origin = await startOrigin({ dir, core: C.loadCore, mtls: wantsMtls() ? { pki: mtlsSetup().pki } : undefined });
  log(`origin nginx pid ${origin.pid} on core ${C.loadCore}: ${origin.h1Url} (h1), ${origin.h2Url} (h2c)`);

  const live = {}, skipped = {}, idle = {};
  for (const name of targetNames) {
    try {
      live[name] = await startTarget(name, origin);
      if (live[name].pid) idle[name] = memory(live[name].pid);
      const tlsNote = live[name].tls ? `; mTLS ${live[name].tls.protocol} ${live[name].tls.cipher}` : '';
      log(`${name} ready${live[name].pid ? ` (pid ${live[name].pid}, idle RSS ${idle[name].rssMB.toFixed(1)} MB${tlsNote})` : ''}`);
    } catch (e) {
      skipped[name] = String(e.message ?? e);
      log(`${name} SKIPPED: ${skipped[name]}`);
    }
  }
  const names = targetNames.filter((n) => live[n]);
  // A sidecar spends most of its life idle: its steady idle RSS is read once start-up
  // garbage is gone (V8's memory reducer), as well as the figure at ready.
  const settled = {};
  if (C.idleSettle > 0) {
    await new Promise((r) => setTimeout(r, C.idleSettle * 1000));
    for (const name of names) if (live[name].pid) settled[name] = memory(live[name].pid).rssMB;
    log(`idle RSS ${C.idleSettle} s after ready: ${names.filter((n) => settled[n] !== undefined).map((n) => `${n} ${settled[n].toFixed(1)} MB`).join(', ')}`);
  }

  if (C.warmup > 0) {
    for (const name of names) {
      for (const s of ['h1', 'h2c', 'mtls-h1', 'mtls-h2']) {
        if (!scenarios.some((x) => PROTOCOL[x] === s) || !applicable(s, name)) continue;
        try { await measure(s, live[name], origin, { seconds: C.warmup, quiet: false }); } catch (e) { log(`warm-up ${name} ${s}: ${e.message}`); }
      }
    }
    log('warm-up done');
  }

  const runs = []; // { round, scenario, target, ...metrics | error }
  for (let round = 1; round <= C.rounds; round++) {
    for (const scenario of scenarios) {
      for (const name of names) {
        if (!applicable(scenario, name)) continue;
        const t = live[name];
        if (t.proc && !t.proc.running) { runs.push({ round, scenario, target: name, error: 'process died' }); continue; }
        try {
          const m = await measure(scenario, t, origin);
          runs.push({ round, scenario, target: name, ...m });
          const lat = m.p50 != null ? ` p50 ${m.p50.toFixed(3)} ms p99 ${m.p99.toFixed(3)} ms` : '';
          const cpu = m.cpuUsPerReq != null ? ` ${m.cpuUsPerReq.toFixed(1)} µs/req (core ${(m.proxyCoreBusy * 100).toFixed(0)}%)` : '';
          const bg = m.backgroundCores > 0.05 ? ` [background ${(m.backgroundCores * 100).toFixed(0)}% of a core]` : '';
          log(`round ${round} ${scenario.padEnd(8)} ${name.padEnd(16)} ${m.rps.toFixed(0).padStart(7)} req/s${cpu}${lat}${m.errors ? ` ERRORS ${m.errors}` : ''}${bg}`);
        } catch (e) {
          runs.push({ round, scenario, target: name, error: String(e.message ?? e) });
          log(`round ${round} ${scenario} ${name} FAILED: ${e.message}`);
        }
      }
    }
  }

  const mem = {};
  for (const name of names) if (live[name].pid) mem[name] = { idleRssMB: idle[name].rssMB, settledIdleRssMB: settled[name], ...memory(live[name].pid) };

  const summary = {};
  for (const scenario of scenarios) {
    summary[scenario] = {};
    for (const name of names) {
      const rs = runs.filter((r) => r.scenario === scenario && r.target === name && !r.error);
      if (!rs.length) continue;
      const med = (k) => median(rs.map((r) => r[k]));
      summary[scenario][name] = {
        rounds: rs.length, rps: med('rps'), cpuUsPerReq: med('cpuUsPerReq'), sysUsPerReq: med('sysUsPerReq'), proxyCoreBusy: med('proxyCoreBusy'),
        p50: med('p50'), p99: med('p99'), originUsPerReq: med('originUsPerReq'),
        backgroundCores: med('backgroundCores'), maxBackgroundCores: Math.max(...rs.map((r) => r.backgroundCores)),
        errors: rs.reduce((a, r) => a + (r.errors ?? 0), 0),
        requests: rs.reduce((a, r) => a + (r.requests ?? 0), 0),
      };
    }
  }

  const result = {
    benchmark: 'http', started: started.toISOString(), finished: new Date().toISOString(),
    conditions: {
      ...C, quick, targets: names, scenarios, cpu: cpus()[0]?.model, cores: cpus().length,
      memGiB: Math.round(totalmem() / 2 ** 30), versions: versions(), bodyBytes: 64,
      origin: 'nginx, 1 worker, `return 200` with a fixed 64-byte body, on the load core',
      describe: Object.fromEntries(names.map((n) => [n, n.endsWith('@b') ? `${target(n).describe}; from ${o['pilotfish-bin-b']}` : target(n).describe])),
      ...(mtlsKit ? {
        mtls: 'TLS 1.3 only, ECDSA P-256 certificates (SPIFFE URI SANs) from one bench CA, client certificate required and verified by every target; ' +
          'wrk / h2load present it through bench/http/lib/client-cert-shim.c (LD_PRELOAD); HTTP/1.1 without ALPN, h2 by ALPN',
        negotiated: Object.fromEntries(names.filter((n) => live[n].tls).map((n) => [n, live[n].tls])),
      } : {}),
    },
    skipped, runs, summary, memory: mem,
  };
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `http-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2));
  process.stdout.write(renderReport(result));
  process.stdout.write(`\nJSON: ${file}\n`);
}

async function profile() {
  const name = o['profile-target'];
  if (o.native) return nativeProfile(name);
  if (!TARGETS[name] || ['direct', 'nginx', 'haproxy'].includes(name)) throw new Error(`--profile-target must be a Node target`);
  const origin = await startOrigin({ dir, core: C.loadCore, mtls: wantsMtls() ? { pki: mtlsSetup().pki } : undefined });
  const profDir = join(outDir, 'profiles', `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(profDir, { recursive: true });
  const out = [];
  const profiled = ['h1', 'h2c', 'mtls-h1', 'mtls-h2', 'mtls-conn'].filter((s) => applicable(s, name) && scenarios.includes(s));
  for (const scenario of profiled) {
    const file = join(profDir, `${scenario}.cpuprofile`);
    // The preload profiles only the measured window (SIGUSR2 .. SIGTERM).
    const nodeArgs = ['--import', join(REPO, 'bench/http/lib/window-profiler.mjs'), ...(name.startsWith('pilotfish') ? o['node-arg'] : [])];
    const env = { ...process.env, PILOTFISH_BENCH_PROFILE: file };
    const t = await startTarget(name, origin, { nodeArgs, env });
    if (C.warmup) await measure(scenario, t, origin, { seconds: C.warmup, quiet: false });
    process.kill(t.pid, 'SIGUSR2');
    await sleep(200);
    const m = await measure(scenario, t, origin);
    log(`${name} ${scenario} under the profiler: ${m.rps.toFixed(0)} req/s, ${m.cpuUsPerReq.toFixed(1)} µs/req (profiler overhead included)`);
    await t.proc.stop(15000);
    if (!existsSync(file)) { out.push(`## ${name} ${scenario}: no profile written (did the process exit cleanly?)\n`); continue; }
    const s = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), REPO);
    out.push(renderProfile(`${name} — ${scenario}: ${m.rps.toFixed(0)} req/s, ${m.cpuUsPerReq.toFixed(1)} µs/req under the profiler`, s, file, 30, m.cpuUsPerReq));
  }
  process.stdout.write(out.join('\n'));
}

/** --profile --native: perf over the measured window, per scenario, for any target with a process. */
async function nativeProfile(name) {
  if (!TARGETS[name] || name === 'direct') throw new Error('--profile-target must be a target with a process');
  if (!perfAvailable()) throw new Error('--native needs perf (linux-perf)');
  const origin = await startOrigin({ dir, core: C.loadCore, mtls: wantsMtls() ? { pki: mtlsSetup().pki } : undefined });
  const profDir = join(outDir, 'profiles', `${name}-native-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(profDir, { recursive: true });
  const out = [];
  for (const scenario of ['h1', 'h2c', 'mtls-h1', 'mtls-h2', 'mtls-conn'].filter((s) => applicable(s, name) && scenarios.includes(s))) {
    const file = join(profDir, `${scenario}.perf.data`);
    const t = await startTarget(name, origin);
    if (C.warmup) await measure(scenario, t, origin, { seconds: C.warmup, quiet: false });
    // perf's window (--duration - 1 s) sits inside the load run: the load generator's ramp-up and tail stay out.
    await waitQuiet();
    const recorded = sleep(500).then(() => perfRecord({ pid: t.pid, seconds: Math.max(1, C.duration - 1), file }));
    const m = await measure(scenario, t, origin, { quiet: false });
    await recorded;
    log(`${name} ${scenario} under perf: ${m.rps.toFixed(0)} req/s, ${m.cpuUsPerReq.toFixed(1)} µs/req`);
    await t.proc.stop(15000);
    out.push(renderPerf(`${name} — ${scenario}: ${m.rps.toFixed(0)} req/s, ${m.cpuUsPerReq.toFixed(1)} µs/req (perf, native)`, summarizePerf(file), file, m.cpuUsPerReq));
  }
  process.stdout.write(out.join('\n'));
}

try {
  if (o.profile) await profile();
  else await compare();
} catch (e) {
  log(`fatal: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
