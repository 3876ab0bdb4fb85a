// Soak: bounded mixed good / malformed / slow clients for a fixed time against a
// pilotfish process whose cluster has a good, a failing and a flapping upstream.
// Reports requests served, errors by kind, the proxy's RSS at start and end, and
// proves no smuggled request reached an upstream. Not part of npm test.
//   npx tsx bench/soak/soak.ts [seconds=60]
import { fork, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { cases } from '../../proxy/test/hardening/smuggling-cases.js';

const SECONDS = Number(process.argv[2] ?? process.env.SOAK_SECONDS ?? 60);
const GOOD_CONCURRENCY = 8;
const MALFORMED_CONCURRENCY = 2;
const SLOW_CONNECTIONS = 30;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

// ---- upstreams ----------------------------------------------------------------
let smuggledSeen = 0;
const upstreamRequests: Record<string, number> = {};
async function upstream(name: string, behave: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ port: number; server: http.Server }> {
  const server = http.createServer((req, res) => {
    if (req.url?.includes('smuggled')) smuggledSeen++;
    if (req.url !== '/healthz') count(upstreamRequests, name);
    req.resume();
    req.on('end', () => behave(req, res));
  });
  // The criterion is a *request* the upstream parsed: a Content-Length-covered body may carry the text legitimately.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, server };
}
const reply = (res: http.ServerResponse, status: number, name: string) => res.writeHead(status, { 'content-length': '2', 'x-upstream': name }).end('ok');
const good = await upstream('good', (_q, res) => reply(res, 200, 'good'));
// Fails half of its requests with 503 (outlier detection should eject it repeatedly).
const failing = await upstream('failing', (req, res) => (req.url === '/healthz' ? reply(res, 200, 'failing') : reply(res, Math.random() < 0.5 ? 503 : 200, 'failing')));
// Flaps every 5 s: while down, health checks fail and requests are reset.
let flapDown = false;
const flapTimer = setInterval(() => (flapDown = !flapDown), 5000);
const flapping = await upstream('flapping', (req, res) => {
  if (flapDown) {
    if (req.url === '/healthz') reply(res, 503, 'flapping');
    else res.socket?.destroy();
  } else reply(res, 200, 'flapping');
});

// ---- pilotfish ----------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'pilotfish-soak-'));
const cfg = join(dir, 'soak.yaml');
writeFileSync(cfg, `
overload_manager:
  refresh_interval: 0.25s
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config: { "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig, max_active_downstream_connections: 500 }
  - name: pilotfish.resource_monitors.event_loop_lag
    typed_config: { "@type": type.googleapis.com/udpa.type.v1.TypedStruct, type_url: pilotfish.resource_monitors.EventLoopLag, value: { max_lag: 0.5s } }
  actions:
  - name: envoy.overload_actions.stop_accepting_requests
    triggers: [{ name: pilotfish.resource_monitors.event_loop_lag, threshold: { value: 1.0 } }]
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: soak
          request_headers_timeout: 2s
          stream_idle_timeout: 5s
          common_http_protocol_options: { idle_timeout: 10s, max_connection_duration: 20s }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: up, timeout: 3s, retry_policy: { retry_on: "5xx", num_retries: 2, retry_back_off: { base_interval: 0.01s } } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 0.5s
    circuit_breakers: { thresholds: [{ max_connections: 64, max_pending_requests: 64, max_requests: 256, max_retries: 32 }] }
    health_checks:
    - { timeout: 0.5s, interval: 0.5s, no_traffic_interval: 0.5s, unhealthy_threshold: 2, healthy_threshold: 2, http_health_check: { path: /healthz } }
    outlier_detection: { consecutive_5xx: 5, interval: 1s, base_ejection_time: 2s, max_ejection_time: 10s, max_ejection_percent: 50 }
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${good.port} } } }
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${failing.port} } } }
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${flapping.port} } } }
`);
const child: ChildProcess = fork(new URL('./proxy-main.ts', import.meta.url).pathname, [cfg], {
  execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
});
const port = await new Promise<number>((resolve, reject) => {
  let out = '';
  child.stdout!.on('data', (c) => {
    out += c;
    const nl = out.indexOf('\n');
    if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
  });
  child.once('exit', (code) => reject(new Error(`proxy exited ${code}`)));
});
const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
await sleep(1500); // first health-check round
const rssStart = rssKb();

// ---- clients ------------------------------------------------------------------
const t0 = Date.now();
const deadline = Date.now() + SECONDS * 1000;
const goodStatus: Record<string, number> = {};
const goodErrors: Record<string, number> = {};
const latencies: number[] = [];
const malformed: Record<string, number> = {};
let slowCut = 0;
let slowOpened = 0;

const agent = new http.Agent({ keepAlive: true, maxSockets: GOOD_CONCURRENCY });
async function goodClient(i: number): Promise<void> {
  let n = 0;
  while (Date.now() < deadline) {
    const post = n++ % 4 === 0;
    const start = performance.now();
    await new Promise<void>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: `/c${i}/${n}`, method: post ? 'POST' : 'GET', agent, headers: post ? { 'content-type': 'text/plain' } : {} }, (res) => {
        res.resume();
        res.on('end', () => {
          count(goodStatus, String(res.statusCode));
          latencies.push(performance.now() - start);
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => {
        count(goodErrors, e.code ?? e.message);
        resolve();
      });
      req.end(post ? 'hello' : undefined);
    });
  }
}

