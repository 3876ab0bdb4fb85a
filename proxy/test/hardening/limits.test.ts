import t from 'tap';
import * as net from 'node:net';
import * as http2 from 'node:http2';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';
import { rawExchange } from './raw.js';
import { until } from '../../../test-support/wait.js';

const vhosts = `
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: up }`;

t.test('header size, header count and URI length limits (431)', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          max_request_headers_kb: 4
          common_http_protocol_options: { max_headers_count: 10 }`));
  const port = proxy.port();
  t.equal((await get(port, '/', { 'x-a': 'a'.repeat(3000) })).status, 200, 'under max_request_headers_kb');
  t.equal((await get(port, '/', { 'x-a': 'a'.repeat(5000) })).status, 431, 'over max_request_headers_kb');
  t.equal((await get(port, `/${'u'.repeat(5000)}`)).status, 431, 'a long URI counts towards the limit, as in Envoy');
  const nine: Record<string, string> = {};
  for (let i = 0; i < 8; i++) nine[`x-h${i}`] = 'v';
  t.equal((await get(port, '/', nine)).status, 200, '9 headers with host: at the limit');
  const eleven: Record<string, string> = {};
  for (let i = 0; i < 11; i++) eleven[`x-h${i}`] = 'v';
  const r = await rawExchange(port, `GET / HTTP/1.1\r\nHost: a\r\n${Object.keys(eleven).map((k) => `${k}: v\r\n`).join('')}\r\n`);
  t.match(r.text, /^HTTP\/1\.1 431/, 'more than max_headers_count');
  t.ok(r.closed, 'and the connection closes');
  t.equal(up.requests.length, 2, 'refused requests never reached the upstream');
});

t.test('request_headers_timeout: slow headers get 408 and the connection closes', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          request_headers_timeout: 0.5s`));
  const start = Date.now();
  const r = await rawExchange(proxy.port(), 'GET / HTTP/1.1\r\nHost: a\r\n', 5000);
  const took = Date.now() - start;
  t.match(r.text, /^HTTP\/1\.1 408/);
  t.ok(r.closed);
  t.ok(took >= 450 && took < 2000, `cut off after ~0.5s (${took} ms)`);
});

t.test('request_timeout: a request body trickled past request_timeout gets 408', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          request_timeout: 0.6s`));
  const s = net.connect(proxy.port(), '127.0.0.1');
  t.teardown(() => s.destroy());
  let text = '';
  s.on('data', (c) => (text += c));
  s.on('error', () => undefined);
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  s.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n');
  // Active (never idle) but too slow overall.
  const drip = setInterval(() => s.writable && s.write('x'), 100);
  t.teardown(() => clearInterval(drip));
  const start = Date.now();
  await Promise.race([closed, new Promise((r) => setTimeout(r, 4000))]);
  t.match(text, /^HTTP\/1\.1 408/);
  t.ok(Date.now() - start < 2500, 'cut off');
});

t.test('stream_idle_timeout: a stalled request body gets 408', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          stream_idle_timeout: 0.4s`));
  const start = Date.now();
  const r = await rawExchange(proxy.port(), 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc', 5000);
  t.match(r.text, /^HTTP\/1\.1 408/);
  t.ok(r.closed);
  t.ok(Date.now() - start < 2500);
  t.equal(up.requests.length, 0, 'the incomplete request never completed upstream');
});

t.test('max_connection_duration closes a keep-alive connection', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          common_http_protocol_options: { max_connection_duration: 0.3s }`));
  const s = net.connect(proxy.port(), '127.0.0.1');
  t.teardown(() => s.destroy());
  let text = '';
  s.on('data', (c) => (text += c));
  const closed = new Promise<number>((r) => s.on('close', () => r(Date.now())));
  const start = Date.now();
  s.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  const at = await closed;
  t.match(text, /^HTTP\/1\.1 200/);
  t.ok(at - start >= 250 && at - start < 2000, `idle connection closed after max_connection_duration (${at - start} ms)`);
});

t.test('idle_timeout closes idle keep-alive connections', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          common_http_protocol_options: { idle_timeout: 0.3s }`));
  const start = Date.now();
  const r = await rawExchange(proxy.port(), 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', 5000);
  t.match(r.text, /^HTTP\/1\.1 200/);
  t.ok(r.closed && Date.now() - start < 2000, 'closed when idle');
});

