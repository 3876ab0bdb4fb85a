import t from 'tap';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { decodeBootstrap, Diagnostics } from '../../config/src/index.js';
import { Logger } from '../src/log.js';
import { ConfigError, ProxyServer } from '../src/server.js';

// Decoders return file references; the server's build step reads them. A missing certificate
// must stop start-up with one line naming the field, as Envoy does, not leave a listener that
// fails every handshake.
const missing = join(tmpdir(), `pilotfish-missing-${process.pid}`, 'tls.crt');

t.test('start-up with a TLS listener whose certificate file is missing fails with one line naming the field', async (t) => {
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseYaml(`
static_resources:
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
            - certificate_chain: { filename: ${JSON.stringify(missing)} }
              private_key: { inline_string: "key" }
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { name: r, virtual_hosts: [{ name: v, domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }] }] }
          http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
`), diag);
  t.same(diag.errors, [], 'the bootstrap decodes: no file was read');
  // dryRun: build and validate, bind nothing.
  const server = new ProxyServer(b!, new Logger('error'), { dryRun: true });
  t.teardown(() => server.close());
  const err = await server.loadStatic().then(() => undefined, (e: unknown) => e);
  t.type(err, ConfigError);
  const msg = (err as Error).message;
  t.equal(msg, `static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename: cannot read "${missing}": ENOENT`);
  t.notMatch(msg, /\n/, 'one line');
});
