import t from 'tap';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { bootstrapYaml, staticCluster, type Scope } from '../helpers.js';
import { H2_VARIANTS, h2c, request, startProxyH2 } from './paths.js';
import { eventually } from '../../../test-support/wait.js';

/**
 * What HTTP/2 sessions guarantee, on each downstream variant: drain sends GOAWAY and lets
 * the streams in flight finish, idle_timeout and max_connection_duration end a session
 * with GOAWAY, stream_idle_timeout answers 408 on one stream only, and
 * max_concurrent_streams is what the client is told and held to.
 */

/** An origin that answers /slow after `holdMs`, /never never ends, everything else when its body ended. */
async function startOrigin(t: Scope, holdMs: number): Promise<number> {
  const server = http.createServer((req, res) => {
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`done ${req.url ?? ''}`);
    };
    req.resume();
    if (req.url === '/slow') setTimeout(answer, holdMs);
    else if (req.url === '/never') res.writeHead(200).write('x');
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