async function malformedClient(): Promise<void> {
  let i = 0;
  while (Date.now() < deadline) {
    const c = cases[i++ % cases.length]!;
    const r = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let text = '';
      const timer = setTimeout(() => { s.destroy(); resolve(text); }, 1000);
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => { clearTimeout(timer); resolve(text); });
      s.write(c.req);
    });
    const status = /^HTTP\/1\.1 (\d+)/.exec(r)?.[1] ?? 'none';
    count(malformed, c.expect === 'reject' ? `refused ${status}` : `tolerated ${status}`);
    await sleep(20);
  }
}

async function slowClient(): Promise<void> {
  const line = 'GET /slow HTTP/1.1\r\nHost: a\r\nX-Slow: ' + 'a'.repeat(4000);
  while (Date.now() < deadline) {
    slowOpened++;
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let pos = 0;
      const drip = setInterval(() => {
        if (Date.now() >= deadline) s.destroy();
        else s.write(line[pos++ % line.length]!);
      }, 100);
      s.on('error', (e) => { if (process.env.SOAK_DEBUG) console.error('slow error', e.message, Date.now() - t0); });
      s.on('end', () => { if (process.env.SOAK_DEBUG) console.error('slow end', Date.now() - t0); });
      s.on('data', (d) => { if (process.env.SOAK_DEBUG) console.error('slow got', JSON.stringify(String(d).slice(0, 30)), Date.now() - t0); });
      s.on('close', () => {
        if (process.env.SOAK_DEBUG) console.error('slow closed', Date.now() - t0);
        clearInterval(drip);
        if (Date.now() < deadline) slowCut++;
        resolve();
      });
    });
  }
}

const only = process.env.SOAK_ONLY;
await Promise.all([
  ...Array.from({ length: !only || only === 'good' ? GOOD_CONCURRENCY : 0 }, (_, i) => goodClient(i)),
  ...Array.from({ length: !only || only === 'malformed' ? MALFORMED_CONCURRENCY : 0 }, () => malformedClient()),
  ...Array.from({ length: !only || only === 'slow' ? SLOW_CONNECTIONS : 0 }, () => slowClient()),
]);
const elapsed = (Date.now() - t0) / 1000;
const rssEnd = rssKb();
child.send('stats');
const proxyStats = await new Promise<{ stats: Record<string, number>; overload: Record<string, number> }>((r) => child.once('message', (m) => r(m as never)));
child.kill('SIGTERM');
clearInterval(flapTimer);
agent.destroy();
for (const u of [good, failing, flapping]) { u.server.closeAllConnections(); u.server.close(); }
if (!process.env.SOAK_KEEP) rmSync(dir, { recursive: true, force: true });
else console.error(cfg);

latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]?.toFixed(1);
const pick = (prefix: string) => Object.fromEntries(Object.entries(proxyStats.stats).filter(([k, v]) => k.startsWith(prefix) && v !== 0));
const served = Number(goodStatus['200'] ?? 0);
const report = {
  seconds: elapsed,
  good: { requests: latencies.length, served_200: served, rps: Math.round(latencies.length / elapsed), status: goodStatus, errors: goodErrors, latency_ms: { p50: q(0.5), p99: q(0.99), max: q(1) } },
  malformed,
  slow: { connections_opened: slowOpened, cut_by_proxy: slowCut },
  upstream_requests: upstreamRequests,
  smuggled_requests_seen_by_upstreams: smuggledSeen,
  proxy_rss_mb: { start: (rssStart / 1024).toFixed(1), end: (rssEnd / 1024).toFixed(1) },
  cluster: pick('cluster.up.'),
  http: pick('http.soak.downstream_rq_'),
  overload: proxyStats.overload,
};
console.log(JSON.stringify(report, null, 2));
if (smuggledSeen > 0) {
  console.error('FAIL: an upstream saw a smuggled request');
  process.exit(1);
}
process.exit(0);
