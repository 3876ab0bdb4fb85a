import t from 'tap';
import { bootstrapYaml, staticCluster } from '../proxy/test/helpers.js';
import { HTTP1_PATHS, startProxyOn } from '../proxy/test/http1/paths.js';
import { completeResponse, rawExchange, startRawUpstream, startRecordingUpstream } from '../proxy/test/hardening/raw.js';
import { cases, h } from '../proxy/test/hardening/smuggling-cases.js';

// Requests two HTTP/1.1 parsers could read differently: pilotfish must refuse each with
// 400 (431 for oversize) and close the connection, and the upstream must never see the
// request hidden in the body ("/smuggled"), nor anything at all of a refused request.
// Every test runs on both HTTP/1.1 paths: node:http + undici, and the raw-socket path.

for (const path of HTTP1_PATHS) {
  t.test(`smuggling and malformed requests (${path} path)`, async (t) => {
    const up = await startRecordingUpstream(t);
    const proxy = await startProxyOn(path, t, bootstrapYaml(`
              - name: all
                domains: ["*"]
                routes:
                - match: { prefix: "/" }
                  route: { cluster: up }`, staticCluster('up', [up.port])));
    const port = proxy.port();

    await t.test('control: a legitimate pipelined pair is seen as two requests', async (t) => {
      up.reset();
      const r = await rawExchange(port, h(['GET /one HTTP/1.1', 'Host: a']) + h(['GET /smuggled HTTP/1.1', 'Host: a', 'Connection: close']));
      t.match(r.text, /^HTTP\/1\.1 200/);
      t.same(up.requests, ['GET /one', 'GET /smuggled'], 'the harness sees a second request when there is one');
    });

    for (const c of cases) {
      await t.test(c.name, async (t) => {
        up.reset();
        // refused: the proxy answers and closes; safe: the exchange ends with a complete response
        const r = await rawExchange(port, c.req, 10_000, c.expect === 'reject' ? undefined : completeResponse);
        await new Promise((res) => setTimeout(res, 30));
        // In a `safe` case the text may legitimately travel as a body covered by its Content-Length.
        if (c.expect === 'reject') t.notMatch(up.bytes(), /smuggled/, 'no smuggled bytes reached the upstream');
        t.ok(up.requests.every((x) => !x.includes('smuggled')), 'upstream parsed no smuggled request');
        if (c.expect === 'reject') {
          t.match(r.text, c.status ?? /^HTTP\/1\.1 400/, `refused: ${JSON.stringify(r.text.slice(0, 40))}`);
          if (!c.streamed) t.equal(up.bytes(), '', 'nothing was forwarded');
          t.ok(r.closed, 'connection closed');
        } else {
          t.ok(up.requests.length <= 1, `at most one request forwarded (${up.requests.join(', ')})`);
          if (c.name.startsWith('absolute-form')) {
            t.match(r.text, /^HTTP\/1\.1 200/);
            t.match(up.bytes(), /^GET \/x HTTP\/1\.1\r\n/, 'forwarded in origin-form');
            t.match(up.bytes(), /\r\nhost: a\r\n/i, 'the target authority replaced Host');
          }
        }
      });
    }
  });

  // Upstream responses with the same defects: 502, never passed on.
  const badResponses: { name: string; reply: string; afterHeaders?: boolean }[] = [
    { name: 'CL and TE', reply: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' },
    { name: 'duplicate CL, different values', reply: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello' },
    { name: 'comma CL different', reply: 'HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\nhello' },
    { name: 'obs-fold', reply: 'HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok' },
    { name: 'space before colon', reply: 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok' },
    { name: 'bare CR in value', reply: 'HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 2\r\n\r\nok' },
    { name: 'NUL in value', reply: 'HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 2\r\n\r\nok' },
    { name: 'invalid name', reply: 'HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok' },
    { name: 'bad status line', reply: 'HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok' },
    { name: 'bad chunk size', reply: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', afterHeaders: true },
    { name: 'TE not final chunked', reply: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 2\r\n\r\nok' },
  ];

  t.test(`malformed upstream responses become 502 (${path} path)`, async (t) => {
    for (const b of badResponses) {
      await t.test(b.name, async (t) => {
        const up = await startRawUpstream(t, () => b.reply);
        const proxy = await startProxyOn(path, t, bootstrapYaml(`
              - name: all
                domains: ["*"]
                routes:
                - match: { prefix: "/" }
                  route: { cluster: up }`, staticCluster('up', [up.port])));
        const r = await rawExchange(proxy.port(), h(['GET / HTTP/1.1', 'Host: a', 'Connection: close']));
        // A defect found after the headers (chunked body) resets the stream instead.
        if (b.afterHeaders) t.ok(r.text === '' || /^HTTP\/1\.1 502/.test(r.text), JSON.stringify(r.text.slice(0, 80)));
        else t.match(r.text, /^HTTP\/1\.1 502/, JSON.stringify(r.text.slice(0, 80)));
        t.notMatch(r.text, /X-A|hello/i, 'no part of the bad response was passed on');
      });
    }
  });

  // HTTP/2 downstream, HTTP/1.1 upstream (the H2.CL / H2.TE downgrade attacks).
  t.test(`HTTP/2 requests cannot smuggle into an HTTP/1.1 upstream (${path} path)`, async (t) => {
    const http2 = await import('node:http2');
    const up = await startRecordingUpstream(t);
    const proxy = await startProxyOn(path, t, bootstrapYaml(`
              - name: all
                domains: ["*"]
                routes:
                - match: { prefix: "/" }
                  route: { cluster: up }`, staticCluster('up', [up.port])));
    const client = http2.connect(`http://127.0.0.1:${proxy.port()}`);
    client.on('error', () => undefined);
    t.teardown(() => client.destroy());
    const send = (headers: Record<string, string>, body?: string) => new Promise<number>((resolve) => {
      const st = client.request(headers);
      st.on('response', (h) => resolve(Number(h[':status'])));
      st.on('error', () => resolve(-1));
      st.on('close', () => resolve(-1));
      st.resume();
      st.end(body);
    });
    // Content-Length 0 with a body that is a request: nghttp2 refuses the mismatch.
    const a = await send({ ':method': 'POST', ':path': '/', 'content-length': '0' }, 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');
    t.not(a, 200, `H2.CL mismatch refused (${a})`);
    const b = await send({ ':method': 'GET', ':path': '/', ':authority': 'a', host: 'b' });
    t.equal(b, 400, 'Host differing from :authority');
    const c = await send({ ':method': 'GET', ':path': '/', ':authority': 'a/b' });
    t.ok(c === 400 || c === -1, `invalid :authority refused (400, or a stream reset by nghttp2: ${c})`);
    await new Promise((r) => setTimeout(r, 50));
    t.ok(up.requests.every((x) => !x.includes('smuggled')), 'no smuggled request upstream');
    t.notMatch(up.bytes(), /smuggled/);
    t.equal(await send({ ':method': 'GET', ':path': '/ok' }), 200, 'a well-formed request still works on the session');
  });
}
