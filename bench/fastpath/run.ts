/**
 * Fast path benchmark (not part of npm test). Two parts, each side by side in one run:
 *
 * 1. L4 steering on veth in network namespaces: client (wrk) -> gateway -> backend
 *    (nginx http). Gateway targets: xdp (pilotfish xdp_lb), node-proxy (plain Node
 *    net pipe), pilotfish (its tcp_proxy, when the CLI is built), nginx-stream, and
 *    kernel routing without any proxy as a floor. Workloads: keep-alive
 *    request/response (rr) and one connection per request (cps).
 * 2. sockmap: request/response and streaming between two local processes over
 *    loopback, with and without the sockops/sk_msg short-cut.
 *
 * Gateway CPU: user-space proxies = their processes' utime+stime; xdp = the kernel's
 * BPF run time for xdp_lb (kernel.bpf_stats_enabled), which leaves out the veth
 * driver work around it (that shows up in the machine-wide softirq column, for all).
 *
 * 3. observe: connection telemetry overhead on a connection-heavy workload (one
 *    connection per exchange on loopback, in a cgroup): off, observe (aggregates only),
 *    observe + events (a /flows subscriber reading every connection), same run.
 *
 *   npx tsx bench/fastpath/run.ts [--rounds 3] [--seconds 4] [--only steering|sockmap|observe] [--rate N]
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir, cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfFastPath } from '../../fastpath/src/fastpath.js';
import { ensureBuilt, xdpPassObjectPath } from '../../fastpath/src/build.js';
import { Topology, waitLine } from '../../fastpath/test/helpers/netns.js';
import { uniq } from '../../fastpath/test/helpers/bpf.js';
import type { Endpoint } from '../../config/src/index.js';

const USAGE = `Usage: npx tsx bench/fastpath/run.ts [options]   (as root)

Fast path benchmarks, side by side in one run; markdown to stdout, progress to stderr,
JSON to bench/results/fastpath-<date>.json.

Options:
  --rounds N      rounds per target, alternating (default 3)
  --seconds N     seconds per measurement (default 4)
  --only PART     steering | sockmap | observe (default: all three)
  --rate N        observe: connections/s to pace the workload at (default 0 = as fast as it goes)
  -h, --help      this help
`;
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const ROUNDS = Number(opt('rounds', '3'));
const SECONDS = Number(opt('seconds', '4'));
const ONLY = opt('only', 'all');
const RATE = Number(opt('rate', '0'));
if (!['all', 'steering', 'sockmap', 'observe'].includes(ONLY) || !(ROUNDS >= 1) || !(SECONDS > 0) || !(RATE >= 0)) {
  process.stderr.write(`bad arguments: ${args.join(' ')}\n${USAGE}`);
  process.exit(2);
}
const CONNS = 16;
const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

const VIP = '198.18.100.10';
const BACKEND = '198.18.1.1';
const RUN_ID = uniq();
const tmp = mkdtempSync(join(tmpdir(), `pf-bench-${RUN_ID}-`));
// what the run made, undone in reverse order: at the end, on failure, and on a signal
const cleanups: (() => void | Promise<void>)[] = [];
let stopping = false;
let cleaning: Promise<void> | undefined;
/**
 * A cgroup can only be removed once its processes are gone: kill them all at once
 * (cgroup.kill, cgroup v2) and wait for the kernel to let go, generously, as a loaded
 * machine takes a while to reap them.
 */
async function removeCgroup(cg: string): Promise<void> {
  try {
    writeFileSync(join(cg, 'cgroup.kill'), '1');
  } catch {
    // already gone, or a kernel without cgroup.kill: the retries below still wait for the processes
  }
  for (let i = 0; i < 200 && existsSync(cg); i++) {
    try {
      rmdirSync(cg);
    } catch {
      await sleep(50);
    }
  }
}

/** Idempotent: a signal and the failure it causes in the main flow both wait for the same cleanup. */
function cleanup(): Promise<void> {
  stopping = true;
  cleaning ??= (async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try { await c(); } catch { /* best effort */ }
    }
    rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}
