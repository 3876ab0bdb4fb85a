import t from 'tap';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueWorkload, mintRoot } from '../../../certs/src/index.js';
import { Diagnostics, NETWORK_SET_FILTER_STATE_TYPE } from '../../../config/src/index.js';
import { filterState, networkFilterFactory, registerNetworkFilter, type ConnectionSummary, type NetworkConnection, type NetworkFilterFactory } from '../../src/index.js';
import { buildNetworkFilterChain } from '../../src/listener/network-filter-chain.js';
import { StatsStore } from '../../src/stats/stats.js';
import { startProxyYaml, startUpstream, staticCluster } from '../helpers.js';
import { until } from '../../../test-support/wait.js';

// Network filters before tcp_proxy / the HTTP connection manager, over real sockets: the
// hooks run in order, may hold, consume and insert bytes; network RBAC decides by the
// SPIFFE identity of a real mTLS peer and by destination port.

/** A TCP upstream that echoes what it reads, prefixed, and records it. */
async function echoServer(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    s.on('data', (d) => {
      seen.push(String(d));
      s.write(`echo:${d}`);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, seen };
}

/** Connects (TLS when opts given), writes `send`, collects until `want` bytes or close. */
function talk(port: number, send: string, want: number, tlsOpts?: tls.ConnectionOptions): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve) => {
    let got = '';
    let done = false;
    const s: net.Socket = tlsOpts
      ? tls.connect({ host: '127.0.0.1', port, checkServerIdentity: () => undefined, ...tlsOpts }, () => s.write(send))
      : net.connect({ host: '127.0.0.1', port }, () => s.write(send));
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ got, closed });
    };
    s.on('data', (d) => {
      got += d;
      if (got.length >= want) finish(false);
    });
    s.on('error', () => undefined);
    s.on('close', () => finish(true));
    setTimeout(() => finish(false), 3000).unref();
  });
}

const tcpProxy = (cluster: string, prefix = 'tcp') => `
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: ${prefix}, cluster: ${cluster} }`;

// Test filters ride on a type URL the decoder accepts: set_filter_state configs with a
// `test_role` go to them, every other one to the real set_filter_state factory. (Istio's
// type URLs would make the proxy load istio/, whose factories replace any registered here.)
const events: string[] = [];
const closes: ConnectionSummary[] = [];
const SFS = NETWORK_SET_FILTER_STATE_TYPE;
const realSetFilterState = networkFilterFactory(SFS)!;
const testFilters: Record<string, NetworkFilterFactory> = {};
registerNetworkFilter(SFS, (cfg, diag, path, ctx) => {
  const role = cfg.config['test_role'];
  return typeof role === 'string' ? testFilters[role]!(cfg, diag, path, ctx) : realSetFilterState(cfg, diag, path, ctx);
});
testFilters['first'] = (cfg, diag, path) => {
  const tag = typeof cfg.config['tag'] === 'string' ? cfg.config['tag'] : '';
  if (tag === '') {
    diag.error(`${path}.tag`, 'is required');
    return undefined;
  }
  const seenHeader = new WeakSet<NetworkConnection>();
  return {
    name: cfg.name,
    typeUrl: cfg.typeUrl,
    onNewConnection(conn) {
      events.push(`${tag}:new`);
      filterState(conn.info).set('test.first', tag);
      conn.write(Buffer.from('HELLO|'));
      return 'continue';
    },
    // Reads a 4-byte header before any byte flows, holding the pipe for a while (async).
    async onData(chunk, _end, conn) {
      if (seenHeader.has(conn)) {
        // Tag F stands in for a filter whose state changes mid-connection (for CONTINUOUS RBAC).
        if (tag === 'F') filterState(conn.info).set('test.flipped', 'yes');
        return undefined;
      }
      seenHeader.add(conn);
      await new Promise((r) => setTimeout(r, 30));
      events.push(`${tag}:header=${chunk.subarray(0, 4).toString()}`);
      return { data: chunk.subarray(4) };
    },
    onWrite: (chunk) => ({ data: Buffer.concat([Buffer.from(`${tag}<`), chunk]) }),
    onClose(_conn, summary) {
      closes.push(summary);
    },
  };
};
testFilters['second'] = (cfg) => ({
  name: cfg.name,
  typeUrl: cfg.typeUrl,
  onNewConnection(conn) {
    events.push(`second:new(first=${String(conn.info.filterState?.get('test.first'))})`);
    return Promise.resolve('continue');
  },
  onData: (chunk) => ({ data: Buffer.from(chunk.toString().toUpperCase()) }),
  onWrite: (chunk) => ({ data: Buffer.concat([Buffer.from('B<'), chunk]) }),
});

