import t from 'tap';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { bootstrapYaml, staticCluster, type Scope } from '../helpers.js';
import { H2_VARIANTS, h2c, request, startProxyH2 } from './paths.js';
import { eventually } from '../../../test-support/wait.js';
import { startTcpEcho } from '../http/ws.js';

/**
 * What HTTP/2 sessions guarantee, on each downstream variant: drain sends GOAWAY and lets
 * the streams in flight finish, idle_timeout and max_connection_duration end a session
 * with GOAWAY, stream_idle_timeout answers 408 on one stream only, and
 * max_concurrent_streams is what the client is told and held to.
 */

/** An origin that answers /slow after `holdMs`, /never never ends, /drip sends a chunk every 100 ms for 700 ms, everything else when its body ended. */
async function startOrigin(t: Scope, holdMs: number): Promise<number> {
  const server = http.createServer((req, res) => {
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`done ${req.url ?? ''}`);
    };
    req.resume();
    if (req.url === '/slow') setTimeout(answer, holdMs);
    else if (req.url === '/never') res.writeHead(200).write('x');
    else if (req.url === '/drip') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const tick = setInterval(() => {
        if (++n < 7) res.write('.');
        else {
          clearInterval(tick);
          res.end('done');
        }
      }, 100);
      res.once('close', () => clearInterval(tick));
    }
    else req.once('end', answer);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return (server.address() as AddressInfo).port;
}

const VHOSTS = `
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: up, timeout: 0s }`;

function goaway(session: http2.ClientHttp2Session): Promise<number> {
  return new Promise((r) => session.once('goaway', (code: number) => r(code)));
}

