/**
 * pilotfish as an ambient waypoint, end to end, on configuration in istiod's shapes
 * (e2e/fixtures/waypoint/): an HBONE client (a ztunnel stand-in on node:http2 + mTLS)
 * opens CONNECT streams to the waypoint's connect_terminate; each becomes an inner
 * connection of main_internal (routing, RBAC on the caller's SPIFFE ID), then of
 * connect_originate, which re-encapsulates it as HBONE to the destination pod's
 * "ztunnel" (a second stand-in on <pod>:15008) that delivers it to the app.
 *
 * The proxy is the real CLI (from source, as the other Istio e2e tests run it); everything
 * is on loopback, on a 127.x.y.2 address of its own for the pod.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { issueWorkload, mintRoot, type CaHandle, type MintedCert } from '../certs/src/index.js';
import { until } from '../test-support/wait.js';
import { waypointBootstrap, waypointClusters, waypointEndpoints, waypointListeners } from './fixtures/waypoint/waypoint.js';
import { decodeBootstrap, decodeCluster, decodeClusterLoadAssignment, decodeListener, Diagnostics, flattenLoadAssignment, formatProblem } from '../config/src/index.js';
import { Logger, ProxyServer } from '../proxy/src/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const mainTs = ['cli/src/main.ts', 'proxy/src/main.ts'].map((p) => path.join(root, p)).find((p) => existsSync(p));
const tsxLoader = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
const script = `import(${JSON.stringify(mainTs ? pathToFileURL(mainTs).href : '')}).then((m) => m.main(process.argv.slice(1))).then((c) => process.exit(c ?? 0))`;

const TD = 'cluster.local';
const CLIENT_ID = `spiffe://${TD}/ns/default/sa/client`;
const INTRUDER_ID = `spiffe://${TD}/ns/default/sa/intruder`;
const WAYPOINT_ID = `spiffe://${TD}/ns/default/sa/waypoint`;
const POD_ID = `spiffe://${TD}/ns/default/sa/echo`;
const VIP = '198.18.0.10';
const VIP_H2 = '198.18.0.11';

function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

const listen = (s: net.Server, port: number, host: string): Promise<void> => new Promise((r, j) => {
  s.once('error', j);
  s.listen(port, host, () => r());
});

/** The destination pod's ztunnel: terminates HBONE on :15008 and connects to the authority. */
function podZtunnel(ca: CaHandle, cert: MintedCert): { server: http2.Http2SecureServer; authorities: string[]; peers: string[]; sessions: () => number; maxSessions: () => number } {
  const authorities: string[] = [];
  const peers: string[] = [];
  let open = 0;
  let max = 0;
  const server = http2.createSecureServer({
    key: cert.keyPem, cert: cert.chainPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'],
    settings: { maxConcurrentStreams: 250, initialWindowSize: 1 << 20 },
  });
  server.on('session', (s) => {
    open++;
    max = Math.max(max, open);
    s.once('close', () => open--);
    s.on('error', () => undefined);
    const san = (s.socket as tls.TLSSocket).getPeerCertificate().subjectaltname ?? '';
    peers.push(san);
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers[':method'] !== 'CONNECT') {
      stream.respond({ ':status': 405 });
      stream.end();
      return;
    }
    const authority = String(headers[':authority']);
    authorities.push(authority);
    const i = authority.lastIndexOf(':');
    const up = net.connect({ host: authority.slice(0, i), port: Number(authority.slice(i + 1)) });
    up.on('error', () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
    up.once('connect', () => {
      stream.respond({ ':status': 200 });
      up.pipe(stream);
      stream.pipe(up);
    });
    stream.once('close', () => up.destroy());
  });
  return { server, authorities, peers, sessions: () => open, maxSessions: () => max };
}

/** The calling side's ztunnel: one HTTP/2 mTLS connection to the waypoint, CONNECT streams on it. */
function hboneSession(port: number, ca: CaHandle, id: MintedCert): http2.ClientHttp2Session {
  const s = http2.connect(`https://127.0.0.1:${port}`, {
    createConnection: () => tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, cert: id.chainPem, key: id.keyPem, ALPNProtocols: ['h2'],
      // As ztunnel does: the server is checked by its SPIFFE identity, not a host name.
      checkServerIdentity: (_h, cert) => ((cert.subjectaltname ?? '').split(', ').includes(`URI:${WAYPOINT_ID}`) ? undefined : new Error(`not the waypoint: ${cert.subjectaltname}`)) }),
    settings: { initialWindowSize: 1 << 20 },
  });
  s.on('error', () => undefined);
  return s;
}

