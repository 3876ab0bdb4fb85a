import t from 'tap';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

const LOCAL_REPLY = `
          local_reply_config:
            mappers:
            - filter: { status_code_filter: { comparison: { op: EQ, value: { default_value: 404, runtime_key: k } } } }
              status_code: 418
              body: { inline_string: "no such thing" }
              headers_to_add: [{ header: { key: x-mapped, value: "1" } }]
            - filter: { response_flag_filter: { flags: [UH] } }
              body_format_override:
                json_format: { code: "%RESPONSE_CODE%", flags: "%RESPONSE_FLAGS%", msg: "%LOCAL_REPLY_BODY%", path: "%REQ(:path)%" }
            body_format:
              text_format: "[%LOCAL_REPLY_BODY%] %RESPONSE_CODE% %REQ(:path)%"`;

t.test('local_reply_config rewrites every local reply, never upstream responses', async (t) => {
  const up = await startUpstream(t, 'up', (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('late'), 1000);
    else res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>upstream 404</h1>');
  });
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/uh" }
                route: { cluster: empty }
              - match: { prefix: "/direct" }
                direct_response: { status: 200, body: { inline_string: "hi" } }
              - match: { prefix: "/slow" }
                route: { cluster: up, timeout: 0.2s }
              - match: { prefix: "/up" }
                route: { cluster: up }`, staticCluster('up', [up.port]) + `
  - name: empty
    type: STATIC
    connect_timeout: 0.5s
    load_assignment: { cluster_name: empty, endpoints: [] }`, LOCAL_REPLY));
  const port = p.port();

  let r = await get(port, '/missing');
  t.equal(r.status, 418, '404 NR rewritten to 418 by the first mapper');
  t.equal(r.body, '[no such thing] 418 /missing', 'mapper body, then the HCM body_format (new status)');
  t.equal(r.headers['content-type'], 'text/plain');
  t.equal(r.headers['x-mapped'], '1', 'mapper headers_to_add');

  r = await get(port, '/uh');
  t.equal(r.status, 503, 'UH keeps its status');
  t.equal(r.headers['content-type'], 'application/json', 'json_format -> application/json');
  t.same(JSON.parse(r.body), { code: 503, flags: 'UH', msg: 'no healthy upstream', path: '/uh' }, 'mapper body_format_override');

  r = await get(port, '/direct');
  t.equal(r.status, 200);
  t.equal(r.body, '[hi] 200 /direct', 'direct_response is a local reply in Envoy too');

  r = await get(port, '/slow');
  t.equal(r.status, 504);
  t.equal(r.body, '[upstream request timeout] 504 /slow', '504 UT formatted');

  r = await get(port, '/up');
  t.equal(r.status, 404, 'an upstream 404 is not a local reply');
  t.equal(r.body, '<h1>upstream 404</h1>', 'upstream body untouched');
  t.equal(r.headers['content-type'], 'text/html');
  t.notOk(r.headers['x-mapped']);
});

t.test('without local_reply_config replies are unchanged', async (t) => {
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/direct" }, direct_response: { status: 200, body: { inline_string: "hi" } } }]`, staticCluster('up', [1])));
  const r = await get(p.port(), '/nope');
  t.equal(r.status, 404);
  t.equal(r.body, '');
  t.equal((await get(p.port(), '/direct')).body, 'hi');
});
