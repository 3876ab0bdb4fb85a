import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { decodeBootstrap, decodeRouteConfiguration, Diagnostics } from '../../config/src/index.js';
import { readDataSource, resolveRouteDataSources } from '../../config/src/data-source.js';
import { decodeDataSource } from '../src/decode.js';
import { checkSecretSources, checkTlsContextSources, decodeSecret, decodeTransportSocket } from '../src/index.js';

const missing = join(tmpdir(), `pilotfish-missing-${process.pid}`, 'tls.crt');

const bootstrap = (chain: string, key: string) => `
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
            - certificate_chain: { filename: ${JSON.stringify(chain)} }
              private_key: { filename: ${JSON.stringify(key)} }
      filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: s
          cluster: c
  clusters:
  - name: c
    load_assignment: { cluster_name: c, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }] }
`;

t.test('a TLS context naming a missing file decodes; the read step reports the file by its field', async (t) => {
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseYaml(bootstrap(missing, missing)), diag);
  t.same(diag.errors, [], 'decoding does not look at the file system');
  const fcPath = 'static_resources.listeners[0].filter_chains[0]';
  const ts = b!.staticResources.listeners[0]!.filterChains[0]!.transportSocket!;
  const spec = decodeTransportSocket(ts, diag, `${fcPath}.transport_socket`);
  t.same(diag.errors, [], 'the TLS decoder does not read certificate files either');
  t.same(spec?.common.certificates[0], {
    kind: 'static',
    spec: {
      certificateChain: { kind: 'file', path: missing, field: `${fcPath}.transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain` },
      privateKey: { kind: 'file', path: missing, field: `${fcPath}.transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key` },
    },
  });
  t.equal(checkTlsContextSources(spec!, diag), false);
  t.same(diag.errors.map((e) => `${e.path}: ${e.message}`), [
    `${fcPath}.transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename: cannot read "${missing}": ENOENT`,
    `${fcPath}.transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key.filename: cannot read "${missing}": ENOENT`,
  ]);
});

t.test('readable files and variables pass the read step', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pilotfish-resolve-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The read step checks readability; parsing the PEM is TlsMaterial's job (tested in downstream.test.ts).
  writeFileSync(join(dir, 'tls.crt'), 'chain');
  writeFileSync(join(dir, 'tls.key'), 'key');
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseYaml(bootstrap(join(dir, 'tls.crt'), join(dir, 'tls.key'))), diag);
  const spec = decodeTransportSocket(b!.staticResources.listeners[0]!.filterChains[0]!.transportSocket!, diag, 'ts');
  t.equal(checkTlsContextSources(spec!, diag), true);
  t.same(diag.errors, []);

  process.env['PILOTFISH_TEST_CA'] = 'pem';
  t.teardown(() => { delete process.env['PILOTFISH_TEST_CA']; });
  const secret = decodeSecret({ name: 'ca', validation_context: { trusted_ca: { environment_variable: 'PILOTFISH_TEST_CA' } } }, diag, 's')!;
  t.equal(checkSecretSources(secret, diag, 's'), true);
  const unset = decodeSecret({ name: 'ca', validation_context: { trusted_ca: { environment_variable: 'PILOTFISH_UNSET_VAR' } } }, diag, 's')!;
  t.ok(unset, 'an unset variable decodes (it is read later)');
  t.equal(checkSecretSources(unset, diag, 's'), false);
  t.equal(`${diag.errors[0]!.path}: ${diag.errors[0]!.message}`, 's.validation_context.trusted_ca.environment_variable: environment variable "PILOTFISH_UNSET_VAR" is not set');
});

t.test('direct_response bodies: inline at decode, files at the read step', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pilotfish-body-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'body.txt'), 'from a file\n');
  const rc = (file: string) => parseYaml(`
name: r
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - { match: { prefix: "/inline" }, direct_response: { status: 200, body: { inline_string: "hello" } } }
  - { match: { prefix: "/file" }, direct_response: { status: 503, body: { filename: ${JSON.stringify(file)} } } }`);
  const diag = new Diagnostics();
  const good = decodeRouteConfiguration(rc(join(dir, 'body.txt')), diag, 'r')!;
  const bad = decodeRouteConfiguration(rc(join(dir, 'nope.txt')), diag, 'r')!;
  t.same(diag.errors, [], 'a missing body file is not a decode error');
  const body = (c: typeof good, i: number) => {
    const a = c.virtualHosts[0]!.routes[i]!.action;
    return a.kind === 'direct_response' ? a.body : undefined;
  };
  t.equal(body(good, 0), 'hello');
  t.equal(body(good, 1), undefined, 'the decoder left the file unread');
  const resolved = resolveRouteDataSources(good, diag, 'r');
  t.equal(body(resolved, 1), 'from a file\n');
  t.same(diag.errors, []);
  t.equal(resolveRouteDataSources(resolved, diag, 'r'), resolved, 'nothing left to read: same object');
  resolveRouteDataSources(bad, diag, 'r');
  t.same(diag.errors.map((e) => `${e.path}: ${e.message}`), [
    `r.virtual_hosts[0].routes[1].direct_response.body.filename: cannot read "${join(dir, 'nope.txt')}": ENOENT`,
  ]);
  t.equal(readDataSource({ kind: 'inline', bytes: Buffer.from('x') }, diag)?.toString(), 'x');
});

t.test('property: DataSource decoding never throws, never reads, and any file name is a reference', async (t) => {
  fc.assert(fc.property(fc.jsonValue(), (v) => {
    const d = new Diagnostics();
    const ds = decodeDataSource(v, 'p', d);
    const problemsUnderPath = [...d.errors, ...d.warnings].every((e) => e.path === 'p' || e.path.startsWith('p.'));
    return problemsUnderPath && (ds !== undefined || d.errors.length > 0);
  }), { numRuns: 500 });
  // Names of files that do not exist (or cannot be files at all) decode without an error: nothing is opened.
  fc.assert(fc.property(fc.string({ minLength: 1 }), (name) => {
    const d = new Diagnostics();
    const ds = decodeDataSource({ filename: name }, 'p', d);
    return d.errors.length === 0 && ds?.kind === 'file' && ds.path === name && ds.field === 'p';
  }), { numRuns: 300 });
  t.pass();
});
