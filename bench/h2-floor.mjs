#!/usr/bin/env node
// Node's floor for HTTP/2 downstreams: CPU per h2c request of
//   node-h2-bare      a bare node:http2 server (core API) answering each stream with 64 bytes,
//   pilotfish-direct  pilotfish answering with a direct_response of the same 64 bytes (the
//                     exchange core on the core API, no upstream),
//   nginx-return      nginx `return 200` with the same body (h2c, 1 worker),
// each pinned to the proxy core, h2load (-t1 -c8 -m16, as bench/http's h2c scenario) on the
// load core, alternating rounds, medians. CPU = utime+stime of the target's processes over
// the load run, divided by the requests h2load completed.
// --rate R: the fixed-rate floor instead (as bench/http's rate-h2c: R req/s over 20
// connections, one request in flight each, clients' phases spread by -r1
// --rate-period=1ms), with the median latency (p50) from h2load's request log.
//
//   node bench/h2-floor.mjs [--rounds 3] [--duration 6] [--rate 2000] [--pilotfish-bin bin/pilotfish.js] [--nice=-10]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '6' },
    'pilotfish-bin': { type: 'string', default: 'bin/pilotfish.js' }, nice: { type: 'string', default: '0' },
    'proxy-core': { type: 'string', default: '0' }, 'load-core': { type: 'string', default: '1' },
    rate: { type: 'string', default: '0' },
  },
});
const ROUNDS = Number(o.rounds), DUR = Number(o.duration), RATE = Number(o.rate), RATE_CLIENTS = 20;
const BODY = 'x'.repeat(64);
const dir = mkdtempSync(join(tmpdir(), 'pilotfish-h2-floor-'));
const procs = [];
const cleanup = () => {
  for (const p of procs) for (const pid of tree(p.pid).reverse()) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => { cleanup(); process.exit(130); });

function freePort() {
  return new Promise((r) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => r(port)); }); });
}
function tree(pid) {
  const out = [pid];
  try { for (const c of execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').filter(Boolean)) out.push(...tree(Number(c))); } catch { /* no children */ }
  return out;
}
const cpuSeconds = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const pinned = (core, cmd, args, env) => {
  const p = spawn('nice', ['-n', o.nice, 'taskset', '-c', core, cmd, ...args], { stdio: 'ignore', env: env ?? process.env });
  procs.push(p);
  return p;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ports = { bare: await freePort(), pf: await freePort(), nginx: await freePort() };
writeFileSync(join(dir, 'bare.mjs'), `import * as http2 from 'node:http2';
const BODY = Buffer.from('${BODY}');
const server = http2.createServer();
server.on('stream', (s) => { s.on('error', () => {}); s.respond({ ':status': 200, 'content-length': '64' }); s.end(BODY); });
server.listen(${ports.bare}, '127.0.0.1');
`);
writeFileSync(join(dir, 'pilotfish.yaml'), `admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: ${ports.pf} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "${BODY}" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
`);
writeFileSync(join(dir, 'nginx.conf'), `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  keepalive_requests 100000000;
  http2_max_requests 100000000;
  server { listen 127.0.0.1:${ports.nginx} http2; location / { return 200 "${BODY}"; } }
}
`);

const core = o['proxy-core'];
const targets = {
  'node-h2-bare': { port: ports.bare, proc: pinned(core, process.execPath, [join(dir, 'bare.mjs')]) },
  'pilotfish-direct': { port: ports.pf, proc: pinned(core, process.execPath, [resolve(o['pilotfish-bin']), 'proxy', '--config', join(dir, 'pilotfish.yaml')]) },
  'nginx-return': { port: ports.nginx, proc: pinned(core, 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;']) },
};
const h2load = (args, seconds) => execFileSync('nice', ['-n', o.nice, 'taskset', '-c', o['load-core'], 'h2load', ...args], { timeout: (seconds + 30) * 1000 }).toString();
const logFile = join(dir, 'h2load.log');
/** One load run: h2load's output, and the p50 latency in ms at a fixed rate (from its request log). */
const load = (port, seconds) => {
  if (!(RATE > 0)) return { out: h2load(['-t1', '-c8', '-m16', `-D${seconds}`, `http://127.0.0.1:${port}/`], seconds) };
  const perClient = Math.max(1, Math.round(RATE / RATE_CLIENTS));
  const out = h2load(['-t1', `-c${RATE_CLIENTS}`, '-m1', `--rps=${perClient}`, '-r1', '--rate-period=1ms', `-n${perClient * RATE_CLIENTS * seconds}`, `--log-file=${logFile}`, `http://127.0.0.1:${port}/`], seconds);
  const rows = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => l.split('\t').map(Number));
  const t0 = rows.reduce((m, x) => Math.min(m, x[0]), Infinity);
  const lat = rows.filter((x) => x[0] - t0 >= 5e5 && x[1] === 200).map((x) => x[2] / 1000).sort((a, b) => a - b);
  return { out, p50: lat[Math.floor(lat.length / 2)] };
};

try {
  await sleep(3000);
  for (const t of Object.values(targets)) load(t.port, 1); // warm-up, and a check that each answers
  const results = {}, latencies = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, t] of Object.entries(targets)) {
      const pids = tree(t.proc.pid);
      const before = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const { out, p50 } = load(t.port, DUR);
      const after = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const done = Number(/(\d+) succeeded/.exec(out)?.[1] ?? 0);
      const us = done > 0 ? ((after - before) * 1e6) / done : NaN;
      (results[name] ??= []).push(us);
      if (p50 !== undefined) (latencies[name] ??= []).push(p50);
      process.stderr.write(`round ${r + 1} ${name}: ${done} requests, ${us.toFixed(1)} µs/req${p50 !== undefined ? `, p50 ${p50.toFixed(3)} ms` : ''}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const base = median(results['nginx-return']);
  if (RATE > 0) {
    const baseP50 = median(latencies['nginx-return']);
    console.log(`h2c at ${RATE} req/s (h2load -c${RATE_CLIENTS} -m1 --rps, ${DUR} s), ${ROUNDS} alternating rounds, medians; CPU µs per request of the target's processes, p50 latency`);
    console.log('| target | CPU µs/req | vs nginx | p50 ms | vs nginx | rounds (µs/req) |\n|---|---:|---:|---:|---:|---|');
    for (const [name, a] of Object.entries(results)) {
      const p = median(latencies[name]);
      console.log(`| ${name} | ${median(a).toFixed(1)} | ${(median(a) / base).toFixed(2)}× | ${p.toFixed(3)} | ${p - baseP50 >= 0 ? '+' : ''}${(p - baseP50).toFixed(3)} | ${a.map((x) => x.toFixed(1)).join(', ')} |`);
    }
  } else {
    console.log(`h2c (h2load -t1 -c8 -m16, ${DUR} s), ${ROUNDS} alternating rounds, medians; CPU µs per request of the target's processes`);
    console.log('| target | CPU µs/req | vs nginx | rounds |\n|---|---:|---:|---|');
    for (const [name, a] of Object.entries(results)) console.log(`| ${name} | ${median(a).toFixed(1)} | ${(median(a) / base).toFixed(2)}× | ${a.map((x) => x.toFixed(1)).join(', ')} |`);
  }
} finally {
  cleanup();
}