/** Opens a tunnel; resolves with the byte stream once the waypoint answers 200. */
function tunnel(session: http2.ClientHttp2Session, authority: string): Promise<http2.ClientHttp2Stream> {
  return new Promise((resolve, reject) => {
    const st = session.request({ ':method': 'CONNECT', ':authority': authority });
    st.once('response', (h) => (h[':status'] === 200 ? resolve(st) : reject(new Error(`CONNECT ${authority}: ${h[':status']}`))));
    st.once('error', reject);
    st.once('close', () => reject(new Error(`CONNECT ${authority}: closed (${st.rstCode})`)));
  });
}

/** An HTTP/1.1 request over a tunnel. */
function h1Get(stream: Duplex, host: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // No agent: createConnection is used only then (agent: false would make a fresh one that dials).
    const req = http.request({ createConnection: () => stream as net.Socket, path: p, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function echoRoundTrip(stream: Duplex, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let n = 0;
    const onData = (d: Buffer) => {
      got.push(d);
      n += d.length;
      if (n >= payload.length) {
        stream.off('data', onData);
        // Round trips reuse the stream: leave no listener behind (it warned of a leak at the 11th).
        stream.off('error', reject);
        resolve(Buffer.concat(got));
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
    stream.write(payload);
  });
}

t.test('waypoint: HBONE in, L7 policy on the caller\'s SPIFFE ID, HBONE out', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pf-hbone-'));
  const cleanups: (() => void | Promise<void>)[] = [];
  t.teardown(async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        /* best effort */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const ca = await mintRoot({ trustDomain: TD });
  const [waypointCert, clientCert, intruderCert, podCert] = await Promise.all(
    [WAYPOINT_ID, CLIENT_ID, INTRUDER_ID, POD_ID].map((spiffeId) => issueWorkload({ ca, spiffeId })),
  );
  writeFileSync(path.join(dir, 'wp.crt'), waypointCert!.chainPem);
  writeFileSync(path.join(dir, 'wp.key'), waypointCert!.keyPem);
  writeFileSync(path.join(dir, 'ca.pem'), ca.certPem);

  // The pod: its own loopback address, an HTTP/1.1 app, an h2c app, a TCP echo, and its ztunnel on 15008.
  const pod = `127.${20 + Math.floor(Math.random() * 200)}.${1 + Math.floor(Math.random() * 250)}.2`;
  const app = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`h1 ${req.method} ${req.url} host=${req.headers.host}`);
  });
  const appH2 = http2.createServer((req, res) => res.end(`h2 ${req.method} ${req.url} ${req.httpVersion}`));
  const echo = net.createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  const zt = podZtunnel(ca, podCert!);
  await listen(app, 8080, pod);
  await listen(appH2, 8081, pod);
  await listen(echo, 9000, pod);
  await listen(zt.server, 15008, pod);
  cleanups.push(() => {
    app.closeAllConnections();
    app.close();
    appH2.close();
    echo.close();
    zt.server.close();
  });

  const [wpPort, adminPort] = [await freePort(), await freePort()];
  const bootstrap = waypointBootstrap({
    address: '127.0.0.1', port: wpPort, adminPort,
    certFile: path.join(dir, 'wp.crt'), keyFile: path.join(dir, 'wp.key'), caFile: path.join(dir, 'ca.pem'),
    trustDomain: TD, namespace: 'default', maxConcurrentStreams: 100,
    services: [
      { hostname: 'echo.default.svc.cluster.local', vip: VIP, port: 80, protocol: 'http', endpoints: [`${pod}:8080`], allow: [CLIENT_ID] },
      { hostname: 'echo-h2.default.svc.cluster.local', vip: VIP_H2, port: 80, protocol: 'http2', endpoints: [`${pod}:8081`], allow: [CLIENT_ID] },
      { hostname: 'echo.default.svc.cluster.local', vip: VIP, port: 9000, protocol: 'tcp', endpoints: [`${pod}:9000`] },
    ],
  });
  const cfg = path.join(dir, 'waypoint.json');
  writeFileSync(cfg, JSON.stringify(bootstrap, null, 1));

  let out = '';
  const child: ChildProcess = spawn(process.execPath, ['--import', tsxLoader, '-e', script, '--', 'proxy', '--config', cfg, '--log-level', 'info'], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  cleanups.push(async () => {
    if (child.exitCode === null) {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
  });
  await until('the waypoint to be ready', async () => {
    if (child.exitCode !== null) throw new Error(`waypoint exited ${child.exitCode}:\n${out}`);
    const r = await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined);
    return r?.status === 200;
  }, { timeoutMs: 60_000, state: () => out.slice(-2000) });
  t.notMatch(out, /error|refus|NACK/i, 'the waypoint configuration in istiod\'s shapes loads with no error');

  const client = hboneSession(wpPort, ca, clientCert!);
  cleanups.push(() => void client.destroy());
  t.teardown(() => {
    if (!t.passing()) t.comment(`waypoint output:\n${out.slice(-6000)}`);
  });

  await t.test('HTTP/1.1 through the tunnel, routed by the service VIP, to the pod\'s ztunnel as HBONE', async (t) => {
    const st = await tunnel(client, `${VIP}:80`);
    const r = await h1Get(st, 'echo.default.svc.cluster.local', '/hello?x=1');
    t.equal(r.status, 200);
    t.equal(r.body, 'h1 GET /hello?x=1 host=echo.default.svc.cluster.local');
    t.ok(zt.authorities.includes(`${pod}:8080`), 'the waypoint opened CONNECT <pod>:8080 to the pod\'s ztunnel');
    t.ok(zt.peers.some((p) => p.includes(WAYPOINT_ID)), 'with the waypoint\'s own identity (mTLS)');
    st.close();
  });

  await t.test('HTTP/2 through the tunnel', async (t) => {
    const st = await tunnel(client, `${VIP_H2}:80`);
    const inner = http2.connect('http://echo-h2.default.svc.cluster.local', { createConnection: () => st as unknown as net.Socket });
    inner.on('error', () => undefined);
    const body = await new Promise<string>((resolve, reject) => {
      const q = inner.request({ ':path': '/two' });
      let b = '';
      q.on('data', (d) => (b += d));
      q.on('end', () => resolve(b));
      q.on('error', reject);
    });
    t.equal(body, 'h2 GET /two 2.0');
    inner.close();
  });

  await t.test('raw TCP through the tunnel', async (t) => {
    const st = await tunnel(client, `${VIP}:9000`);
    const got = await echoRoundTrip(st, Buffer.from('ping over hbone\n'));
    t.equal(got.toString(), 'ping over hbone\n');
    t.ok(zt.authorities.includes(`${pod}:9000`));
    st.close();
  });

  await t.test('RBAC sees the caller\'s SPIFFE ID from the outer mTLS connection', async (t) => {
    const other = hboneSession(wpPort, ca, intruderCert!);
    t.teardown(() => void other.destroy());
    const st = await tunnel(other, `${VIP}:80`);
    const r = await h1Get(st, 'echo.default.svc.cluster.local', '/hello');
    t.equal(r.status, 403, 'a caller outside the ALLOW policy is refused');
    t.match(r.body, /RBAC: access denied/);
  });

  await t.test('1,000 concurrent tunnels over a handful of connections', async (t) => {
    const sessions = Array.from({ length: 10 }, () => hboneSession(wpPort, ca, clientCert!));
    t.teardown(() => sessions.forEach((s) => s.destroy()));
    const before = zt.authorities.length;
    const streams = await Promise.all(Array.from({ length: 1000 }, (_, i) => tunnel(sessions[i % 10]!, `${VIP}:9000`)));
    const replies = await Promise.all(streams.map((st, i) => echoRoundTrip(st, Buffer.from(`tunnel ${i}\n`.repeat(20)))));
    t.ok(replies.every((r, i) => r.toString() === `tunnel ${i}\n`.repeat(20)), 'every tunnel carried its own bytes');
    t.equal(zt.authorities.length - before, 1000, '1,000 CONNECT streams reached the pod\'s ztunnel');
    // Until a connection's SETTINGS arrive the pool assumes 100 streams (RFC 9113's recommended minimum), so a
    // burst of 1,000 opens at most 10; the pod's ztunnel allows 250 per connection.
    t.ok(zt.maxSessions() <= 10, `over ${zt.maxSessions()} HTTP/2 connection(s) from the waypoint`);
    for (const st of streams) st.close();
  });

  await t.test('a slow reader on one tunnel does not stall another on the same connections', async (t) => {
    const slow = await tunnel(client, `${VIP}:9000`);
    const fast = await tunnel(client, `${VIP}:9000`);
    // The slow tunnel's client never reads: what it writes is echoed back and fills every
    // window and buffer on the way (13-25 MiB across the four HTTP/2 hops and the inner
    // connections). 96 MiB leaves a margin a loaded host cannot eat into.
    slow.pause();
    const big = Buffer.alloc(96 << 20, 7);
    let written = 0;
    const writeMore = (): void => {
      while (written < big.length) {
        const chunk = big.subarray(written, written + (1 << 16));
        written += chunk.length;
        if (!slow.write(chunk)) {
          slow.once('drain', writeMore);
          return;
        }
      }
    };
    writeMore();
    // Held: nothing more accepted for a second (every buffer and window on the way is full).
    let last = -1;
    let since = Date.now();
    await until('the slow tunnel to be held by flow control', () => {
      if (written !== last) {
        last = written;
        since = Date.now();
      }
      return written === big.length || Date.now() - since > 1000;
    }, { intervalMs: 50 });
    t.comment(`held after ${(written / 2 ** 20).toFixed(1)} MiB`);
    const t0 = Date.now();
    let echoed = 0;
    for (let i = 0; i < 20; i++) if ((await echoRoundTrip(fast, Buffer.from(`fast ${i}\n`))).toString() === `fast ${i}\n`) echoed++;
    t.equal(echoed, 20, 'the other tunnel on the same connections kept echoing');
    const fastMs = Date.now() - t0;
    t.ok(written < big.length, `the slow tunnel is back-pressured (${(written / 2 ** 20).toFixed(1)} of ${big.length / 2 ** 20} MiB accepted)`);
    t.ok(fastMs < 5000, `20 round trips on the other tunnel took ${fastMs} ms meanwhile`);
    // Reading again drains everything: nothing was lost while it was held.
    let received = 0;
    slow.on('data', (d: Buffer) => (received += d.length));
    slow.resume();
    await until('the slow tunnel to deliver everything it was sent', () => received >= big.length, { timeoutMs: 60_000 });
    t.equal(received, big.length);
    slow.close();
    fast.close();
  });

  await t.test('tunnel stats', async (t) => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats`)).text();
    const stat = (name: string): number => Number(new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    t.ok(stat('tunnel.upstream_streams_total') >= 1003, 'CONNECT streams originated are counted');
    t.ok(stat('tunnel.upstream_cx_total') >= 1, 'and the HTTP/2 connections that carried them');
    t.ok(stat('internal_listener.downstream_cx_total') >= 2006, 'inner connections to main_internal and connect_originate');
  });

  await t.test('drain: no new tunnels, the ones in flight keep flowing', async (t) => {
    const st = await tunnel(client, `${VIP}:9000`);
    t.equal((await echoRoundTrip(st, Buffer.from('before\n'))).toString(), 'before\n');
    const goaway = new Promise((r) => client.once('goaway', r));
    const r = await fetch(`http://127.0.0.1:${adminPort}/drain_listeners?graceful`, { method: 'POST' });
    t.equal(r.status, 200);
    await goaway;
    t.pass('the HBONE connection got a GOAWAY');
    t.equal((await echoRoundTrip(st, Buffer.from('during the drain\n'))).toString(), 'during the drain\n', 'a tunnel in flight still carries bytes, through both internal listeners');
    await t.rejects(tunnel(client, `${VIP}:9000`), 'a new CONNECT on the drained connection is refused');
    st.close();
  });

  child.kill('SIGTERM');
  await exited;
});

