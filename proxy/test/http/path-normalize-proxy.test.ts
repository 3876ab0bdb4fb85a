import t from 'tap';
import * as net from 'node:net';
import type { HttpConnectionManager } from '../../../config/src/index.js';
import { bootstrapYaml, startUpstream, staticCluster, type SimpleResponse } from '../helpers.js';
import { startProxyPatched } from './helpers.js';

// RBAC denies /admin; a route answers /private itself. Neither may be bypassed by a
// spelling of the path that the upstream would resolve to the same resource.
const RBAC = `
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  no-admin:
                    permissions: [{ url_path: { path: { prefix: "/admin" } } }]
                    principals: [{ any: true }]`;
const ROUTES = `
            - name: all
              domains: ["*"]
              routes:
              - match: { path_separated_prefix: "/private" }
                direct_response: { status: 451, body: { inline_string: "private" } }
              - match: { prefix: "/" }
                route: { cluster: app }`;

/** A raw request line: node's client would normalise nothing, but raw keeps the bytes exact. */
function raw(port: number, target: string, host = 'x'): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`GET ${target} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`));
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (data += c));
    s.on('error', reject);
    s.on('end', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(lines[0]!.split(' ')[1]), headers, body });
    });
  });
}

const OFF: Partial<HttpConnectionManager> = { normalizePath: false, mergeSlashes: false, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' };

t.test('bypass attempts get through when the option is off (the test can fail)', async (t) => {
  const app = await startUpstream(t, 'app');
  const p = await startProxyPatched(t, bootstrapYaml(ROUTES, staticCluster('app', [app.port]), '', RBAC), OFF);
  t.equal((await raw(p.port(), '/admin')).status, 403, 'plain /admin denied');
  t.equal((await raw(p.port(), '/private/x')).status, 451, 'plain /private answered by its route');
  for (const path of ['//admin', '/./admin', '/foo/../admin', '/%61dmin', '/x/..%2Fadmin', '//private/x', '/%70rivate/x']) {
    t.equal((await raw(p.port(), path)).status, 200, `${path} reaches the upstream without normalisation`);
  }
  t.equal(app.requests.at(-1)?.url, '/%70rivate/x', 'the upstream sees the raw spelling');
});

t.test('each bypass is caught by the option Envoy catches it with', async (t) => {
  const app = await startUpstream(t, 'app');
  const cases: [string, Partial<HttpConnectionManager>, number][] = [
    ['//admin', { mergeSlashes: true }, 403],
    ['///admin//x', { mergeSlashes: true }, 403],
    ['//private/x', { mergeSlashes: true }, 451],
    ['/./admin', { normalizePath: true }, 403],
    ['/foo/../admin', { normalizePath: true }, 403],
    ['/foo/%2e%2E/admin', { normalizePath: true }, 403],
    ['/foo\\..\\admin', { normalizePath: true }, 403],
    ['/%61dmin', { normalizePath: true }, 403],
    ['/%70rivate/x', { normalizePath: true }, 451],
    ['/x/..%2Fadmin', { normalizePath: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' }, 403],
    ['/x/..%5cadmin', { normalizePath: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' }, 403],
    ['/x/..%2Fadmin', { pathWithEscapedSlashesAction: 'REJECT_REQUEST' }, 400],
    ['/admin%2F..', { pathWithEscapedSlashesAction: 'REJECT_REQUEST' }, 400],
    ['/x/./..%2f%2Fadmin', { normalizePath: true, mergeSlashes: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' }, 403],
  ];
  for (const [path, opts, want] of cases) {
    const p = await startProxyPatched(t, bootstrapYaml(ROUTES, staticCluster('app', [app.port]), '', RBAC), { ...OFF, ...opts });
    const r = await raw(p.port(), path);
    t.equal(r.status, want, `${path} with ${JSON.stringify(opts)} -> ${want}`);
    await p.stop(0);
  }
});

t.test('normalised path reaches the upstream; redirects, rejects and invalid paths', async (t) => {
  const app = await startUpstream(t, 'app');
  const p = await startProxyPatched(t, bootstrapYaml(ROUTES, staticCluster('app', [app.port]), '', RBAC),
    { normalizePath: true, mergeSlashes: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_REDIRECT' });
  let r = await raw(p.port(), '/a/./b/../%7Ec//d?q=/../%2F#frag');
  t.equal(r.status, 200);
  t.equal(app.requests.at(-1)?.url, '/a/~c/d?q=/../%2F', 'normalised path, untouched query, no fragment');

  r = await raw(p.port(), '/a%2Fb?x=1');
  t.equal(r.status, 307, 'escaped slash: redirect');
  t.equal(r.headers.location, '/a/b?x=1', 'to the unescaped path');

  r = await raw(p.port(), '/a/%00/b');
  t.equal(r.status, 400, 'escaped NUL: 400 as Envoy');
  r = await raw(p.port(), '/xyz/AAAAA%%0000/abc');
  t.equal(r.status, 400, 'nested escape of NUL: 400');
  r = await raw(p.port(), '/admin%2F..');
  t.equal(r.status, 307, '/admin%2F.. redirects');
  t.equal(r.headers.location, '/', 'to what it means');

  const stats = await (await fetch(`http://127.0.0.1:${p.adminPort}/stats`)).text();
  t.match(stats, /http\.ingress\.downstream_rq_failed_path_normalization: 2/);
  t.match(stats, /http\.ingress\.downstream_rq_redirected_with_normalized_path: 2/);
});

t.test('a non-relative :path never reaches routing (nghttp2 resets it; the HCM would answer 404)', async (t) => {
  const app = await startUpstream(t, 'app');
  const p = await startProxyPatched(t, bootstrapYaml(ROUTES, staticCluster('app', [app.port]), '', RBAC), OFF);
  const { connect } = await import('node:http2');
  const session = connect(`http://127.0.0.1:${p.port()}`);
  session.on('error', () => undefined);
  t.teardown(() => session.close());
  const outcome = await new Promise<string>((resolve) => {
    const s = session.request({ ':path': 'admin', ':authority': 'x' });
    s.on('response', (h) => resolve(String(h[':status'])));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.resume();
  });
  t.match(outcome, /^(404|ERR_HTTP2_STREAM_ERROR)$/, `refused (${outcome})`);
  t.equal(app.requests.length, 0, 'never reached the upstream');
});
