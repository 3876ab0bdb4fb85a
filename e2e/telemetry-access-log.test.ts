import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get, startProxyYaml, startUpstream } from '../proxy/test/helpers.js';

// The proxy in-process with HCM access_log entries: lines in Envoy's format reach the file
// after the response, filters apply, and json_format lines parse.
t.test('access logs from the HCM config, text and JSON, with a filter', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-accesslog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const up = await startUpstream(t, 'backend');
  const text = join(dir, 'access.log');
  const json = join(dir, 'errors.json');
  const proxy = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: ingress
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${text}
              log_format:
                text_format_source:
                  inline_string: "%REQ(:METHOD)% %REQ(:PATH)% %REQ(X-REQUEST-ID)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% %DURATION%\\n"
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${json}
              log_format:
                json_format: { code: "%RESPONSE_CODE%", flags: "%RESPONSE_FLAGS%", path: "%REQ(:PATH)%" }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /api }
                route: { cluster: backend }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${up.port} } } }
`);
  const port = proxy.port('ingress');
  const ok = await get(port, '/api/one', { 'x-request-id': 'req-abc' });
  t.equal(ok.status, 200);
  const nr = await get(port, '/nowhere');
  t.equal(nr.status, 404);
  await proxy.stop(0); // flushes the sinks
  const lines = readFileSync(text, 'utf8').trim().split('\n');
  t.equal(lines.length, 2);
  t.match(lines[0], new RegExp(`^GET /api/one req-abc 200 - 127\\.0\\.0\\.1:${up.port} \\d+$`));
  t.match(lines[1], /^GET \/nowhere \S+ 404 NR - \d+$/);
  const js = readFileSync(json, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(js, [{ code: 200, flags: '-', path: '/api/one' }, { code: 404, flags: 'NR', path: '/nowhere' }]);
});