t.test('deploy/istio/waypoint.yaml: an istio-waypoint Gateway on HBONE 15008 whose deployment runs the pilotfish proxy image', async (t) => {
  const { parseAllDocuments } = await import('yaml');
  const { readFileSync } = await import('node:fs');
  const docs = parseAllDocuments(readFileSync(path.join(root, 'deploy/istio/waypoint.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const gw = docs.find((d) => d.kind === 'Gateway')!;
  t.equal(gw.spec.gatewayClassName, 'istio-waypoint');
  t.same(gw.spec.listeners, [{ name: 'mesh', port: 15008, protocol: 'HBONE' }]);
  const params = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === gw.spec.infrastructure.parametersRef.name)!;
  const { parse } = await import('yaml');
  const patch = parse(params.data.deployment) as { spec: { template: { spec: { containers: { name: string; image: string }[] } } } };
  t.match(patch.spec.template.spec.containers[0], { name: 'istio-proxy', image: /pilotfish-istio-proxy/ });
});

t.test('the waypoint\'s LDS / CDS / EDS resources in istiod\'s shapes: decoded and applied with no NACK', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pf-wp-xds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: TD });
  const cert = await issueWorkload({ ca, spiffeId: WAYPOINT_ID });
  for (const [n, v] of [['wp.crt', cert.chainPem], ['wp.key', cert.keyPem], ['ca.pem', ca.certPem]] as const) writeFileSync(path.join(dir, n), v);
  const o = {
    address: '127.0.0.1', port: 0, adminPort: 0, certFile: path.join(dir, 'wp.crt'), keyFile: path.join(dir, 'wp.key'), caFile: path.join(dir, 'ca.pem'),
    trustDomain: TD, namespace: 'default', eds: true,
    services: [
      { hostname: 'echo.default.svc.cluster.local', vip: VIP, port: 80, protocol: 'http' as const, endpoints: ['10.0.0.7:8080', '10.0.0.8:8080'], allow: [CLIENT_ID] },
      { hostname: 'echo.default.svc.cluster.local', vip: VIP, port: 9000, protocol: 'tcp' as const, endpoints: ['10.0.0.7:9000'] },
    ],
  };
  // The proxy starts from a bootstrap with the secrets pilot-agent's SDS would serve, nothing else.
  const full = waypointBootstrap(o) as { static_resources: { secrets: unknown[] }; bootstrap_extensions: unknown[]; node: unknown };
  const diag = new Diagnostics();
  const b = decodeBootstrap({ node: full.node, bootstrap_extensions: full.bootstrap_extensions, static_resources: { secrets: full.static_resources.secrets } }, diag);
  t.same(diag.errors.map(formatProblem), []);
  const server = new ProxyServer(b!, new Logger('error'), { dryRun: true });
  t.teardown(() => server.close());
  await server.loadStatic();
  const nacks: string[] = [];
  const apply = (what: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      nacks.push(`${what}: ${(e as Error).message}`);
    }
  };
  // CDS then EDS then LDS, as the ADS client warms them; each is what the xDS client decodes and hands the sink.
  const loads = new Map(waypointEndpoints(o).map((cla) => [String(cla.cluster_name), cla]));
  for (const raw of waypointClusters(o)) {
    const d = new Diagnostics();
    const c = decodeCluster(raw, d, `cluster "${String(raw.name)}"`);
    t.same(d.errors.map(formatProblem), [], `CDS ${String(raw.name)} decodes`);
    if (!c) continue;
    let eps = c.loadAssignment ? flattenLoadAssignment(c.loadAssignment) : [];
    const cla = loads.get(c.name);
    if (cla) {
      const de = new Diagnostics();
      const decoded = decodeClusterLoadAssignment(cla, de, `endpoints "${c.name}"`);
      t.same(de.errors.map(formatProblem), [], `EDS ${c.name} decodes`);
      eps = decoded ? flattenLoadAssignment(decoded) : [];
      t.ok(eps.every((e) => e.internal?.serverListenerName === 'connect_originate'), `EDS ${c.name}: internal endpoints to connect_originate`);
    }
    apply(`cluster ${c.name}`, () => server.upsertCluster(c, eps));
  }
  server.flush();
  for (const raw of waypointListeners(o)) {
    const d = new Diagnostics();
    const l = decodeListener(raw, d, `listener "${String(raw.name)}"`);
    t.same(d.errors.map(formatProblem), [], `LDS ${String(raw.name)} decodes`);
    if (l) apply(`listener ${l.name}`, () => server.upsertListener(l));
  }
  t.same(nacks, [], 'no resource is NACKed');
  t.ok(server.tunnels.internal.get('main_internal') && server.tunnels.internal.get('connect_originate'), 'both internal listeners are registered');
});
