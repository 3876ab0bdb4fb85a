import t from 'tap';
import * as http from 'node:http';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

/** The request body through the proxy: the filters' body phase (buffer filter) and a streamed body. */
const ROUTES = `
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`;
const BUFFER = `          - name: envoy.filters.http.buffer
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 1000 }`;

function postChunked(port: number, parts: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/b', method: 'POST', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

t.test('buffer filter: a body under the limit reaches the origin whole, with its length; over it, 413', async (t) => {
  const up = await startUpstream(t, 'up');
  const p = await startProxyYaml(t, bootstrapYaml(ROUTES, staticCluster('up', [up.port]), '', BUFFER));
  t.equal(await postChunked(p.port(), ['a'.repeat(300), 'b'.repeat(200)]), 200);
  const seen = up.requests.at(-1)!;
  t.equal(seen.body, 'a'.repeat(300) + 'b'.repeat(200), 'the whole body, in order');
  t.equal(seen.headers['content-length'], '500', 'sent with its length, not chunked');
  t.equal(seen.headers['transfer-encoding'], undefined);
  const n = up.requests.length;
  const r = await get(p.port(), '/b', {}, 'POST', 'x'.repeat(5000));
  t.equal(r.status, 413, 'over max_request_bytes');
  t.equal(up.requests.length, n, 'nothing reached the origin');
});

t.test('without body filters a chunked body is streamed through as it comes', async (t) => {
  const up = await startUpstream(t, 'up');
  const p = await startProxyYaml(t, bootstrapYaml(ROUTES, staticCluster('up', [up.port])));
  const big = 'z'.repeat(200_000);
  t.equal(await postChunked(p.port(), [big.slice(0, 70_000), big.slice(70_000)]), 200);
  t.equal(up.requests.at(-1)!.body, big, 'all of it, in order');
});