t.test('filters run in order before tcp_proxy: connection hooks, held and rewritten bytes both ways, onClose', async (t) => {
  const echo = await echoServer(t);
  events.length = 0;
  closes.length = 0;
  const p = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: first
        typed_config: { "@type": type.googleapis.com/udpa.type.v1.TypedStruct, type_url: ${SFS}, value: { test_role: first, tag: A } }
      - name: second
        typed_config: { "@type": ${SFS}, test_role: second }${tcpProxy('echo')}
  clusters:
${staticCluster('echo', [echo.port])}
`);
  const r = await talk(p.port('l'), 'HDR:abc', 'HELLO|A<B<echo:ABC'.length);
  t.equal(r.got, 'HELLO|A<B<echo:ABC', 'the filter wrote first; upstream bytes went through the write hooks in reverse order');
  t.same(echo.seen, ['ABC'], 'the header was consumed and the rest rewritten by the second filter, in order');
  t.same(events, ['A:new', 'second:new(first=A)', 'A:header=HDR:'], 'onNewConnection in order, the second sees the first one\'s filter state');
  await until("onClose", () => closes.length === 1);
  t.equal(closes[0]!.bytesReceived, 'HDR:abc'.length, 'bytes received from the client, before the filters changed them');
  t.ok(closes[0]!.upstreamConnected);
  t.ok(closes[0]!.bytesSent >= 'HELLO|'.length, 'bytes written by filters are counted as sent');
});

t.test('a filter with no registered implementation, or a bad config, fails the chain with the reason', async (t) => {
  const ctx = { stats: new StatsStore(), node: { id: 'n', cluster: 'c', metadata: {} }, listenerName: 'l', trafficDirection: 'INBOUND' as const, chainKind: 'tcp' as const, log: () => undefined };
  const diag = new Diagnostics();
  t.equal(buildNetworkFilterChain([{ name: 'mystery', typeUrl: 'type.googleapis.com/example.Unregistered', config: {} }], diag, 'fc.filters', ctx), undefined);
  t.same(diag.errors.map((e) => `${e.path}: ${e.message}`), ['fc.filters[0]: network filter "mystery" (example.Unregistered) has no implementation registered in this proxy']);
  // Through the proxy: the listener is refused (xDS: NACKed) with the factory's reason.
  const echo = await echoServer(t);
  await t.rejects(startProxyYaml(t, `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: first
        typed_config: { "@type": ${SFS}, test_role: first }${tcpProxy('echo')}
  clusters:
${staticCluster('echo', [echo.port])}
`), /filters\[0\]\.typed_config\.tag: is required/);
});

t.test('set_filter_state feeds network RBAC filter_state principals', async (t) => {
  const echo = await echoServer(t);
  const p = await startProxyYaml(t, `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.set_filter_state
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config
          on_new_connection:
          - { object_key: example.source, format_string: { text_format_source: { inline_string: "src=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" } } }
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: fs.
          rules:
            action: ALLOW
            policies:
              from-loopback:
                permissions: [{ any: true }]
                principals: [{ filter_state: { key: example.source, string_match: { exact: "src=127.0.0.1" } } }]${tcpProxy('echo')}
  clusters:
${staticCluster('echo', [echo.port])}
`);
  const r = await talk(p.port('l'), 'ping', 'echo:ping'.length);
  t.equal(r.got, 'echo:ping', 'the filter state written by set_filter_state matched the policy');
  const stats = await httpGet(p.adminPort!, '/stats?filter=rbac');
  t.match(stats, /fs\.rbac\.allowed: 1/);
  t.match(stats, /fs\.rbac\.denied: 0/);
});

function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
}

/** A port that was free a moment ago (the listener's destination_port rule needs it up front). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('network RBAC over real mTLS: allowed and denied by SPIFFE principal and by port; shadow rules; HTTP chains too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-netrbac-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'cluster.local' });
  const server = await issueWorkload({ ca, spiffeId: 'spiffe://cluster.local/ns/default/sa/reviews' });
  const good = await issueWorkload({ ca, spiffeId: 'spiffe://cluster.local/ns/default/sa/productpage' });
  const bad = await issueWorkload({ ca, spiffeId: 'spiffe://cluster.local/ns/default/sa/ratings' });
  writeFileSync(join(dir, 'srv.crt'), server.chainPem);
  writeFileSync(join(dir, 'srv.key'), server.keyPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const echo = await echoServer(t);
  const up = await startUpstream(t, 'web', (_req, res) => res.end('web'));
  const [tcpPort, otherPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const mtls = `
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{ certificate_chain: { filename: ${join(dir, 'srv.crt')} }, private_key: { filename: ${join(dir, 'srv.key')} } }]
            validation_context: { trusted_ca: { filename: ${join(dir, 'ca.pem')} } }`;
  // Allows productpage on tcpPort only; the shadow rules would deny everything but productpage.
  const rbac = (prefix: string) => `
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: ${prefix}
          shadow_rules_stat_prefix: dry_
          rules:
            action: ALLOW
            policies:
              productpage-on-db-port:
                permissions: [{ and_rules: { rules: [{ destination_port: ${tcpPort} }, { not_rule: { requested_server_name: { exact: forbidden.example } } }] } }, { destination_port_range: { start: ${httpPort}, end: ${httpPort + 1} } }]
                principals: [{ or_ids: { ids: [{ authenticated: { principal_name: { exact: "spiffe://cluster.local/ns/default/sa/productpage" } } }] } }]
          shadow_rules:
            action: DENY
            policies:
              not-productpage:
                permissions: [{ any: true }]
                principals: [{ not_id: { authenticated: { principal_name: { suffix: /sa/productpage } } } }]`;
  const listener = (name: string, port: number, filters: string) => `
  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
    listener_filters: [{ name: envoy.filters.listener.tls_inspector, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector } }]
    filter_chains:
    -${mtls.replace(/^\n      /, ' ')}
      filters:${filters}`;
  const hcm = `
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in_http
          http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
          route_config: { virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: web } }] }] }`;
  const p = await startProxyYaml(t, `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:${listener('db', tcpPort, rbac('tcp.') + tcpProxy('echo'))}${listener('other', otherPort, rbac('other.') + tcpProxy('echo', 'other'))}${listener('web', httpPort, rbac('web.') + hcm)}
  clusters:
${staticCluster('echo', [echo.port])}
${staticCluster('web', [up.port])}
`);
  const as = (who: { chainPem: string; keyPem: string }, servername = 'reviews') => ({ ca: ca.certPem, cert: who.chainPem, key: who.keyPem, servername });
  const ok = await talk(tcpPort, 'hello', 'echo:hello'.length, as(good));
  t.same(ok, { got: 'echo:hello', closed: false }, 'productpage on the db port is proxied');
  const denied = await talk(tcpPort, 'hello', 1, as(bad));
  t.same(denied, { got: '', closed: true }, 'ratings is closed on its first byte');
  const sni = await talk(tcpPort, 'hello', 1, as(good, 'forbidden.example'));
  t.same(sni, { got: '', closed: true }, 'requested_server_name takes part');
  const wrongPort = await talk(otherPort, 'hello', 1, as(good));
  t.same(wrongPort, { got: '', closed: true }, 'productpage on another port is denied');
  t.same(echo.seen, ['hello'], 'only the allowed connection reached the upstream');

  // HTTP chain: decided when the connection starts, behind the handshake.
  const web = (who: { chainPem: string; keyPem: string }) => new Promise<string>((resolve) => {
    const req = https.get({ host: '127.0.0.1', port: httpPort, path: '/', agent: false, checkServerIdentity: () => undefined, ...as(who) }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    });
    req.on('error', () => resolve('refused'));
  });
  t.equal(await web(good), 'web', 'productpage reaches the HTTP chain');
  t.equal(await web(bad), 'refused', 'ratings is refused on the HTTP chain');

  const stats = await httpGet(p.adminPort!, '/stats?filter=rbac');
  t.match(stats, /tcp\.rbac\.allowed: 1\b/);
  t.match(stats, /tcp\.rbac\.denied: 2\b/);
  t.match(stats, /tcp\.rbac\.dry_shadow_denied: 1\b/, 'shadow rules counted under their prefix (ratings)');
  t.match(stats, /tcp\.rbac\.dry_shadow_allowed: 2\b/);
  t.match(stats, /other\.rbac\.denied: 1\b/);
  t.match(stats, /web\.rbac\.allowed: 1\b/);
  t.match(stats, /web\.rbac\.denied: 1\b/);
});

t.test('CONTINUOUS enforcement re-evaluates every chunk; ONE_TIME_ON_FIRST_BYTE decides once', async (t) => {
  const echo = await echoServer(t);
  const flip = (enforcement: string, name: string) => `
  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: first
        typed_config: { "@type": ${SFS}, test_role: first, tag: F }
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: ${name}.
          enforcement_type: ${enforcement}
          rules:
            action: DENY
            policies:
              flipped: { permissions: [{ any: true }], principals: [{ filter_state: { key: test.flipped, string_match: { exact: "yes" } } }] }${tcpProxy('echo', name)}`;
  const p = await startProxyYaml(t, `
static_resources:
  listeners:${flip('CONTINUOUS', 'cont')}${flip('ONE_TIME_ON_FIRST_BYTE', 'once')}
  clusters:
