import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

/** The loose ends of issue 14: %RESP()%, %BYTES_RECEIVED% and x-envoy-original-path, seen as a user would. */

const ROUTES = `
            - name: all
              domains: ["*"]
              routes:
              - { match: { prefix: "/old/" }, route: { cluster: up, prefix_rewrite: "/new/" } }
              - { match: { prefix: "/re/" }, route: { cluster: up, regex_rewrite: { pattern: { regex: "^/re/(.*)$" }, substitution: "/x/\\\\1" } } }
              - { match: { prefix: "/local" }, direct_response: { status: 418, body: { inline_string: "teapot" } }, response_headers_to_add: [{ header: { key: x-local, value: yes } }] }
              - { match: { prefix: "/retry" }, route: { cluster: up, retry_policy: { retry_on: 5xx, num_retries: 1 } } }
              - { match: { prefix: "/" }, route: { cluster: up } }`;

function accessLog(dir: string, format: string): string {
  return `          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${join(dir, 'access.log')}
              log_format: { text_format: "${format}\\n" }`;
}

async function lines(file: string, n: number): Promise<string[]> {
  let text = '';
  for (let i = 0; i < 100; i++) {
    try { text = readFileSync(file, 'utf8'); } catch { /* not written yet */ }
    if (text.split('\n').length > n) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return text.split('\n').slice(0, n);
}

/** A POST whose body is streamed in two writes (chunked, no content-length). */
function postChunked(port: number, path: string, parts: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

t.test('%RESP(...)% and %BYTES_RECEIVED% carry the response headers and request body bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const up = await startUpstream(t, 'up', (_req, res) => res.writeHead(200, { 'x-from-origin': 'hello', 'content-length': '2' }).end('ok'));
  const p = await startProxyYaml(t, bootstrapYaml(ROUTES, staticCluster('up', [up.port]),
    accessLog(dir, '%REQ(:PATH)% %RESPONSE_CODE% %BYTES_RECEIVED% %RESP(X-FROM-ORIGIN)% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESP(X-LOCAL?X-FROM-ORIGIN)% %RESP(CONTENT-LENGTH)%')));
  const body = 'a'.repeat(1234);
  const r1 = await get(p.port(), '/plain', { 'content-type': 'text/plain' }, 'POST', body);
  t.equal(r1.status, 200);
  t.equal(up.requests.at(-1)!.body.length, 1234, 'the body reached the origin');
  t.equal(await postChunked(p.port(), '/chunked', ['x'.repeat(100), 'y'.repeat(23)]), 200);
  t.equal((await get(p.port(), '/retry', {}, 'POST', 'buffered')).status, 200);
  t.equal((await get(p.port(), '/local')).status, 418);
  const [a, b, c, d] = await lines(join(dir, 'access.log'), 4);
  t.match(a, /^\/plain 200 1234 hello \d+ hello 2$/, `streamed POST: body bytes and origin headers: ${a}`);
  t.match(b, /^\/chunked 200 123 hello \d+ hello 2$/, `chunked POST counted: ${b}`);
  t.match(c, /^\/retry 200 8 hello \d+ hello 2$/, `buffered (retryable) POST counted: ${c}`);
  t.equal(d, '/local 418 0 - - yes 6', 'a local reply logs its own headers, no upstream service time');
});

t.test('prefix_rewrite and regex_rewrite send x-envoy-original-path; the log shows the original path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const up = await startUpstream(t, 'up');
  const p = await startProxyYaml(t, bootstrapYaml(ROUTES, staticCluster('up', [up.port]), accessLog(dir, '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%')));
  await get(p.port(), '/old/thing?q=1');
  t.equal(up.requests.at(-1)!.url, '/new/thing?q=1', 'rewritten upstream');
  t.equal(up.requests.at(-1)!.headers['x-envoy-original-path'], '/old/thing?q=1', 'prefix_rewrite: original path sent');
  await get(p.port(), '/re/abc');
  t.equal(up.requests.at(-1)!.url, '/x/abc');
  t.equal(up.requests.at(-1)!.headers['x-envoy-original-path'], '/re/abc', 'regex_rewrite: original path sent');
  await get(p.port(), '/other');
  t.equal(up.requests.at(-1)!.headers['x-envoy-original-path'], undefined, 'no rewrite, no header');
  const log = await lines(join(dir, 'access.log'), 3);
  t.same(log, ['/old/thing?q=1', '/re/abc', '/other'], 'access log shows the path the client asked for');
});

t.test("Envoy's default format prints the original path, body bytes and upstream service time", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const up = await startUpstream(t, 'up', (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('ok'));
  const p = await startProxyYaml(t, bootstrapYaml(ROUTES, staticCluster('up', [up.port]), `          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${join(dir, 'access.log')}`));
  t.equal((await get(p.port(), '/old/a?x=1', {}, 'POST', 'hello')).status, 200);
  const [line] = await lines(join(dir, 'access.log'), 1);
  t.match(line, /^\[[^\]]+\] "POST \/old\/a\?x=1 HTTP\/1\.1" 200 - 5 2 \d+ \d+ "/, `default format: ${line}`);
});