t.test('slowloris: many one-byte-at-a-time connections do not stop other clients', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          request_headers_timeout: 1s`));
  const port = proxy.port();
  const N = 200;
  const line = 'GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ' + 'a'.repeat(1000);
  const slow: net.Socket[] = [];
  let closedByProxy = 0;
  let ended = 0;
  let gotData = 0;
  let connected = 0;
  for (let i = 0; i < N; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('close', () => closedByProxy++);
    s.on('end', () => ended++);
    s.on('data', () => gotData++);
    s.on('connect', () => connected++);
    slow.push(s);
  }
  let pos = 0;
  const drip = setInterval(() => {
    const b = line[pos++ % line.length]!;
    for (const s of slow) if (!s.destroyed) s.write(b);
  }, 50);
  t.teardown(() => { clearInterval(drip); for (const s of slow) s.destroy(); });
  await until(`all ${N} slow connections to be open`, () => connected === N, { state: () => connected });
  const lat: number[] = [];
  for (let i = 0; i < 20; i++) {
    const s = performance.now();
    const r = await get(port, '/');
    lat.push(performance.now() - s);
    t.equal(r.status, 200);
  }
  lat.sort((a, b) => a - b);
  t.ok(lat[lat.length - 1]! < 1000, `good clients served promptly (max ${lat[lat.length - 1]!.toFixed(1)} ms)`);
  await until('request_headers_timeout to cut off every slow connection', () => closedByProxy === N, { state: () => ({ closedByProxy, ended, gotData, pos }) });
  t.equal(closedByProxy, N, `every slow connection was cut off by request_headers_timeout (${closedByProxy}/${N} ended ${ended} data ${gotData} pos ${pos})`);
});

t.test('HTTP/2: limits advertised in SETTINGS, header list size enforced', async (t) => {
  const up = await startUpstream(t, 'up');
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port]), `
          max_request_headers_kb: 2
          http2_protocol_options: { max_concurrent_streams: 7 }`));
  const client = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  client.on('error', () => undefined);
  t.teardown(() => client.destroy());
  await new Promise((r) => client.once('remoteSettings', r));
  t.equal(client.remoteSettings.maxConcurrentStreams, 7);
  t.equal(client.remoteSettings.maxHeaderListSize, 2048);
  t.equal(client.remoteSettings.enablePush, false);
  const ok = await new Promise<number>((r) => {
    const st = client.request({ ':path': '/' });
    st.on('response', (h) => r(Number(h[':status'])));
    st.on('error', () => r(-1));
    st.resume();
  });
  t.equal(ok, 200);
});

t.test('HTTP/2 rapid reset (CVE-2023-44487): the flooding session is cut off, others are served', async (t) => {
  let upstreamSeen = 0;
  const up = await startUpstream(t, 'up', (_req, res) => {
    upstreamSeen++;
    setTimeout(() => res.writeHead(200).end('ok'), 5);
  });
  const proxy = await startProxyYaml(t, bootstrapYaml(vhosts, staticCluster('up', [up.port])));
  const attacker = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  attacker.on('error', () => undefined);
  t.teardown(() => attacker.destroy());
  await new Promise((r) => attacker.once('remoteSettings', r));
  let goaway = false;
  attacker.on('goaway', () => (goaway = true));
  let sessionClosed = false;
  attacker.once('close', () => (sessionClosed = true));
  let sent = 0;
  for (let i = 0; i < 20000 && !attacker.closed && !attacker.destroyed && !goaway; i++) {
    try {
      const st = attacker.request({ ':path': '/' });
      st.on('error', () => undefined);
      st.close(http2.constants.NGHTTP2_CANCEL);
      sent++;
    } catch { break; }
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  await until('the flooding session to be closed', () => sessionClosed || ((goaway || attacker.closed) && attacker.destroyed));
  t.ok(goaway || attacker.closed || attacker.destroyed, `the flooding session was closed (after ${sent} resets)`);
  t.ok(upstreamSeen < sent, `not every reset stream reached the upstream (${upstreamSeen} of ${sent})`);
  const r = await get(proxy.port(), '/');
  t.equal(r.status, 200, `other clients are served (${r.status} ${r.headers['x-envoy-overloaded'] ? 'overloaded ' : ''}${r.body.slice(0, 80)})`);
});
