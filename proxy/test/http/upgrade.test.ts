import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import * as http from 'node:http';
import * as net from 'node:net';
import { bootstrapYaml, get, startProxyYaml, staticCluster } from '../helpers.js';
import { acceptKey, connectWs, startEchoServer, startTcpEcho } from './ws.js';

function routes(wsRoute = '') {
  return `
            - name: all
              domains: ["*"]
              routes:
              - match: { connect_matcher: {} }
                route: { cluster: echo, upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }] }
              - match: { prefix: "/off" }
                route: { cluster: ws, upgrade_configs: [{ upgrade_type: websocket, enabled: false }] }
              - match: { prefix: "/" }
                route: { cluster: ws${wsRoute} }
                response_headers_to_add: [{ header: { key: x-route, value: ws } }]`;
}

async function stats(adminPort: number | undefined): Promise<string> {
  return (await fetch(`http://127.0.0.1:${adminPort}/stats`)).text();
}

async function waitFor(cond: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('WebSocket over HTTP/1.1: handshake, messages both ways, close, stats', async (t) => {
  const echo = await startEchoServer();
  t.teardown(() => echo.close());
  const tcp = await startTcpEcho();
  t.teardown(() => tcp.close());
  const p = await startProxyYaml(t, bootstrapYaml(routes(), staticCluster('ws', [echo.port]) + staticCluster('echo', [tcp.port]),
    '          upgrade_configs: [{ upgrade_type: websocket }, { upgrade_type: CONNECT }]\n          via: pilotfish-test'));
  const ws = await connectWs(p.port(), '/chat?room=1');
  t.equal(ws.status, 101, 'switching protocols');
  t.equal(ws.headers['sec-websocket-accept'], acceptKey(ws.key), 'accept key computed by the upstream for our key');
  t.equal(ws.headers.upgrade, 'websocket');
  t.equal(ws.headers['x-upstream'], 'echo', 'upstream headers relayed');
  t.equal(ws.headers['x-route'], 'ws', 'route response headers applied to the 101');
  t.equal(ws.headers.via, 'pilotfish-test', 'via on the response');
  const hs = echo.handshakes.at(-1)!;
  t.equal(hs.upgrade, 'websocket', 'upstream got the upgrade');
  t.equal(hs['sec-websocket-key'], ws.key);
  t.equal(hs.via, 'pilotfish-test', 'via on the request');
  t.match(hs['x-request-id'], /^[0-9a-f-]{36}$/);

  t.equal((await ws.next()).payload.toString(), 'welcome', 'server-initiated message');
  ws.send('hello');
  t.equal((await ws.next()).payload.toString(), 'hello', 'echo');
  const big = randomBytes(4 * 1024 * 1024);
  ws.send(big);
  const back = await ws.next();
  t.equal(back.opcode, 2);
  t.equal(createHash('sha256').update(back.payload).digest('hex'), createHash('sha256').update(big).digest('hex'), '4 MiB binary message intact');
  await waitFor(async () => /downstream_cx_upgrades_active: 1\b/.test(await stats(p.adminPort)), 'active upgrade gauge');
  const closeFrame = await ws.close();
  t.equal(closeFrame?.payload.readUInt16BE(0), 1000, 'close handshake relayed');
  await waitFor(async () => /downstream_cx_upgrades_active: 0\b/.test(await stats(p.adminPort)), 'upgrade gauge back to 0');
  const s = await stats(p.adminPort);
  t.match(s, /http\.ingress\.downstream_cx_upgrades_total: 1\b/);
});

t.test('back-pressure: a reader that stops reading stops the writer', async (t) => {
  const echo = await startEchoServer();
  t.teardown(() => echo.close());
  const p = await startProxyYaml(t, bootstrapYaml(routes(), staticCluster('ws', [echo.port]) + staticCluster('echo', [echo.port]),
    '          upgrade_configs: [{ upgrade_type: websocket }]'));
  echo.paused = true;
  const ws = await connectWs(p.port());
  t.equal(ws.status, 101);
  t.equal((await ws.next()).payload.toString(), 'welcome');
  const total = 64 * 1024 * 1024;
  const chunk = randomBytes(1024 * 1024);
  for (let i = 0; i < total / chunk.length; i++) ws.send(chunk);
  await new Promise((r) => setTimeout(r, 1000));
  // Kernel buffers on three sockets hold a few MiB; without back-pressure the proxy would take it all.
  t.ok(ws.socket.writableLength > total / 2, `client still holds ${(ws.socket.writableLength / 2 ** 20).toFixed(1)} MiB: the proxy did not buffer the stream`);
  for (const s of echo.sockets) s.resume();
  let got = 0;
  while (got < total / chunk.length) {
    const f = await ws.next();
    if (f.opcode === 2) got++;
  }
  t.equal(got, 64, 'every message arrived after the reader resumed');
  ws.socket.destroy();
});

t.test('upgrades not configured are refused with 403 as Envoy; route overrides', async (t) => {
  const echo = await startEchoServer();
  t.teardown(() => echo.close());
  const off = await startProxyYaml(t, bootstrapYaml(routes(), staticCluster('ws', [echo.port]) + staticCluster('echo', [echo.port])));
  let ws = await connectWs(off.port());
  t.equal(ws.status, 403, 'no upgrade_configs on the HCM: 403');
  ws.socket.destroy();
  t.match(await stats(off.adminPort), /downstream_rq_ws_on_non_ws_route: 1\b/);
  t.equal((await get(off.port(), '/plain')).status, 426, 'plain requests on the same listener still proxied');

  const on = await startProxyYaml(t, bootstrapYaml(routes(), staticCluster('ws', [echo.port]) + staticCluster('echo', [echo.port]),
    '          upgrade_configs: [{ upgrade_type: websocket }]'));
  ws = await connectWs(on.port(), '/off/x');
  t.equal(ws.status, 403, 'route disables it');
  ws.socket.destroy();

  const hcmOff = await startProxyYaml(t, bootstrapYaml(routes(', upgrade_configs: [{ upgrade_type: websocket }]'), staticCluster('ws', [echo.port]) + staticCluster('echo', [echo.port]),
    '          upgrade_configs: [{ upgrade_type: websocket, enabled: false }]'));
  ws = await connectWs(hcmOff.port(), '/x');
  t.equal(ws.status, 101, 'HCM lists it disabled, the route enables it');
  ws.socket.destroy();
  ws = await connectWs(hcmOff.port(), '/off/x');
  t.equal(ws.status, 403, 'disabled on both');
  ws.socket.destroy();
  const other = await connectWs(hcmOff.port(), '/x', { upgrade: 'websocket' });
  other.socket.destroy();
});

t.test('terminated CONNECT over HTTP/1.1 and h2c to a TCP echo', async (t) => {
  const tcp = await startTcpEcho();
  t.teardown(() => tcp.close());
  const p = await startProxyYaml(t, bootstrapYaml(routes(), staticCluster('ws', [tcp.port]) + staticCluster('echo', [tcp.port]),
    '          upgrade_configs: [{ upgrade_type: CONNECT }]'));
  // HTTP/1.1
  const s = net.connect(p.port(), '127.0.0.1');
  s.write('CONNECT backend.test:7000 HTTP/1.1\r\nhost: backend.test:7000\r\n\r\nearly');
  let got = '';
  s.setEncoding('latin1');
  s.on('data', (c: string) => (got += c));
  await waitFor(() => got.includes('early'), 'CONNECT 200 and the early bytes echoed');
  t.match(got, /^HTTP\/1\.1 200 /, '200 once the upstream connection is up');
  t.ok(got.endsWith('\r\n\r\nearly'), 'bytes sent with the CONNECT head reach the upstream');
  s.write('ping');
  await waitFor(() => got.endsWith('ping'), 'echo');
  s.end();
  await new Promise((r) => s.once('close', r));

  // h2c (prior knowledge): CONNECT is a stream
  const session = http2.connect(`http://127.0.0.1:${p.port()}`);
  t.teardown(() => session.close());
  const st = session.request({ ':method': 'CONNECT', ':authority': 'backend.test:7000' });
  const status = await new Promise<number>((r) => st.once('response', (h) => r(Number(h[':status']))));
  t.equal(status, 200, 'h2 CONNECT answered 200');
  let h2got = '';
  st.setEncoding('latin1');
  st.on('data', (c: string) => (h2got += c));
  st.write('over h2');
  await waitFor(() => h2got === 'over h2', 'h2 tunnel echo');
  t.pass('h2 tunnel echoes');
  st.close();

  // A plain request is not CONNECT-matched; a CONNECT without the HCM enabling it is refused.
  const off = await startProxyYaml(t, bootstrapYaml(routes(), staticCluster('ws', [tcp.port]) + staticCluster('echo', [tcp.port])));
  const s2 = net.connect(off.port(), '127.0.0.1');
  s2.write('CONNECT backend.test:7000 HTTP/1.1\r\nhost: backend.test:7000\r\n\r\n');
  let r2 = '';
  s2.setEncoding('latin1');
  s2.on('data', (c: string) => (r2 += c));
  await waitFor(() => r2.includes('\r\n\r\n'), 'reply');
  t.match(r2, /^HTTP\/1\.1 403 /, 'CONNECT not enabled: 403 as Envoy');
  s2.destroy();
});

t.test('tunnel idle timeout (route idle_timeout); h2c upgrade requests are plain requests', async (t) => {
  const echo = await startEchoServer();
  t.teardown(() => echo.close());
  const p = await startProxyYaml(t, bootstrapYaml(routes(', idle_timeout: 0.4s'), staticCluster('ws', [echo.port]) + staticCluster('echo', [echo.port]),
    '          upgrade_configs: [{ upgrade_type: websocket }]'));
  const ws = await connectWs(p.port());
  t.equal(ws.status, 101);
  t.equal((await ws.next()).payload.toString(), 'welcome');
  // Traffic keeps it open past the timeout...
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 150));
    ws.send(`keepalive ${i}`);
    t.equal((await ws.next()).payload.toString(), `keepalive ${i}`);
  }
  // ...silence closes it.
  const start = performance.now();
  await new Promise((r) => ws.socket.once('close', r));
  const idle = performance.now() - start;
  t.ok(idle >= 350 && idle < 1500, `closed after ${idle.toFixed(0)} ms of silence`);

  const r = await new Promise<string>((resolve, reject) => {
    const s = net.connect(p.port(), '127.0.0.1', () => s.write('GET /plain HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n'));
    let d = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (d += c));
    s.on('end', () => resolve(d));
    s.on('error', reject);
  });
  t.match(r, /^HTTP\/1\.1 426 /, 'h2c upgrade ignored as Envoy: proxied as a plain request (the echo server answers 426)');
  t.notMatch(r, /upgrade: h2c/i);
  const withBody = await new Promise<string>((resolve, reject) => {
    const s = net.connect(p.port(), '127.0.0.1', () => s.write('POST /plain HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: h2c\r\ncontent-length: 3\r\n\r\nabc'));
    let d = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (d += c));
    s.on('end', () => resolve(d));
    s.on('error', reject);
  });
  t.match(withBody, /^HTTP\/1\.1 400 /, 'h2c upgrade with a body: 400 (node no longer parses the body)');
});

