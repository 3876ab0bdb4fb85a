import t from 'tap';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeRouteConfiguration, endpointKey } from '../../config/src/index.js';
import { issueWorkload, mintRoot } from '../../certs/src/index.js';
import type { Host } from '../src/cluster/endpoint-set.js';
import { existingRawPool } from '../src/http1/upstream.js';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from './helpers.js';
import { until } from '../../test-support/wait.js';

t.test('a request keeps the route snapshot it started with; new requests see the new one', async (t) => {
  const hold: (() => void)[] = [];
  const a = await startUpstream(t, 'a', (_req, res) => hold.push(() => res.end('from a')));
  const b = await startUpstream(t, 'b', (_req, res) => res.end('from b'));
  const p = await startProxyYaml(t, `
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          rds: { route_config_name: r, config_source: { ads: {} } }
          http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
  clusters:
${staticCluster('a', [a.port])}
${staticCluster('b', [b.port])}
`);
  const routeTo = (cluster: string) => decodeRouteConfiguration(parseYaml(`
name: r
virtual_hosts: [{ name: v, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: ${cluster} } }] }]`), new Diagnostics(), 'r')!;
  t.equal((await get(p.port(), '/', { host: 'x' })).status, 404, 'no route configuration yet: 404 NR');
  p.server.upsertRouteConfiguration(routeTo('a'));
  p.server.commit();
  const inflight = get(p.port(), '/', { host: 'x' });
  await until('the first request to reach the upstream', () => hold.length > 0, { intervalMs: 5 });
  p.server.upsertRouteConfiguration(routeTo('b'));
  p.server.commit();
  t.equal((await get(p.port(), '/', { host: 'x' })).body, 'from b', 'new request uses the new snapshot');
  hold.forEach((f) => f());
  t.equal((await inflight).body, 'from a', 'in-flight request finished on the old one');
});

t.test('endpoint diffs apply in place and keep the pools (and connections) of untouched hosts', async (t) => {
  const ports: number[] = [];
  const seen = new Map<string, Set<number>>();
  const ups = await Promise.all([0, 1, 2].map((i) => startUpstream(t, `u${i}`, (req, res) => {
    const set = seen.get(`u${i}`) ?? new Set<number>();
    set.add(req.socket.remotePort!);
    seen.set(`u${i}`, set);
    res.end(`u${i}`);
  })));
  for (const u of ups) ports.push(u.port);
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: c } }]`, staticCluster('c', ports.slice(0, 2))));
  for (let i = 0; i < 4; i++) await get(p.port(), '/', { host: 'x' });
  const cluster = p.server.snapshot.clusters.get('c')!;
  const key0 = endpointKey('127.0.0.1', ports[0]!);
  const host0 = cluster.endpoints.get(key0) as Host;
  // The host's pool on either HTTP/1.1 path: the raw path's own, or undici's.
  const poolOf = (h: Host): unknown => existingRawPool(h) ?? h.upstream;
  const pool0 = poolOf(host0);
  t.ok(pool0, 'host 0 has a pool');
  const snapshotVersion = p.server.snapshot.version;
  const base = [...cluster.endpoints.hosts()][0]!.endpoint;
  p.server.applyEndpointDiff({ cluster: 'c', added: [{ ...base, key: endpointKey('127.0.0.1', ports[2]!), port: ports[2]! }], removed: [endpointKey('127.0.0.1', ports[1]!)], changed: [] });
  t.equal(p.server.snapshot.version, snapshotVersion, 'no new snapshot needed for an endpoint diff');
  t.equal(cluster.endpoints.get(key0), host0, 'untouched host is the same object');
  t.equal(poolOf(host0), pool0, 'and keeps its pool');
  const bodies = new Set<string>();
  for (let i = 0; i < 6; i++) bodies.add((await get(p.port(), '/', { host: 'x' })).body);
  t.same([...bodies].sort(), ['u0', 'u2'], 'removed host gets nothing, added host gets traffic');
  t.equal(seen.get('u0')!.size, 1, 'u0 saw one upstream connection throughout: its pool was never rebuilt');
});

t.test('HTTP/1.1 and HTTP/2 over TLS, chosen by ALPN', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const leaf = await issueWorkload({ ca, dns: ['proxy.test'], spiffeId: 'spiffe://example.org/ns/default/sa/proxy' });
  writeFileSync(join(dir, 'cert.pem'), leaf.chainPem);
  writeFileSync(join(dir, 'key.pem'), leaf.keyPem);
  const up = await startUpstream(t, 'up', (req, res) => res.end(`proto=${req.headers['x-forwarded-proto']}`));
  const yaml = bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`, staticCluster('up', [up.port])).replace(
    '    filter_chains:\n    - filters:',
    `    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [{ certificate_chain: { filename: ${join(dir, 'cert.pem')} }, private_key: { filename: ${join(dir, 'key.pem')} } }]
      filters:`);
  const p = await startProxyYaml(t, yaml);
  // HTTP/2 by ALPN
  const client = http2.connect(`https://127.0.0.1:${p.port()}`, { ca: ca.certPem, servername: 'proxy.test' });
  t.teardown(() => client.close());
  const h2body = await new Promise<string>((resolve, reject) => {
    const s = client.request({ ':path': '/', ':authority': 'proxy.test' });
    let b = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (b += c));
    s.on('end', () => resolve(b));
    s.on('error', reject);
  });
  t.equal(h2body, 'proto=https', 'h2 over TLS; x-forwarded-proto is https');
  t.equal(client.alpnProtocol, 'h2');
  // HTTP/1.1 by ALPN
  const h1body = await new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: p.port(), path: '/', ca: ca.certPem, servername: 'proxy.test', headers: { host: 'proxy.test' }, agent: false, ALPNProtocols: ['http/1.1'] } as https.RequestOptions, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  t.equal(h1body, 'proto=https', 'HTTP/1.1 over TLS');
});
