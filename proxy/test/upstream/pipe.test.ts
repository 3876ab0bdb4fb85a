/**
 * Pipe (Unix domain socket) endpoints: requests, health checks and raw connections
 * (what the TCP proxy opens) reach servers listening on a socket path or on a Linux
 * abstract socket ("@name"); and upstream_connection_options.tcp_keepalive shows up on
 * the kernel's socket (ss), not just in an options object.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Dispatcher } from 'undici';
import type { HealthCheck } from '../../../config/src/index.js';
import { ClusterRuntime } from '../../src/cluster/cluster.js';
import { StatsStore } from '../../src/stats/stats.js';
import { endpointConnectOptions, isPipeEndpoint } from '../../src/upstream/address.js';
import { applyTcpKeepalive } from '../../src/upstream/pool.js';
import { clusterOf, endpoint, nameServer } from './helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilotfish-pipe-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const abstractName = `@pilotfish-test-${process.pid}`;

async function get(d: Dispatcher): Promise<string> {
  const r = await d.request({ path: '/p', method: 'GET', headers: { host: 'svc.local' } });
  return `${r.statusCode} ${await r.body.text()}`;
}

t.test('HTTP/1.1 requests over a socket path and over an abstract socket', async (t) => {
  const sockPath = path.join(dir, 'app.sock');
  const onPath = await nameServer('on-path', { path: sockPath });
  const onAbstract = await nameServer('on-abstract', { path: `\0${abstractName.slice(1)}` });
  const eps = [endpoint(sockPath, 0), endpoint(abstractName, 0)];
  t.ok(eps.every(isPipeEndpoint));
  t.notOk(isPipeEndpoint(endpoint('127.0.0.1', 80)));
  const c = new ClusterRuntime(clusterOf({ name: 'uds' }), eps, new StatsStore());
  t.teardown(async () => { await c.close(); await onPath.close(); await onAbstract.close(); });
  t.equal(await get(c.dispatcherFor(c.endpoints.get(sockPath)!)), '200 on-path');
  t.equal(await get(c.dispatcherFor(c.endpoints.get(abstractName)!)), '200 on-abstract');
  t.same(onPath.seen, ['GET /p host=svc.local'], 'the request\'s own Host header went through');
  t.equal(c.stats.upstream_cx_total.value, 2);
  t.equal(c.stats.upstream_cx_http1_total.value, 2, 'undici\'s HTTP/1.1 connections are counted by codec too');
});

t.test('HTTP/2 (h2c) over a pipe', async (t) => {
  const sockPath = path.join(dir, 'h2.sock');
  const server = http2.createServer((req, res) => res.end(`h2 ${req.httpVersion}`));
  await new Promise<void>((r) => server.listen(sockPath, r));
  const c = new ClusterRuntime(clusterOf({ name: 'uds2', upstreamProtocol: 'HTTP2' }), [endpoint(sockPath, 0)], new StatsStore());
  t.teardown(async () => { await c.destroy(); await c.close(); await new Promise((r) => server.close(r)); });
  t.equal(await get(c.dispatcherFor(c.endpoints.get(sockPath)!)), '200 h2 2.0');
  t.equal(c.stats.upstream_cx_http2_total.value, 1, 'and the HTTP/2 one as HTTP/2');
  t.equal(c.stats.upstream_cx_http1_total.value, 0);
});

t.test('active health checks (HTTP and TCP) reach pipe endpoints', async (t) => {
  const up = path.join(dir, 'hc-up.sock');
  const down = path.join(dir, 'hc-missing.sock'); // nothing listens here
  const server = await nameServer('ok', { path: up });
  for (const kind of [{ type: 'http' as const, path: '/healthz', expectedStatuses: [] }, { type: 'tcp' as const }]) {
    const hc: HealthCheck = { timeout: 200, interval: 20, intervalJitter: 0, unhealthyThreshold: 1, healthyThreshold: 1, noTrafficInterval: 20, kind };
    const c = new ClusterRuntime(clusterOf({ name: `hc-${kind.type}`, healthChecks: [hc] }), [endpoint(up, 0), endpoint(down, 0)], new StatsStore());
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !c.healthFlags(c.endpoints.get(down)!).failedActiveHc) await new Promise((r) => setTimeout(r, 20));
    t.ok(c.healthFlags(c.endpoints.get(down)!).failedActiveHc, `${kind.type}: the missing socket fails its check`);
    t.notOk(c.healthFlags(c.endpoints.get(up)!).failedActiveHc, `${kind.type}: the listening socket passes`);
    t.equal(c.endpoints.stats().healthy, 1);
    await c.close();
  }
  t.ok(server.seen.some((s) => s.startsWith('GET /healthz')), 'the HTTP check went over the socket');
  await server.close();
});

t.test('endpointConnectOptions: raw connections (the TCP proxy) to pipe and IP endpoints', async (t) => {
  const sockPath = path.join(dir, 'echo.sock');
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(sockPath, r));
  t.teardown(() => new Promise((r) => echo.close(r)));
  for (const e of [endpoint(sockPath, 0), endpoint(abstractName, 0)]) {
    if (e.address.startsWith('@')) {
      const abs = net.createServer((s) => s.pipe(s));
      await new Promise<void>((r) => abs.listen(`\0${abstractName.slice(1)}-echo`, r));
      t.teardown(() => new Promise((r) => abs.close(r)));
      Object.assign(e, { address: `${abstractName}-echo`, key: `${abstractName}-echo` });
    }
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(endpointConnectOptions(e), () => s.end('ping'));
      let buf = '';
      s.on('data', (d) => (buf += d));
      s.on('end', () => resolve(buf));
      s.on('error', reject);
    });
    t.equal(got, 'ping', `echo over ${e.address}`);
  }
  t.same(endpointConnectOptions(endpoint('10.0.0.1', 80)), { host: '10.0.0.1', port: 80 });
});

/** The keepalive timer of the established connection to `port`, in seconds, as ss reports it. */
function keepaliveSeconds(port: number): { secs: number; line: string } {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( dport = :${port} )`]).toString();
  // iproute2 print_ms_timer: [<m>min][<s>sec | <s>.]<ms>ms, e.g. "59sec", "1min59sec", "6.948ms" (6.948 s)
  const m = /timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?,/.exec(out);
  return { secs: m ? Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) + Number(m[4] ?? 0) / 1000 : Infinity, line: out.trim() };
}

t.test('applyTcpKeepalive: the same setting on a socket the TCP proxy opens', async (t) => {
  const server = net.createServer(() => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const s = net.connect(port, '127.0.0.1');
  t.teardown(() => { s.destroy(); server.close(); });
  await new Promise((r) => s.once('connect', r));
  applyTcpKeepalive(s, clusterOf({ upstreamConnectionOptions: { tcpKeepalive: { time: 9000 } } }));
  const { secs, line } = keepaliveSeconds(port);
  t.ok(secs <= 9 && secs > 7, `keepalive fires in ${secs}s (${line})`);
});

t.test('tcp_keepalive.keepalive_time is set on upstream sockets (seen by ss); probes/interval warn', async (t) => {
  const up = await nameServer('ka', { host: '127.0.0.1' });
  const warnings: string[] = [];
  const c = new ClusterRuntime(clusterOf({ name: 'ka', upstreamConnectionOptions: { tcpKeepalive: { time: 7000, probes: 3, interval: 1000 } } }),
    [endpoint('127.0.0.1', up.port)], new StatsStore(), undefined, { warn: (m) => warnings.push(m) });
  t.teardown(async () => { await c.destroy(); await c.close(); await up.close(); });
  t.equal(warnings.length, 2);
  t.match(warnings[0], /cluster ka: upstream_connection_options\.tcp_keepalive\.keepalive_probes is not supported/);
  t.match(warnings[1], /keepalive_interval is not supported/);
  const d = c.dispatcherFor(c.endpoints.get(`127.0.0.1:${up.port}`)!);
  t.equal(await get(d), '200 ka'); // the pooled connection stays open
  const { secs, line } = keepaliveSeconds(up.port);
  t.ok(line.includes('keepalive'), `ss shows a keepalive timer: ${line}`);
  t.ok(secs <= 7 && secs > 5, `keepalive fires in ${secs}s: 7 s configured (undici's default would be 60 s)`);
});
