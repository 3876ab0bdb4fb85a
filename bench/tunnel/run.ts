/**
 * HBONE through the pilotfish waypoint vs direct mTLS (bench/README.md, "tunnels").
 *
 *   direct    client --HBONE--> pod ztunnel --TCP--> echo
 *   waypoint  client --HBONE--> pilotfish waypoint (connect_terminate -> main_internal ->
 *             connect_originate) --HBONE--> pod ztunnel --TCP--> echo
 *
 * Measured per round, rounds alternating (direct, waypoint, direct, ...), medians reported:
 *   setup      sequential tunnels (CONNECT, one echoed line, close): wall ms per tunnel, and
 *              CPU ms per tunnel of the hop under test (the waypoint; for direct, the pod
 *              ztunnel, a plain mTLS CONNECT terminator on node:http2 — the baseline)
 *   bulk       4 tunnels each echoing 32 MiB: MB/s wall, and bytes moved per CPU-second of
 *              the hop under test (both directions count)
 * The waypoint runs pinned to core 0 (`taskset`), everything else to core 1.
 *
 *   node --import tsx bench/tunnel/run.ts [--rounds 3] [--tunnels 200] [--mib 32]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { issueWorkload, mintRoot } from '../../certs/src/index.js';
import { waypointBootstrap } from '../../e2e/fixtures/waypoint/waypoint.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('rounds', 3);
const TUNNELS = arg('tunnels', 200);
const MIB = arg('mib', 32);
const STREAMS = 4;

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tsxLoader = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
const script = `import(${JSON.stringify(pathToFileURL(path.join(root, 'cli/src/main.ts')).href)}).then((m) => m.main(process.argv.slice(1))).then((c) => process.exit(c ?? 0))`;
const TICK_MS = 10; // /proc/<pid>/stat counts in USER_HZ (100 on Linux)

function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_MS;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function waitLine(child: ChildProcess, re: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer) => {
      out += d;
      if (re.test(out)) resolve();
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (c) => reject(new Error(`exited ${c}: ${out}`)));
  });
}

const dir = mkdtempSync(path.join(tmpdir(), 'pf-bench-tunnel-'));
const children: ChildProcess[] = [];
const cleanup = (): void => {
  // SIGTERM first: a profiled waypoint writes its profile on a clean exit.
  for (const c of children) if (c.exitCode === null) c.kill(process.argv.includes('--profile') ? 'SIGTERM' : 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

async function main(): Promise<void> {
  const ca = await mintRoot({ trustDomain: 'cluster.local' });
  const [wp, client, pod] = await Promise.all(['waypoint', 'client', 'echo'].map((sa) => issueWorkload({ ca, spiffeId: `spiffe://cluster.local/ns/default/sa/${sa}` })));
  const f = (n: string, s: string) => {
    writeFileSync(path.join(dir, n), s);
    return path.join(dir, n);
  };
  const files = { ca: f('ca.pem', ca.certPem), wpCert: f('wp.crt', wp!.chainPem), wpKey: f('wp.key', wp!.keyPem), podCert: f('pod.crt', pod!.chainPem), podKey: f('pod.key', pod!.keyPem) };

  const podIp = `127.${30 + Math.floor(Math.random() * 200)}.0.2`;
  const echo = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(9000, podIp, () => r()));

  const zt = spawn('taskset', ['-c', '1', process.execPath, path.join(root, 'bench/tunnel/ztunnel.mjs')], {
    env: { ...process.env, ADDRESS: podIp, PORT: '15008', KEY: files.podKey, CERT: files.podCert, CA: files.ca }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(zt);
  await waitLine(zt, /ready/);

  const [wpPort, adminPort] = [await freePort(), await freePort()];
  const cfg = f('waypoint.json', JSON.stringify(waypointBootstrap({
    address: '127.0.0.1', port: wpPort, adminPort, certFile: files.wpCert, keyFile: files.wpKey, caFile: files.ca,
    trustDomain: 'cluster.local', namespace: 'default', maxConcurrentStreams: 1000,
    services: [{ hostname: 'echo.default.svc.cluster.local', vip: '198.18.0.10', port: 9000, protocol: 'tcp', endpoints: [`${podIp}:9000`] }],
  })));
  // --profile: the waypoint writes a CPU profile (bench/results/) on exit.
  const prof = process.argv.includes('--profile') ? ['--cpu-prof', '--cpu-prof-dir', path.join(root, 'bench/results')] : [];
  const waypoint = spawn('taskset', ['-c', '0', process.execPath, ...prof, '--import', tsxLoader, '-e', script, '--', 'proxy', '--config', cfg, '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(waypoint);
  await new Promise<void>((resolve, reject) => {
    const tick = async (): Promise<void> => {
      if (waypoint.exitCode !== null) return reject(new Error('waypoint exited'));
      const ok = await fetch(`http://127.0.0.1:${adminPort}/ready`).then((r) => r.status === 200, () => false);
      if (ok) resolve();
      else setTimeout(tick, 200);
    };
    void tick();
  });

  const session = (port: number, host: string, checkId: string): http2.ClientHttp2Session => {
    const s = http2.connect(`https://${host}:${port}`, {
      createConnection: () => tls.connect({
        host, port, ca: ca.certPem, cert: client!.chainPem, key: client!.keyPem, ALPNProtocols: ['h2'],
        checkServerIdentity: (_h, c) => ((c.subjectaltname ?? '').includes(checkId) ? undefined : new Error('wrong peer')),
      }),
      settings: { initialWindowSize: 1 << 20 },
    });
    s.on('error', () => undefined);
    s.once('connect', () => s.setLocalWindowSize(16 << 20));
    return s;
  };
  const open = (s: http2.ClientHttp2Session, authority: string): Promise<http2.ClientHttp2Stream> => new Promise((resolve, reject) => {
    const st = s.request({ ':method': 'CONNECT', ':authority': authority });
    st.once('response', (h) => (h[':status'] === 200 ? resolve(st) : reject(new Error(String(h[':status'])))));
    st.once('error', reject);
  });
  const echoBytes = (st: http2.ClientHttp2Stream, total: number): Promise<void> => new Promise((resolve) => {
    let got = 0;
    st.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= total) resolve();
    });
    const chunk = Buffer.alloc(64 * 1024, 10); // newlines: http_inspector decides at once
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!st.write(chunk)) return void st.once('drain', pump);
      }
    };
    pump();
  });

  const targets = {
    direct: { port: 15008, host: podIp, id: 'sa/echo', authority: `${podIp}:9000`, pid: zt.pid! },
    waypoint: { port: wpPort, host: '127.0.0.1', id: 'sa/waypoint', authority: '198.18.0.10:9000', pid: waypoint.pid! },
  };
  type Name = keyof typeof targets;
  const results: Record<Name, { setupMs: number[]; setupCpuMs: number[]; mbps: number[]; bytesPerCpuS: number[]; ztCpuShare: number[] }> = {
    direct: { setupMs: [], setupCpuMs: [], mbps: [], bytesPerCpuS: [], ztCpuShare: [] },
    waypoint: { setupMs: [], setupCpuMs: [], mbps: [], bytesPerCpuS: [], ztCpuShare: [] },
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of ['direct', 'waypoint'] as Name[]) {
      const t = targets[name];
      const s = session(t.port, t.host, t.id);
      await open(s, t.authority).then((st) => echoBytes(st, 1).then(() => st.close())); // warm the connections
      // setup
      let cpu0 = cpuMs(t.pid);
      let w0 = performance.now();
      for (let i = 0; i < TUNNELS; i++) {
        const st = await open(s, t.authority);
        await echoBytes(st, 1);
        st.close();
      }
      results[name].setupMs.push((performance.now() - w0) / TUNNELS);
      results[name].setupCpuMs.push((cpuMs(t.pid) - cpu0) / TUNNELS);
      // bulk
      const total = MIB * 1024 * 1024;
      const streams = await Promise.all(Array.from({ length: STREAMS }, () => open(s, t.authority)));
      cpu0 = cpuMs(t.pid);
      const zt0 = cpuMs(zt.pid!);
      w0 = performance.now();
      await Promise.all(streams.map((st) => echoBytes(st, total)));
      const wall = (performance.now() - w0) / 1000;
      const cpu = (cpuMs(t.pid) - cpu0) / 1000;
      const moved = 2 * STREAMS * total;
      results[name].mbps.push(moved / wall / 1e6);
      results[name].bytesPerCpuS.push(moved / Math.max(cpu, 0.01));
      results[name].ztCpuShare.push((cpuMs(zt.pid!) - zt0) / 1000 / wall);
      for (const st of streams) st.close();
      s.close();
      process.stderr.write(`round ${round + 1} ${name}: setup ${results[name].setupMs.at(-1)!.toFixed(2)} ms, bulk ${results[name].mbps.at(-1)!.toFixed(0)} MB/s\n`);
    }
  }
  const d = results.direct;
  const w = results.waypoint;
  const row = (label: string, a: number, b: number, digits: number, ratio = b / a) => `| ${label} | ${a.toFixed(digits)} | ${b.toFixed(digits)} | ${ratio.toFixed(2)}x |`;
  console.log([
    `# HBONE: pilotfish waypoint vs direct mTLS (pod ztunnel stand-in on node:http2)`,
    '',
    `${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, node ${process.version}; ${ROUNDS} rounds alternating, medians; waypoint on core 0, client/ztunnel/echo on core 1;`,
    `setup: ${TUNNELS} sequential tunnels on one warm HTTP/2 connection; bulk: ${STREAMS} tunnels x ${MIB} MiB echoed (both directions counted).`,
    `CPU is the hop under test: the waypoint process (waypoint) or the pod ztunnel process (direct).`,
    '',
    '| metric | direct mTLS | through waypoint | ratio |',
    '|---|---|---|---|',
    row('tunnel setup, wall ms per tunnel', median(d.setupMs), median(w.setupMs), 3),
    row('tunnel setup, CPU ms per tunnel (hop under test)', median(d.setupCpuMs), median(w.setupCpuMs), 3),
    row('bulk throughput, MB/s (wall)', median(d.mbps), median(w.mbps), 0),
    row('bytes per CPU-second of the hop, MB', median(d.bytesPerCpuS) / 1e6, median(w.bytesPerCpuS) / 1e6, 0),
  ].join('\n'));
  writeFileSync(path.join(root, 'bench/results', `tunnel-${Date.now()}.json`), JSON.stringify({ conditions: { rounds: ROUNDS, tunnels: TUNNELS, mib: MIB, streams: STREAMS, node: process.version }, results }, null, 1));
  echo.close();
}

main().then(cleanup, (e) => {
  console.error(e);
  cleanup();
  process.exit(1);
}).then(() => process.exit(0));