/** Registers an undo step; once stopping, something created late is undone at once. */
function onCleanup(c: () => void | Promise<void>): void {
  if (stopping) void Promise.resolve().then(c).catch(() => {});
  else cleanups.push(c);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`bench: ${sig}, cleaning up`);
    void cleanup().then(() => process.exit(130));
  });
}
log(`bench: run ${RUN_ID}, namespaces pf*-${RUN_ID}, temp ${tmp}`);

function cpuTicks(pids: number[]): number {
  let t = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      t += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch { /* gone */ }
  }
  return t / 100; // seconds (USER_HZ = 100)
}

function machine(): { busy: number; softirq: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!;
  return { busy: (f.reduce((a, b) => a + b, 0) - idle) / 100, softirq: f[6]! / 100 };
}

function bpfRunNs(progId: number | undefined): { ns: number; cnt: number } {
  if (progId === undefined) return { ns: 0, cnt: 0 };
  const j = JSON.parse(execFileSync('bpftool', ['prog', 'show', 'id', String(progId), '-j'], { encoding: 'utf8' })) as { run_time_ns?: number; run_cnt?: number };
  return { ns: j.run_time_ns ?? 0, cnt: j.run_cnt ?? 0 };
}

function pidsOf(p: ChildProcess): number[] {
  // `ip netns exec` and `taskset` exec in place; nginx forks a worker
  const pids = [p.pid!];
  try {
    pids.push(...execFileSync('pgrep', ['-P', String(p.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number));
  } catch { /* no children */ }
  return pids;
}

// ------------------------------------------------------------------ steering

interface Sample { target: string; workload: string; rps: number; p50ms: number; p99ms: number; pps: number; gwCpu: number; busy: number; softirq: number; packets: number; errors: number }

function parseWrk(out: string): { rps: number; p50: number; p99: number; errors: number } {
  const toMs = (v: string): number => {
    const m = /([\d.]+)(us|ms|s)/.exec(v);
    if (!m) return NaN;
    const n = Number(m[1]);
    return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { rps, p50, p99, errors: (e ? e.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0) + non2xx };
}

async function steering(samples: Sample[], conditions: Record<string, unknown>): Promise<void> {
  const topo = new Topology(uniq());
  onCleanup(() => topo.destroy());
  const client = topo.ns('c');
  const gw = topo.ns('g');
  const be = topo.ns('b');
  topo.link(client, 'c0', '198.18.0.1/24', gw, 'g0', '198.18.0.254/24');
  topo.link(be, 'b0', `${BACKEND}/24`, gw, 'gb', '198.18.1.254/24');
  topo.ip(client, 'route', 'add', 'default', 'via', '198.18.0.254');
  topo.ip(be, 'route', 'add', 'default', 'via', '198.18.1.254');
  topo.sysctl(gw, 'net.ipv4.ip_forward=1');
  for (const [ns, dev] of [[client, 'c0'], [be, 'b0']] as const) topo.ip(ns, 'link', 'set', 'dev', dev, 'xdpdrv', 'obj', xdpPassObjectPath(), 'sec', 'xdp');

  // origin: nginx http, one worker, on the load core
  const beConf = join(tmp, 'backend.conf');
  writeFileSync(beConf, `worker_processes 1; pid ${tmp}/be.pid; error_log ${tmp}/be.err; daemon off;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen ${BACKEND}:8080 reuseport backlog=4096; location / { return 200 "ok\\n"; } } }\n`);
  const origin = topo.spawn(be, 'taskset', ['-c', '1', 'nginx', '-c', beConf]);
  await sleep(500);
  if (origin.exitCode !== null) throw new Error('backend nginx did not start');

  const pfBuilt = existsSync(join(root, 'dist', 'proxy', 'src', 'main.js'));
  const targets = ['xdp', 'node-proxy', ...(pfBuilt ? ['pilotfish'] : []), 'nginx-stream', 'kernel-route'];
  conditions.steeringTargets = targets;
  if (!pfBuilt) conditions.pilotfishSkipped = 'dist/ not built (npm run build)';

  const clientPackets = (): number =>
    ['rx_packets', 'tx_packets'].reduce((n, f) => n + Number(topo.exec(client, 'cat', [`/sys/class/net/c0/statistics/${f}`]).trim()), 0);

  interface Running { stop(): Promise<void>; pids(): number[]; progId?: number; url: string }

  async function start(target: string): Promise<Running> {
    const url = `http://${VIP}:80/`;
    if (target === 'kernel-route') return { stop: async () => {}, pids: () => [], url: `http://${BACKEND}:8080/` };
    if (target === 'xdp') {
      const fp = await BpfFastPath.start({
        interface: 'g0', returnInterfaces: ['gb'], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: false,
        services: [{ cluster: 'b', address: VIP, port: 80, protocol: 'TCP', userspace: false, maglevTableSize: 65537 }],
        launcher: ['ip', 'netns', 'exec', gw],
      }, log);
      const ep: Endpoint = { key: `${BACKEND}:8080`, address: BACKEND, port: 8080, hostname: '', weight: 1, priority: 0, locality: '', localityWeight: 1, health: 'healthy' };
      fp.applyEndpointDiff({ cluster: 'b', added: [ep], removed: [], changed: [] });
      await fp.sync();
      const progId = Number(/prog\/xdp id (\d+)/.exec(topo.ip(gw, '-d', 'link', 'show', 'g0'))?.[1]);
      return { stop: () => fp.close(), pids: () => [], progId, url };
    }
    topo.ip(gw, 'addr', 'replace', `${VIP}/32`, 'dev', 'lo');
    let p: ChildProcess;
    if (target === 'node-proxy') {
      p = topo.spawn(gw, 'taskset', ['-c', '0', process.execPath, join(here, 'node-l4-proxy.mjs'), VIP, '80', BACKEND, '8080']);
      await waitLine(p, /READY/);
    } else if (target === 'pilotfish') {
      const conf = join(tmp, 'pilotfish.yaml');
      writeFileSync(conf, `node: { id: bench, cluster: bench }
static_resources:
  listeners:
  - name: l4
    address: { socket_address: { address: ${VIP}, port_value: 80 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: l4
          cluster: backend
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: ${BACKEND}, port_value: 8080 } } } }] }]
`);
      p = topo.spawn(gw, 'taskset', ['-c', '0', process.execPath, join(root, 'bin', 'pilotfish.js'), 'proxy', '--config', conf]);
      await probeTcp(topo, client, VIP, 80, p);
    } else {
      const conf = join(tmp, 'stream.conf');
      writeFileSync(conf, `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1; pid ${tmp}/gw.pid; error_log ${tmp}/gw.err; daemon off;
events { worker_connections 8192; }
stream { server { listen ${VIP}:80 reuseport backlog=4096; proxy_pass ${BACKEND}:8080; tcp_nodelay on; } }\n`);
      p = topo.spawn(gw, 'taskset', ['-c', '0', 'nginx', '-c', conf]);
      await probeTcp(topo, client, VIP, 80, p);
    }
    return {
      stop: async () => { p.kill('SIGTERM'); await sleep(300); if (p.exitCode === null) p.kill('SIGKILL'); topo.ip(gw, 'addr', 'del', `${VIP}/32`, 'dev', 'lo'); },
      pids: () => pidsOf(p),
      url,
    };
  }

  for (let round = 1; round <= ROUNDS; round++) {
    for (const workload of ['rr', 'cps']) {
      for (const target of targets) {
        const r = await start(target);
        try {
          const wrkArgs = ['-c', '1', 'wrk', '-t1', `-c${CONNS}`, `-d${SECONDS}s`, '--latency', ...(workload === 'cps' ? ['-H', 'Connection: close'] : []), r.url];
          topo.exec(client, 'taskset', ['-c', '1', 'wrk', '-t1', '-c4', '-d1s', r.url]); // warm up (neighbours, JIT)
          const pkt0 = clientPackets(), cpu0 = cpuTicks(r.pids()), m0 = machine(), b0 = bpfRunNs(r.progId);
          const out = topo.exec(client, 'taskset', wrkArgs);
          const pkt1 = clientPackets(), cpu1 = cpuTicks(r.pids()), m1 = machine(), b1 = bpfRunNs(r.progId);
          const w = parseWrk(out);
          const gwCpu = r.progId !== undefined ? (b1.ns - b0.ns) / 1e9 : cpu1 - cpu0;
          const s: Sample = {
            target, workload, rps: w.rps, p50ms: w.p50, p99ms: w.p99, errors: w.errors,
            packets: pkt1 - pkt0, pps: (pkt1 - pkt0) / SECONDS, gwCpu,
            busy: m1.busy - m0.busy, softirq: m1.softirq - m0.softirq,
          };
          samples.push(s);
          log(`round ${round} ${workload} ${target}: ${s.rps.toFixed(0)} req/s, ${s.pps.toFixed(0)} pkt/s, gw cpu ${s.gwCpu.toFixed(3)}s, p50 ${s.p50ms}ms p99 ${s.p99ms}ms, errors ${s.errors}`);
        } finally {
          await r.stop();
        }
      }
    }
  }
}

async function probeTcp(topo: Topology, ns: string, host: string, port: number, p: ChildProcess): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (p.exitCode !== null) throw new Error(`target exited (${p.exitCode})`);
    try {
      topo.exec(ns, process.execPath, ['-e', `const s=require('net').connect(${port},'${host}',()=>{s.destroy();process.exit(0)});s.on('error',()=>process.exit(1))`]);
      return;
    } catch { await sleep(100); }
  }
  throw new Error(`${host}:${port} never accepted`);
}

// ------------------------------------------------------------------ sockmap

interface SockSample { mode: string; workload: string; value: number; p50us?: number; p99us?: number; cpu: number; perCpu: number }

async function sockmap(samples: SockSample[], conditions: Record<string, unknown>): Promise<void> {
  const bin = join(tmp, 'sockbench');
  execFileSync('gcc', ['-O2', '-o', bin, join(here, 'sockbench.c'), '-lpthread']);
  const cgRoot = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')?.[1];
  if (!cgRoot) throw new Error('no cgroup v2');
  const cg = join(cgRoot, `pf-bench-${uniq()}`);
  mkdirSync(cg);
  onCleanup(() => removeCgroup(cg));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const inCg = (core: string, argv: string[]) => spawn('sh', ['-c', `echo $$ > ${cg}/cgroup.procs && exec taskset -c ${core} "$@"`, 'sh', bin, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = inCg('0', ['server', String(port)]);
  onCleanup(() => void server.kill('SIGKILL'));
  await waitLine(server, /READY/);
  const run = async (argv: string[]): Promise<string> => {
    const c = inCg('1', argv);
    return waitLine(c, /^(rr|stream) /, (SECONDS + 20) * 1000);
  };
  conditions.sockmap = { port, rrConns: 1, rrSizes: [64, 1024], streamChunk: 65536, serverCore: 0, clientCore: 1 };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of ['loopback', 'sockmap']) {
      let fp: BpfFastPath | undefined;
      if (mode === 'sockmap') {
        fp = await BpfFastPath.start({
          returnInterfaces: [], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: false, services: [],
          interception: { cgroup: cg, outboundPort: port, outboundAddress: '127.0.0.1', outboundAddress6: '::1', skipPorts: [], sockmapPorts: [port], connect: false, sockmap: true },
        }, log);
      }
      try {
        for (const size of [64, 1024]) {
          const s0 = cpuTicks([server.pid!]);
          const [, rps, p50, p99, ccpu] = (await run(['rr', String(port), '1', String(SECONDS), String(size)])).split(' ').map(Number);
          const cpu = ccpu! + cpuTicks([server.pid!]) - s0;
          samples.push({ mode, workload: `rr-${size}B`, value: rps!, p50us: p50!, p99us: p99!, cpu, perCpu: (rps! * SECONDS) / cpu });
          log(`round ${round} ${mode} rr ${size}B: ${rps} req/s p50 ${p50}us p99 ${p99}us, cpu ${cpu.toFixed(2)}s`);
        }
        const s0 = cpuTicks([server.pid!]);
        const [, mbs, ccpu] = (await run(['stream', String(port), String(SECONDS), '65536'])).split(' ').map(Number);
        const cpu = ccpu! + cpuTicks([server.pid!]) - s0;
        samples.push({ mode, workload: 'stream-64KiB', value: mbs!, cpu, perCpu: (mbs! * SECONDS) / cpu });
        log(`round ${round} ${mode} stream: ${mbs} MB/s, cpu ${cpu.toFixed(2)}s`);
        if (fp) {
          await fp.sync();
          const m = fp.metrics();
          log(`  sockmap redirects ${m.fastpath_sockmap_redirects_total}, sockets ${m.fastpath_sockmap_sockets_total}`);
          if (!m.fastpath_sockmap_redirects_total) throw new Error('sockmap mode did not redirect anything');
        }
      } finally {
        await fp?.close();
      }
    }
  }
}

// ------------------------------------------------------------------ observe

interface ObsSample { mode: string; round: number; cps: number; conns: number; failed: number; cpu: number; helperCpu: number; nodeCpu: number; bpfNs: number; bpfRuns: number; events: number; lost: number }

/** BPF run time of the observation programs, from the helper that loaded them (kernel.bpf_stats_enabled). */
async function observeProgNs(fp: BpfFastPath | undefined): Promise<{ ns: number; cnt: number }> {
  if (!fp) return { ns: 0, cnt: 0 };
  const f = (await fp.daemon.request('P')).trim().split(' ');
  let ns = 0, cnt = 0;
  for (let i = 0; i + 2 < f.length; i += 3) {
    if (!['fp_sockops', 'fp_connect4', 'fp_connect6', 'fp_sendmsg4', 'fp_sendmsg6'].includes(f[i]!)) continue;
    ns += Number(f[i + 1]);
    cnt += Number(f[i + 2]);
  }
  return { ns, cnt };
}

async function observe(samples: ObsSample[], conditions: Record<string, unknown>): Promise<void> {
  const bin = join(tmp, 'sockbench');
  execFileSync('gcc', ['-O2', '-o', bin, join(here, 'sockbench.c'), '-lpthread']);
  const cgRoot = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')?.[1];
  if (!cgRoot) throw new Error('no cgroup v2');
  const cg = join(cgRoot, `pf-bench-obs-${RUN_ID}`);
  mkdirSync(cg);
  onCleanup(() => removeCgroup(cg));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const inCg = (core: string, argv: string[]) => spawn('sh', ['-c', `echo $$ > ${cg}/cgroup.procs && exec taskset -c ${core} "$@"`, 'sh', bin, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = inCg('0', ['cserver', String(port)]);
  onCleanup(() => void server.kill('SIGKILL'));
  await waitLine(server, /READY/);
  conditions.observe = { port, rate: RATE || 'max', serverCore: 0, clientCore: 1, workload: 'connect, 1 byte each way, server closes; one client thread' };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of ['off', 'observe', 'observe+events']) {
      let fp: BpfFastPath | undefined;
      let events = 0;
      let off: (() => void) | undefined;
      if (mode !== 'off') {
        fp = await BpfFastPath.start({
          returnInterfaces: [], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: false, services: [],
          observe: { cgroup: cg, workload: 'bench', events: mode === 'observe+events' },
        }, log);
        if (mode === 'observe+events') off = await fp.subscribeFlowsReady(() => { events++; });
      }
      try {
        const s0 = cpuTicks([server.pid!]);
        const h0 = fp?.daemon.pid ? cpuTicks([fp.daemon.pid]) : 0;
        const b0 = await observeProgNs(fp);
        const n0 = process.cpuUsage();
        const c = inCg('1', ['cps', String(port), String(SECONDS), String(RATE)]);
        const [, cps, failed, ccpu] = (await waitLine(c, /^cps /, (SECONDS + 20) * 1000)).split(' ').map(Number);
        await sleep(300); // let the last events arrive
        const n1 = process.cpuUsage(n0);
        const b1 = await observeProgNs(fp);
        const helperCpu = fp?.daemon.pid ? cpuTicks([fp.daemon.pid]) - h0 : 0;
        await fp?.sync();
        const m = fp?.metrics() ?? {};
        const sample: ObsSample = {
          mode, round, cps: cps!, conns: cps! * SECONDS, failed: failed!, cpu: ccpu! + cpuTicks([server.pid!]) - s0, helperCpu,
          nodeCpu: mode === 'off' ? 0 : (n1.user + n1.system) / 1e6, bpfNs: b1.ns - b0.ns, bpfRuns: b1.cnt - b0.cnt,
          events, lost: m.fastpath_conn_events_lost_total ?? 0,
        };
        samples.push(sample);
        log(`round ${round} ${mode}: ${cps} conn/s, workload cpu ${sample.cpu.toFixed(2)}s, helper ${helperCpu.toFixed(2)}s, node ${sample.nodeCpu.toFixed(2)}s, bpf ${(sample.bpfNs / 1e6).toFixed(1)}ms/${sample.bpfRuns} runs, events ${events}, lost ${sample.lost}`);
      } finally {
        off?.();
        await fp?.close();
      }
    }
  }
}

function observeReport(obs: ObsSample[]): string[] {
  const lines = ['## connection telemetry overhead (loopback, one connection per exchange, in a cgroup)', ''];
  lines.push('| mode | conn/s | workload CPU us/conn | BPF ns/conn | helper CPU us/conn | pilotfish (node) CPU us/conn | total CPU us/conn | overhead vs off | CPU at 10k conn/s (of one core) | events | lost |', '|---|---|---|---|---|---|---|---|---|---|---|');
  const per = (xs: ObsSample[], f: (s: ObsSample) => number) => median(xs.map((s) => (s.conns > 0 ? f(s) / s.conns : NaN)));
  const off = obs.filter((s) => s.mode === 'off');
  const baseTotal = per(off, (s) => s.cpu) * 1e6;
  for (const mode of ['off', 'observe', 'observe+events']) {
    const xs = obs.filter((s) => s.mode === mode);
    if (!xs.length) continue;
    const wl = per(xs, (s) => s.cpu) * 1e6;
    const bpf = per(xs, (s) => s.bpfNs);
    const helper = per(xs, (s) => s.helperCpu) * 1e6;
    const node = per(xs, (s) => s.nodeCpu) * 1e6;
    const total = wl + helper + node;
    const extra = total - baseTotal;
    lines.push(`| ${mode} | ${median(xs.map((s) => s.cps)).toFixed(0)} | ${wl.toFixed(1)} | ${bpf.toFixed(0)} | ${helper.toFixed(2)} | ${node.toFixed(2)} | ${total.toFixed(1)} | ${mode === 'off' ? '-' : `${((extra / baseTotal) * 100).toFixed(1)}%`} | ${mode === 'off' ? '-' : `${((extra * 1e4) / 1e6 * 100).toFixed(1)}%`} | ${median(xs.map((s) => s.events))} | ${median(xs.map((s) => s.lost))} |`);
  }
  lines.push('', 'Workload CPU = client + server user+system time (it includes the BPF programs, which run in their syscalls and softirqs); BPF ns/conn from kernel.bpf_stats_enabled for connect4/6, sendmsg4/6 and sockops; helper and pilotfish CPU are the extra processes. "CPU at 10k conn/s" = (total - off) us/conn x 10,000/s, as a share of one core.');
  return lines;
}

// ------------------------------------------------------------------ report

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root');
  const b = await ensureBuilt();
  if (!b.ok) throw new Error(b.reason);
  const statsBefore = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  onCleanup(() => writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsBefore));
  const conditions: Record<string, unknown> = {
    date: new Date().toISOString(), kernel: release(), cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version,
    rounds: ROUNDS, seconds: SECONDS, wrk: { threads: 1, connections: CONNS }, gatewayCore: 0, loadCore: 1,
    nginx: spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim(),
    note: 'veth pairs in network namespaces; XDP native on veth; tx checksum offload off on veth ends',
  };
  const steer: Sample[] = [];
  const sock: SockSample[] = [];
  const obs: ObsSample[] = [];
  try {
    if (ONLY === 'all' || ONLY === 'steering') await steering(steer, conditions);
    if (ONLY === 'all' || ONLY === 'sockmap') await sockmap(sock, conditions);
    if (ONLY === 'all' || ONLY === 'observe') await observe(obs, conditions);
  } finally {
    await cleanup();
  }

  const lines: string[] = [];
  lines.push(`# fast path benchmark — ${conditions.date}`, '', `kernel ${conditions.kernel}, ${conditions.cpus} CPUs (${conditions.cpuModel}), ${ROUNDS} rounds x ${SECONDS}s, medians`, '');
  if (steer.length) {
    lines.push('## L4 steering (client -> gateway -> backend, veth/netns, wrk -t1 -c16)', '');
    lines.push('| workload | target | req/s | client pkt/s | p50 ms | p99 ms | gateway CPU s | pkt per gateway CPU-s | machine busy s | softirq s | errors |', '|---|---|---|---|---|---|---|---|---|---|---|');
    for (const workload of ['rr', 'cps']) {
      for (const target of [...new Set(steer.map((s) => s.target))]) {
        const xs = steer.filter((s) => s.workload === workload && s.target === target);
        if (!xs.length) continue;
        const m = (f: (s: Sample) => number) => median(xs.map(f));
        const perCpu = m((s) => (s.gwCpu > 0 ? s.packets / s.gwCpu : NaN));
        lines.push(`| ${workload} | ${target} | ${m((s) => s.rps).toFixed(0)} | ${m((s) => s.pps).toFixed(0)} | ${m((s) => s.p50ms).toFixed(2)} | ${m((s) => s.p99ms).toFixed(2)} | ${m((s) => s.gwCpu).toFixed(3)} | ${Number.isFinite(perCpu) ? perCpu.toExponential(2) : '-'} | ${m((s) => s.busy).toFixed(2)} | ${m((s) => s.softirq).toFixed(2)} | ${m((s) => s.errors)} |`);
      }
    }
    lines.push('');
  }
  if (sock.length) {
    lines.push('## sockmap short-cut (two local processes, 127.0.0.1, 1 connection)', '');
    lines.push('| workload | loopback | sockmap | ratio | per CPU-s: loopback | per CPU-s: sockmap | ratio | loopback p50/p99 us | sockmap p50/p99 us |', '|---|---|---|---|---|---|---|---|---|');
    for (const w of [...new Set(sock.map((s) => s.workload))]) {
      const a = sock.filter((s) => s.workload === w && s.mode === 'loopback');
      const b2 = sock.filter((s) => s.workload === w && s.mode === 'sockmap');
      const va = median(a.map((s) => s.value)), vb = median(b2.map((s) => s.value));
      const lat = (xs: SockSample[]) => (xs[0]?.p50us !== undefined ? `${median(xs.map((s) => s.p50us!)).toFixed(1)} / ${median(xs.map((s) => s.p99us!)).toFixed(1)}` : '-');
      const ca = median(a.map((s) => s.perCpu)), cb = median(b2.map((s) => s.perCpu));
      lines.push(`| ${w} | ${va.toFixed(1)} | ${vb.toFixed(1)} | ${(vb / va).toFixed(2)}x | ${ca.toFixed(0)} | ${cb.toFixed(0)} | ${(cb / ca).toFixed(2)}x | ${lat(a)} | ${lat(b2)} |`);
    }
    lines.push('', 'rr rows: requests/s; stream row: MB/s written by the sender. "per CPU-s": the same work divided by client + server CPU time (user + system).');
  }
  if (obs.length) lines.push('', ...observeReport(obs));
  const md = lines.join('\n');
  process.stdout.write(md + '\n');
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `fastpath-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ conditions, steering: steer, sockmap: sock, observe: obs }, null, 2));
}

// a finished run exits even if a child's pipe or a timer would keep the loop alive
main().then(() => process.exit(0), async (e: Error) => {
  log(`bench failed: ${e.stack ?? e.message}`);
  await cleanup();
  process.exit(1);
});
