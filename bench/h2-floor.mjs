#!/usr/bin/env node
// Node's floor for HTTP/2 downstreams: CPU per h2c request of
//   node-h2-bare      a bare node:http2 server (core API) answering each stream with 64 bytes,
//   pilotfish-direct  pilotfish answering with a direct_response of the same 64 bytes (the
//                     exchange core on the core API, no upstream),
//   nginx-return      nginx `return 200` with the same body (h2c, 1 worker),
// each pinned to the proxy core, h2load (-t1 -c8 -m16, as bench/http's h2c scenario) on the
// load core, alternating rounds, medians. CPU = utime+stime of the target's processes over
// the load run, divided by the requests h2load completed.
//
//   node bench/h2-floor.mjs [--rounds 3] [--duration 6] [--pilotfish-bin bin/pilotfish.js] [--nice=-10]
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
  },
});
const ROUNDS = Number(o.rounds), DUR = Number(o.duration);
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
const load = (port, seconds) => execFileSync('nice', ['-n', o.nice, 'taskset', '-c', o['load-core'], 'h2load', '-t1', '-c8', '-m16', `-D${seconds}`, `http://127.0.0.1:${port}/`], { timeout: (seconds + 30) * 1000 }).toString();

try {
  await sleep(3000);
  for (const t of Object.values(targets)) load(t.port, 1); // warm-up, and a check that each answers
  const results = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, t] of Object.entries(targets)) {
      const pids = tree(t.proc.pid);
      const before = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const out = load(t.port, DUR);
      const after = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const done = Number(/(\d+) succeeded/.exec(out)?.[1] ?? 0);
      const us = done > 0 ? ((after - before) * 1e6) / done : NaN;
      (results[name] ??= []).push(us);
      process.stderr.write(`round ${r + 1} ${name}: ${done} requests, ${us.toFixed(1)} µs/req, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const base = median(results['nginx-return']);
  console.log(`h2c (h2load -t1 -c8 -m16, ${DUR} s), ${ROUNDS} alternating rounds, medians; CPU µs per request of the target's processes`);
  console.log('| target | CPU µs/req | vs nginx | rounds |\n|---|---:|---:|---|');
  for (const [name, a] of Object.entries(results)) console.log(`| ${name} | ${median(a).toFixed(1)} | ${(median(a) / base).toFixed(2)}× | ${a.map((x) => x.toFixed(1)).join(', ')} |`);
} finally {
  cleanup();
}