${staticCluster('echo', [echo.port])}
`);
  const run = (port: number) => new Promise<{ got: string; closed: boolean }>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('HDR:one'));
    let got = '';
    s.on('data', (d) => {
      got += d;
      // The first filter's state flips on the second chunk: CONTINUOUS sees it.
      if (got.endsWith('F<echo:one')) s.write('two');
      if (got.endsWith('F<echo:two')) s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve({ got, closed: true }));
  });
  const cont = await run(p.port('cont'));
  t.equal(cont.got, 'HELLO|F<echo:one', 'CONTINUOUS: the second chunk was denied, the connection closed');
  t.same(echo.seen.slice(-1), ['one']);
  const once = await run(p.port('once'));
  t.equal(once.got, 'HELLO|F<echo:oneF<echo:two', 'ONE_TIME_ON_FIRST_BYTE: the first decision stands');
});

t.test('filter_disabled: http_inspector skipped on a server-first port, so the greeting is not held for client bytes', async (t) => {
  // A server-first protocol (SMTP, MySQL): the upstream speaks first.
  const greeter = net.createServer((s) => {
    s.on('error', () => undefined);
    s.write('220 ready\r\n');
  });
  await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => greeter.close(() => r())));
  const [skipped, inspected] = [await freePort(), await freePort()];
  const listener = (name: string, port: number, disabled: string) => `
  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
    listener_filters_timeout: 5s
    continue_on_listener_filters_timeout: true
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }
      filter_disabled: ${disabled}
    filter_chains:
    - filters:${tcpProxy('greeter', name)}`;
  await startProxyYaml(t, `
static_resources:
  listeners:${listener('skipped', skipped, `{ or_match: { rules: [{ destination_port_range: { start: ${skipped}, end: ${skipped + 1} } }, { destination_port_range: { start: 1, end: 2 } }] } }`)}${listener('inspected', inspected, `{ not_match: { destination_port_range: { start: ${inspected}, end: ${inspected + 1} } } }`)}
  clusters:
${staticCluster('greeter', [(greeter.address() as net.AddressInfo).port])}
`);
  const greeting = (port: number) => new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('error', () => undefined);
    setTimeout(() => {
      s.destroy();
      resolve(got);
    }, 700);
  });
  t.equal(await greeting(skipped), '220 ready\r\n', 'the disabled inspector did not wait: the greeting arrived at once');
  t.equal(await greeting(inspected), '', 'where the predicate does not match, http_inspector waits for the client\'s first bytes');
});

t.test('after RBAC decided on the first byte (detached), later bytes flow intact both ways', async (t) => {
  // A byte-exact echo (the other tests' echo prefixes text).
  const raw = net.createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => raw.close(() => r())));
  const p = await startProxyYaml(t, `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: d.
          rules: { action: ALLOW, policies: { loopback: { permissions: [{ any: true }], principals: [{ source_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }] } } }${tcpProxy('raw')}
  clusters:
${staticCluster('raw', [(raw.address() as net.AddressInfo).port])}
`);
  const payload = Buffer.alloc(2 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const want = Buffer.concat([Buffer.from('first'), payload]);
  const got = await new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    const s = net.connect({ host: '127.0.0.1', port: p.port('l') }, () => {
      s.write('first');
      // The rest after the first bytes were decided on, in several writes.
      setTimeout(() => {
        for (let off = 0; off < payload.length; off += 300_000) s.write(payload.subarray(off, off + 300_000));
      }, 50);
    });
    s.on('data', (d: Buffer) => {
      parts.push(d);
      n += d.length;
      if (n >= want.length) {
        s.destroy();
        resolve(Buffer.concat(parts));
      }
    });
    s.on('error', reject);
    setTimeout(() => {
      s.destroy();
      resolve(Buffer.concat(parts));
    }, 8000).unref();
  });
  t.equal(got.length, want.length, 'every byte came back');
  t.ok(got.equals(want), 'in order and unchanged');
  t.match(await httpGet(p.adminPort!, '/stats?filter=d.rbac'), /d\.rbac\.allowed: 1\b/, 'decided once');
});

t.test('delay_deny: a denied connection is held (nothing reaches the upstream) and closed after the delay', async (t) => {
  const echo = await echoServer(t);
  const p = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: slow.
          delay_deny: 0.4s
          rules: { action: DENY, policies: { everyone: { permissions: [{ any: true }], principals: [{ any: true }] } } }${tcpProxy('echo')}
  clusters:
${staticCluster('echo', [echo.port])}
`);
  const before = echo.seen.length;
  const start = Date.now();
  const r = await talk(p.port('l'), 'hello', 1);
  const ms = Date.now() - start;
  t.same(r, { got: '', closed: true }, 'denied');
  t.ok(ms >= 350 && ms < 2500, `closed after the delay (${ms} ms)`);
  t.equal(echo.seen.length, before, 'the held bytes never reached the upstream');
});
