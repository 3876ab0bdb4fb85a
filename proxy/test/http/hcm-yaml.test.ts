import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';
import { acceptKey, encodeFrame, FrameReader, startEchoServer } from './ws.js';

const ALL = `
            - name: exact
              domains: ["app.test"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up }, response_headers_to_add: [{ header: { key: x-vh, value: exact } }] }]
            - name: other
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up }, response_headers_to_add: [{ header: { key: x-vh, value: other } }] }]`;

t.test('via on requests and responses (YAML)', async (t) => {
  const up = await startUpstream(t, 'up', (_req, res) => res.writeHead(200, { via: '1.1 origin' }).end('ok'));
  const p = await startProxyYaml(t, bootstrapYaml(ALL, staticCluster('up', [up.port]), '          via: edge-proxy'));
  const r = await get(p.port(), '/', { via: '1.0 client-side' });
  t.equal(up.requests[0]!.headers.via, '1.0 client-side, edge-proxy', 'appended to the request');
  t.equal(r.headers.via, '1.1 origin, edge-proxy', 'appended to the response');
  const nr = await startProxyYaml(t, bootstrapYaml(`
            - name: none
              domains: ["nothing"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`, staticCluster('up', [up.port]), '          via: edge-proxy'));
  t.equal((await get(nr.port(), '/', { host: 'x' })).headers.via, 'edge-proxy', 'local replies carry it too');
});

t.test('strip_matching_host_port / strip_any_host_port before virtual host matching (YAML)', async (t) => {
  const up = await startUpstream(t, 'up');
  // A virtual host that only a host *with* its port can select.
  const vhs = (port: number | string) => `
            - name: withport
              domains: ["app.test:${port}"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up }, response_headers_to_add: [{ header: { key: x-vh, value: withport } }] }]
            - name: other
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up }, response_headers_to_add: [{ header: { key: x-vh, value: other } }] }]`;
  // strip_matching_host_port compares with the listener's port: bind the listener to a known free one.
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const yaml = bootstrapYaml(vhs(port), staticCluster('up', [up.port]), '          strip_matching_host_port: true')
    .replace('address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n    filter_chains', `address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }\n    filter_chains`);
  const m = await startProxyYaml(t, yaml);
  t.equal(m.port(), port);
  let r = await get(port, '/', { host: `app.test:${port}` });
  t.equal(r.headers['x-vh'], 'other', 'the listener port is stripped before matching');
  t.equal(up.requests.at(-1)!.headers.host, 'app.test', 'and the upstream sees the stripped host');
  r = await get(port, '/', { host: 'app.test:1234' });
  t.equal(up.requests.at(-1)!.headers.host, 'app.test:1234', 'another port is kept');
  await m.stop(0);

  const a = await startProxyYaml(t, bootstrapYaml(vhs(1234), staticCluster('up', [up.port]), '          strip_any_host_port: true'));
  r = await get(a.port(), '/', { host: 'app.test:1234' });
  t.equal(r.headers['x-vh'], 'other', 'any port stripped');
  t.equal(up.requests.at(-1)!.headers.host, 'app.test');
  r = await get(a.port(), '/', { host: '[::1]' });
  t.equal(up.requests.at(-1)!.headers.host, '[::1]', 'IPv6 literal without a port untouched');
  r = await get(a.port(), '/', { host: '[::1]:80' });
  t.equal(up.requests.at(-1)!.headers.host, '[::1]', 'IPv6 literal port stripped');

  const none = await startProxyYaml(t, bootstrapYaml(vhs(1234), staticCluster('up', [up.port])));
  r = await get(none.port(), '/', { host: 'app.test:1234' });
  t.equal(r.headers['x-vh'], 'withport', 'off by default: the port stays');
});

t.test('path normalisation and XFCC from YAML', async (t) => {
  const up = await startUpstream(t, 'up');
  const p = await startProxyYaml(t, bootstrapYaml(ALL, staticCluster('up', [up.port]),
    '          normalize_path: true\n          merge_slashes: true\n          path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD\n          forward_client_cert_details: ALWAYS_FORWARD_ONLY'));
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(p.port(), '127.0.0.1', () => s.write('GET //a/./b/..%2F%63?x=/./ HTTP/1.1\r\nhost: app.test\r\nx-forwarded-client-cert: By=x\r\nconnection: close\r\n\r\n'));
    s.on('data', () => undefined);
    s.on('end', resolve);
    s.on('error', reject);
  });
  t.equal(up.requests.at(-1)!.url, '/a/c?x=/./', 'YAML options reach the data path');
  t.equal(up.requests.at(-1)!.headers['x-forwarded-client-cert'], 'By=x', 'ALWAYS_FORWARD_ONLY from YAML');
});

t.test('WebSocket over HTTP/2 (RFC 8441 extended CONNECT) to an HTTP/1.1 upstream; access log', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-wsh2-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'access.log');
  const echo = await startEchoServer();
  t.teardown(() => echo.close());
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: ws } }]`, staticCluster('ws', [echo.port]), `          upgrade_configs: [{ upgrade_type: websocket }]
          http2_protocol_options: { allow_connect: true }
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${log}
              log_format: { text_format: "%REQ(:METHOD)% %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST%\\n" }`));
  const session = http2.connect(`http://127.0.0.1:${p.port()}`);
  t.teardown(() => session.close());
  await new Promise<void>((r) => session.once('remoteSettings', () => r()));
  t.equal(session.remoteSettings.enableConnectProtocol, true, 'allow_connect advertises SETTINGS_ENABLE_CONNECT_PROTOCOL');
  const st = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/chat', ':scheme': 'http', ':authority': 'ws.test', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' });
  const h = await new Promise<http2.IncomingHttpHeaders>((r) => st.once('response', r));
  t.equal(Number(h[':status']), 200, 'an accepted upgrade is 200 on HTTP/2');
  t.equal(h['sec-websocket-accept'], acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 'the HTTP/1.1 upstream did the handshake');
  const hs = echo.handshakes.at(-1)!;
  t.equal(hs.upgrade, 'websocket', 'downgraded to an HTTP/1.1 Upgrade upstream');
  const reader = new FrameReader();
  const frames: string[] = [];
  st.on('data', (c: Buffer) => { for (const f of reader.push(c)) frames.push(f.payload.toString()); });
  st.write(encodeFrame(1, Buffer.from('over h2'), true));
  for (let i = 0; i < 100 && frames.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(frames, ['welcome', 'over h2'], 'frames both ways over the h2 stream');
  st.close();
  let line = '';
  for (let i = 0; i < 100 && !line.includes('\n'); i++) {
    await new Promise((r) => setTimeout(r, 50));
    try { line = readFileSync(log, 'utf8'); } catch { /* not yet */ }
  }
  t.match(line, new RegExp(`^GET 101 \\d+ \\d+ 127\\.0\\.0\\.1:${echo.port}\\n`), `access-logged once the tunnel closed (the upstream's 101, as the HCM saw it): ${line.trim()}`);
  const [, , recv, sent] = line.trim().split(' ');
  t.ok(Number(recv) > 0 && Number(sent) > 0, 'tunnel bytes counted both ways');
});