for (const v of H2_VARIANTS) {
  t.test(v.name, async (t) => {
    t.test('drain: GOAWAY, the stream in flight completes, the session then closes', async (t) => {
      const origin = await startOrigin(t, 400);
      const p = await startProxyH2(v, t, bootstrapYaml(VHOSTS, staticCluster('up', [origin])));
      const s = h2c(t, p.port());
      await request(s, { ':path': '/warm', ':authority': 'x' });
      const slow = request(s, { ':path': '/slow', ':authority': 'x' });
      const away = goaway(s);
      const closed = new Promise((r) => s.once('close', r));
      await new Promise((r) => setTimeout(r, 100));
      const drained = await fetch(`http://127.0.0.1:${p.adminPort!}/drain_listeners?graceful`, { method: 'POST' });
      t.equal(drained.status, 200);
      t.equal(await away, http2.constants.NGHTTP2_NO_ERROR, 'GOAWAY NO_ERROR');
      const r = await slow;
      t.equal(r.status, 200, 'the stream in flight was answered');
      t.equal(r.body.toString(), 'done /slow');
      await closed;
      t.pass('the session closed after its last stream');
    });

    t.test('idle_timeout: an idle session gets GOAWAY and closes', async (t) => {
      const origin = await startOrigin(t, 0);
      const p = await startProxyH2(v, t, bootstrapYaml(VHOSTS, staticCluster('up', [origin]), `
          common_http_protocol_options: { idle_timeout: 0.3s }`));
      const s = h2c(t, p.port());
      const start = Date.now();
      const away = goaway(s);
      t.equal((await request(s, { ':path': '/a', ':authority': 'x' })).status, 200);
      await away;
      const after = Date.now() - start;
      t.ok(after >= 250 && after < 3000, `GOAWAY after ${after} ms idle`);
      t.ok(await eventually(() => s.closed || s.destroyed, { timeoutMs: 3000 }), 'closed');
    });

    t.test('max_connection_duration: GOAWAY while a stream is open, which still completes', async (t) => {
      const origin = await startOrigin(t, 600);
      const p = await startProxyH2(v, t, bootstrapYaml(VHOSTS, staticCluster('up', [origin]), `
          common_http_protocol_options: { max_connection_duration: 0.3s }`));
      const s = h2c(t, p.port());
      const away = goaway(s);
      const slow = request(s, { ':path': '/slow', ':authority': 'x' });
      await away;
      t.equal((await slow).status, 200, 'the open stream finished after GOAWAY');
      t.ok(await eventually(() => s.closed || s.destroyed, { timeoutMs: 3000 }), 'then the session closed');
    });

    t.test('stream_idle_timeout: 408 on the stalled stream, the session goes on', async (t) => {
      const origin = await startOrigin(t, 0);
      const p = await startProxyH2(v, t, bootstrapYaml(VHOSTS, staticCluster('up', [origin]), `
          stream_idle_timeout: 0.3s`));
      const s = h2c(t, p.port());
      const st = s.request({ ':method': 'POST', ':path': '/upload', ':authority': 'x' }, { endStream: false });
      st.on('error', () => undefined);
      st.write('part of a body that never ends');
      const h = await new Promise<http2.IncomingHttpHeaders>((r) => st.once('response', r));
      t.equal(h[':status'], 408);
      const ok = await request(s, { ':path': '/b', ':authority': 'x' });
      t.equal(ok.body.toString(), 'done /b', 'other streams still served');
      // After the headers: the stalled response is reset instead.
      const open = await request(s, { ':path': '/never', ':authority': 'x' });
      t.equal(open.status, 200);
      t.not(open.rstCode, 0, 'a response stalled after its headers is reset');
    });

    t.test('stream_idle_timeout: fires on time, never early; reads and writes on the stream hold it off', async (t) => {
      const origin = await startOrigin(t, 0);
      const p = await startProxyH2(v, t, bootstrapYaml(VHOSTS, staticCluster('up', [origin]), `
          stream_idle_timeout: 0.3s`));
      const s = h2c(t, p.port());
      await request(s, { ':path': '/warm', ':authority': 'x' });
      // A stalled upload: 408 once 300 ms passed without a read or write, not before.
      const started = performance.now();
      const st = s.request({ ':method': 'POST', ':path': '/upload', ':authority': 'x' }, { endStream: false });
      st.on('error', () => undefined);
      st.write('part');
      const h = await new Promise<http2.IncomingHttpHeaders>((r) => st.once('response', r));
      const after = performance.now() - started;
      t.equal(h[':status'], 408);
      t.ok(after >= 290 && after < 1500, `408 after ${after.toFixed(0)} ms (limit 300 ms)`);
      // An upload that sends a chunk every 100 ms for 700 ms is never idle for 300 ms.
      const up = s.request({ ':method': 'POST', ':path': '/upload', ':authority': 'x' }, { endStream: false });
      up.on('error', () => undefined);
      const upDone = new Promise<{ status: number; body: string }>((r) => {
        let status = 0;
        let body = '';
        up.on('response', (hh) => (status = Number(hh[':status'])));
        up.on('data', (c: Buffer) => (body += c.toString()));
        up.on('close', () => r({ status, body }));
      });
      for (let i = 0; i < 7; i++) {
        up.write('chunk');
        await new Promise((r) => setTimeout(r, 100));
      }
      up.end();
      const u = await upDone;
      t.equal(u.status, 200, 'a slow but steady upload is not timed out');
      t.equal(u.body, 'done /upload');
      // A response that writes every 100 ms for 700 ms is not reset either.
      const d = await request(s, { ':path': '/drip', ':authority': 'x' });
      t.equal(d.status, 200);
      t.equal(d.rstCode, 0, 'a slow but steady response is not reset');
      t.equal(d.body.toString(), '......done');
    });

    t.test('idle_timeout counts from the last open stream: a stream longer than the limit is not cut off', { skip: v.http2 === 'node' ? "the compat API keeps node's session timer (any frame is activity; a silent open stream is not)" : false }, async (t) => {
      const origin = await startOrigin(t, 700);
      const p = await startProxyH2(v, t, bootstrapYaml(VHOSTS, staticCluster('up', [origin]), `
          common_http_protocol_options: { idle_timeout: 0.3s }`));
      const s = h2c(t, p.port());
      let goawayAt = 0;
      const start = performance.now();
      s.once('goaway', () => (goawayAt = performance.now()));
      const r = await request(s, { ':path': '/slow', ':authority': 'x' });
      const answeredAt = performance.now();
      t.equal(r.status, 200, 'the 700 ms stream completed');
      t.equal(goawayAt, 0, 'no GOAWAY while a stream was open');
      t.ok(answeredAt - start >= 650, 'the stream outlived idle_timeout');
      t.ok(await eventually(() => goawayAt > 0, { timeoutMs: 3000 }), 'GOAWAY once idle');
      const idleFor = goawayAt - answeredAt;
      t.ok(idleFor >= 250 && idleFor < 1500, `GOAWAY ${idleFor.toFixed(0)} ms after the last stream closed`);
    });

    t.test('a CONNECT tunnel keeps its own idle timer: an active tunnel outlives it, a silent one is closed', async (t) => {
      const tcp = await startTcpEcho();
      t.teardown(() => tcp.close());
      const p = await startProxyH2(v, t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { connect_matcher: {} }
                route: { cluster: echo, idle_timeout: 0.3s, upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }] }`,
      staticCluster('echo', [tcp.port]), `
          stream_idle_timeout: 0.3s
          upgrade_configs: [{ upgrade_type: CONNECT }]`));
      const s = h2c(t, p.port());
      const st = s.request({ ':method': 'CONNECT', ':authority': 'backend.test:7000' });
      st.on('error', () => undefined);
      t.equal(await new Promise<number>((r) => st.once('response', (h) => r(Number(h[':status'])))), 200);
      let got = '';
      st.setEncoding('latin1');
      st.on('data', (c: string) => (got += c));
      const closed = new Promise<number>((r) => st.once('close', () => r(performance.now())));
      // Bytes both ways every 100 ms for 900 ms: three times the idle timeout.
      let silentFrom = 0;
      for (let i = 0; i < 9; i++) {
        st.write(`${i}`);
        silentFrom = performance.now();
        await new Promise((r) => setTimeout(r, 100));
        t.notOk(st.closed, `open at ${(i + 1) * 100} ms`);
      }
      t.equal(got, '012345678', 'every byte echoed');
      const idleFor = (await closed) - silentFrom;
      t.ok(idleFor >= 250 && idleFor < 2000, `closed ${idleFor.toFixed(0)} ms after the tunnel fell silent`);
    });

    t.test('max_concurrent_streams: advertised in SETTINGS; streams beyond it wait for a slot', async (t) => {
      const origin = await startOrigin(t, 500);
      const p = await startProxyH2(v, t, bootstrapYaml(VHOSTS, staticCluster('up', [origin]), `
          http2_protocol_options: { max_concurrent_streams: 2 }`));
      const s = h2c(t, p.port());
      const settings = await new Promise<http2.Settings>((r) => s.once('remoteSettings', r));
      t.equal(settings.maxConcurrentStreams, 2);
      const rs = await Promise.all([0, 1, 2, 3].map((i) => request(s, { ':path': i < 2 ? '/slow' : `/n${i}`, ':authority': 'x' })));
      t.same(rs.map((r) => r.status), [200, 200, 200, 200], 'the client queued the extra streams until a slot freed');
    });
  });
}
