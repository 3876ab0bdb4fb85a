import t from 'tap';
import * as net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxyYaml, staticCluster } from '../helpers.js';
import { until } from '../../../test-support/wait.js';

// tcp_proxy's access_log (istiod puts one on every TCP chain): one line per session when
// the client's connection closes, through the same loggers and formats as HCM logs.

t.test('tcp_proxy access_log: one line per session with bytes, cluster, host and response flags', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-tcplog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const logPath = join(dir, 'tcp.log');
  const echo = net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (d) => s.end(`echo:${d}`));
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => echo.close(() => r())));
  // A port nothing listens on: the connect fails (UF).
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const chain = (name: string, cluster: string) => `
  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${name}
          cluster: ${cluster}
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${logPath}
              log_format: { text_format_source: { inline_string: "${name} %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% flags=%RESPONSE_FLAGS%\\n" } }`;
  const p = await startProxyYaml(t, `
static_resources:
  listeners:${chain('ok', 'echo')}${chain('dead', 'dead')}
  clusters:
${staticCluster('echo', [(echo.address() as net.AddressInfo).port])}
${staticCluster('dead', [deadPort])}
`);
  const session = (port: number) => new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('hello'));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
  });
  t.equal(await session(p.port('ok')), 'echo:hello');
  await session(p.port('dead'));
  const lines = await until('two log lines', () => {
    const text = (() => {
      try {
        return readFileSync(logPath, 'utf8');
      } catch {
        return '';
      }
    })();
    const ls = text.split('\n').filter((l) => l !== '');
    return ls.length >= 2 ? ls : undefined;
  });
  const echoPort = (echo.address() as net.AddressInfo).port;
  t.ok(lines.includes(`ok 127.0.0.1 echo 127.0.0.1:${echoPort} rx=5 tx=10 flags=-`), lines.join(' | '));
  t.ok(lines.includes(`dead 127.0.0.1 dead 127.0.0.1:${deadPort} rx=0 tx=0 flags=UF`), lines.join(' | '));
});

t.test('a bad tcp_proxy access_log refuses the listener with the field', async (t) => {
  await t.rejects(startProxyYaml(t, `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: s
          cluster: c
          access_log: [{ name: envoy.access_loggers.stdout, typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog, log_format: { text_format_source: { inline_string: "%NOT_A_COMMAND%" } } } }]
  clusters:
${staticCluster('c', [1])}
`), /filters\[0\]\.typed_config\.access_log\[0\].*NOT_A_COMMAND/);
});