t.test('CONNECT without connect_config is passed on to the upstream (h1 and h2 downstream)', async (t) => {
  const tcp = await startTcpEcho();
  t.teardown(() => tcp.close());
  // The upstream: an HTTP CONNECT proxy that tunnels to the TCP echo, or refuses.
  const seen: string[] = [];
  const upstreamProxy = http.createServer((_q, s) => s.end());
  upstreamProxy.on('connect', (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
    seen.push(`${req.method} ${req.url} host=${req.headers.host}`);
    sock.on('error', () => undefined);
    if (req.url?.startsWith('denied')) return sock.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 6\r\n\r\ndenied');
    const out = net.connect(tcp.port, '127.0.0.1', () => {
      sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) out.write(head);
      out.pipe(sock).pipe(out);
    });
    out.on('error', () => sock.destroy());
  });
  await new Promise<void>((r) => upstreamProxy.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { upstreamProxy.closeAllConnections(); upstreamProxy.close(() => r()); }));
  const cproxyPort = (upstreamProxy.address() as net.AddressInfo).port;
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: proxied
              domains: ["proxied.test:7000", "denied.test:1"]
              routes: [{ match: { connect_matcher: {} }, route: { cluster: cproxy } }]`, staticCluster('cproxy', [cproxyPort]),
    '          upgrade_configs: [{ upgrade_type: CONNECT }]'));
  const s = net.connect(p.port(), '127.0.0.1');
  s.write('CONNECT proxied.test:7000 HTTP/1.1\r\nhost: proxied.test:7000\r\n\r\n');
  let got = '';
  s.setEncoding('latin1');
  s.on('data', (c: string) => (got += c));
  await waitFor(() => got.includes('\r\n\r\n'), 'CONNECT response');
  t.match(got, /^HTTP\/1\.1 200 /, 'the upstream proxy\'s 200 relayed');
  t.equal(seen.at(-1), 'CONNECT proxied.test:7000 host=proxied.test:7000', 'CONNECT sent on with its authority');
  s.write('through two proxies');
  await waitFor(() => got.endsWith('through two proxies'), 'echo through both');
  t.pass('payload tunnelled');
  s.destroy();

  const d = net.connect(p.port(), '127.0.0.1');
  d.write('CONNECT denied.test:1 HTTP/1.1\r\nhost: denied.test:1\r\n\r\n');
  let dg = '';
  d.setEncoding('latin1');
  d.on('data', (c: string) => (dg += c));
  await waitFor(() => dg.endsWith('denied'), 'refusal');
  t.match(dg, /^HTTP\/1\.1 403 /, 'a refusal is relayed as the final response');
  d.destroy();

  const session = http2.connect(`http://127.0.0.1:${p.port()}`);
  t.teardown(() => session.close());
  const st = session.request({ ':method': 'CONNECT', ':authority': 'proxied.test:7000' });
  t.equal(Number((await new Promise<http2.IncomingHttpHeaders>((r) => st.once('response', r)))[':status']), 200, 'h2 CONNECT passed on, 200');
  let h2 = '';
  st.setEncoding('latin1');
  st.on('data', (c: string) => (h2 += c));
  st.write('h2 in, h1 out');
  await waitFor(() => h2 === 'h2 in, h1 out', 'h2 echo');
  t.pass('h2 CONNECT tunnelled through the upstream proxy');
  st.close();
});

t.test('WebSocket to a TLS upstream (the cluster\'s UpstreamTlsContext, verified)', async (t) => {
  const { mintRoot, issueWorkload } = await import('../../../certs/src/index.js');
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const leaf = await issueWorkload({ ca, dns: ['echo.test'] });
  const echo = await startEchoServer({ cert: leaf.chainPem, key: leaf.keyPem });
  t.teardown(() => echo.close());
  const cluster = staticCluster('ws', [echo.port], `    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: echo.test
        common_tls_context:
          validation_context:
            match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: echo.test } }]
            trusted_ca: { inline_string: ${JSON.stringify(ca.certPem)} }`);
  const p = await startProxyYaml(t, bootstrapYaml(routes(), cluster + staticCluster('echo', [echo.port]), '          upgrade_configs: [{ upgrade_type: websocket }]'));
  const ws = await connectWs(p.port());
  t.equal(ws.status, 101, 'upgraded over TLS to the upstream');
  t.equal((await ws.next()).payload.toString(), 'welcome');
  ws.send('secure');
  t.equal((await ws.next()).payload.toString(), 'secure');
  ws.socket.destroy();
});
