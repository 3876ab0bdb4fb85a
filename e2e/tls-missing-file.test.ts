import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// End-to-end: a TLS listener whose certificate file is missing. Decoding does no I/O; the build
// step reads the file, and the real CLI stops with one line naming the field, as Envoy does.
const BIN = new URL('../bin/pilotfish.js', import.meta.url).pathname;

t.test('a missing certificate file stops the proxy with one line naming certificate_chain.filename', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pilotfish-e2e-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'no-such.crt');
  const cfg = join(dir, 'tls.yaml');
  writeFileSync(cfg, `static_resources:
  listeners:
  - name: tls
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: ${missing} }
              private_key: { inline_string: "key" }
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { name: r, virtual_hosts: [{ name: v, domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }] }
          http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
`);
  const field = 'static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename';
  for (const args of [['proxy', '--config', cfg], ['proxy', '--config', cfg, '--mode', 'validate']]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
    t.equal(r.status, 1, `${args.join(' ')} exits 1`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    t.equal(lines.length, 1, `one line: ${JSON.stringify(r.stderr)}`);
    t.match(lines[0], `${field}: cannot read "${missing}": ENOENT`);
  }
});
