import t from 'tap';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueWorkload, mintRoot } from '../../../certs/src/index.js';
import { endpointKey } from '../../../config/src/index.js';
import type { Host } from '../../src/cluster/endpoint-set.js';
import { existingH2Pool } from '../../src/upstream/h2-pool.js';
import { bootstrapYaml, get, startProxyYaml, staticCluster, type Scope } from '../helpers.js';
import { until } from '../../../test-support/wait.js';

// HTTP/2 clusters (gRPC services, Istio's h2 between sidecars) on node's core http2 API:
// what a user of gRPC through the proxy checks — trailers arrive, refused streams are
// retried, GOAWAY moves new requests to a new connection, one connection carries many
// streams up to the peer's limit, and TLS speaks h2 with the cluster's ALPN list.

const H2_OPTS = `
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }`;

const ROUTES = (retry = '') => `
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: grpc${retry} } }]`;

interface Origin {
  port: number;
  sessions: number;
  streams: number;
  server: http2.Http2Server | http2.Http2SecureServer;
}

async function startOrigin(t: Scope, onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, o: Origin) => void, opts: { maxConcurrentStreams?: number; secure?: http2.SecureServerOptions } = {}): Promise<Origin> {
  const settings = opts.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: opts.maxConcurrentStreams } : {};
  const server = opts.secure ? http2.createSecureServer({ ...opts.secure, settings }) : http2.createServer({ settings });
  const o: Origin = { port: 0, sessions: 0, streams: 0, server };
  const open = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    o.sessions++;
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  server.on('stream', (stream, headers) => {
    o.streams++;
    // Closing a stream with a code other than CANCEL (REFUSED_STREAM here) also emits 'error' on our own side.
    stream.on('error', () => undefined);
    onStream(stream, headers, o);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // The proxy's connections would otherwise keep server.close() waiting for their idle timeout.
  t.teardown(() => new Promise<void>((r) => { for (const s of open) s.destroy(); server.close(() => r()); }));
  o.port = (server.address() as AddressInfo).port;
  return o;
}

/** An h2c client request through the proxy: status, body and trailers as the client sees them. */
async function h2get(t: Scope, port: number, path: string): Promise<{ status: number; body: string; trailers: http2.IncomingHttpHeaders }> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => client.close());
  return new Promise((resolve, reject) => {
    const req = client.request({ ':path': path, ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
    let status = 0;
    let body = '';
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('trailers', (tr) => (trailers = tr));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => { client.close(); resolve({ status, body, trailers }); });
    req.on('error', reject);
    req.end('ping');
  });
}

function grpcAnswer(stream: http2.ServerHttp2Stream, status: number, message: string): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(status), 'grpc-message': message }));
  stream.end('reply');
}

t.test('trailers after the body reach the client, and many streams share one upstream connection', async (t) => {
  const origin = await startOrigin(t, (stream) => {
    stream.resume();
    stream.on('end', () => grpcAnswer(stream, 7, 'denied'));
  });
  const proxy = await startProxyYaml(t, bootstrapYaml(ROUTES(), staticCluster('grpc', [origin.port], H2_OPTS)));
  const r = await h2get(t, proxy.port(), '/pkg.Svc/Call');
  t.equal(r.status, 200);
  t.equal(r.body, 'reply');
  t.equal(r.trailers['grpc-status'], '7', 'grpc-status from the trailers that followed the messages');
  t.equal(r.trailers['grpc-message'], 'denied');
  // HTTP/1.1 downstreams too (their response is not gRPC, but the upstream side is the same pool).
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => get(proxy.port(), `/m${i}`, {}, 'POST', 'x')));
  t.same(new Set(many.map((m) => m.status)), new Set([200]));
  t.equal(origin.sessions, 1, '21 requests, 20 of them concurrent, on one HTTP/2 connection');
  const host = proxy.server.snapshot.clusters.get('grpc')!.endpoints.get(endpointKey('127.0.0.1', origin.port)) as Host;
  t.ok(existingH2Pool(host), 'served by the core-API pool');
  t.equal(host.upstream, undefined, 'undici never made a pool for the host');
});

t.test('a peer\'s max_concurrent_streams opens another connection instead of queueing', async (t) => {
  const origin = await startOrigin(t, (stream) => {
    stream.resume();
    setTimeout(() => { stream.respond({ ':status': 200 }); stream.end('ok'); }, 150);
  }, { maxConcurrentStreams: 2 });
  const proxy = await startProxyYaml(t, bootstrapYaml(ROUTES(), staticCluster('grpc', [origin.port], H2_OPTS)));
  t.equal((await get(proxy.port(), '/warm')).status, 200, 'the first connection learns the peer\'s SETTINGS');
  const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => get(proxy.port(), `/s${i}`)));
  t.same(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  t.ok(origin.sessions >= 3, `six concurrent streams at two per connection used ${origin.sessions} connections`);
  const stats = proxy.server.snapshot.clusters.get('grpc')!.stats;
  t.equal(stats.upstream_cx_http2_total.value, origin.sessions, 'each counted as an HTTP/2 connection (Envoy\'s upstream_cx_http2_total)');
  t.equal(stats.upstream_cx_http1_total.value, 0);
});

t.test('a refused stream is retried (retry_on refused-stream); GOAWAY sends new requests to a new connection', async (t) => {
  let refuse = 1;
  const origin = await startOrigin(t, (stream, headers) => {
    if (headers[':path'] === '/refuse' && refuse-- > 0) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.respond({ ':status': 200 });
    stream.end(String(headers[':path']));
    // A graceful GOAWAY naming the last stream it processed (node's default arguments).
    if (headers[':path'] === '/bye') stream.session?.goaway();
  });
  const retryCluster = staticCluster('grpc', [origin.port], H2_OPTS);
  const proxy = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: grpc, retry_policy: { retry_on: refused-stream, num_retries: 2 } } }]`, retryCluster));
  const refused = await get(proxy.port(), '/refuse');
  t.equal(refused.status, 200, 'the refused stream was replayed and answered');
  t.equal(refused.body, '/refuse');
  const stats = await get(proxy.adminPort!, '/stats?filter=cluster.grpc.upstream_rq_retry$');
  t.match(stats.body, /upstream_rq_retry: 1\b/, 'one retry counted');
  t.equal((await get(proxy.port(), '/bye')).status, 200);
  const before = origin.sessions;
  await until('the GOAWAY to reach the proxy', async () => (await get(proxy.port(), '/after')).status === 200 && origin.sessions > before, { timeoutMs: 5000 });
  t.ok(origin.sessions > before, 'after GOAWAY the next request opened a new connection');
});

t.test('TLS: h2 offered beside the cluster\'s ALPN list (Istio\'s), mTLS verified, trailers through', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-h2-pool-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const server = await issueWorkload({ ca, dns: ['ratings.test'], spiffeId: 'spiffe://example.org/ns/default/sa/ratings' });
  const client = await issueWorkload({ ca, dns: ['reviews.test'], spiffeId: 'spiffe://example.org/ns/default/sa/reviews' });
  writeFileSync(join(dir, 'cert.pem'), client.chainPem);
  writeFileSync(join(dir, 'key.pem'), client.keyPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const alpns: (string | false | null)[] = [];
  const origin = await startOrigin(t, (stream) => {
    alpns.push((stream.session?.socket as unknown as { alpnProtocol?: string | false }).alpnProtocol ?? null);
    stream.resume();
    stream.on('end', () => grpcAnswer(stream, 0, ''));
  }, { secure: { cert: server.chainPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2', 'http/1.1'] } });
  const cluster = staticCluster('grpc', [origin.port], `${H2_OPTS}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: [istio-peer-exchange, istio]
          tls_certificates: [{ certificate_chain: { filename: ${join(dir, 'cert.pem')} }, private_key: { filename: ${join(dir, 'key.pem')} } }]
          validation_context:
            trusted_ca: { filename: ${join(dir, 'ca.pem')} }
            match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://example.org/ns/default/sa/ratings" } }]`);
  const proxy = await startProxyYaml(t, bootstrapYaml(ROUTES(), cluster));
  const r = await h2get(t, proxy.port(), '/ratings.Svc/Get');
  t.equal(r.status, 200);
  t.equal(r.trailers['grpc-status'], '0');
  t.same(alpns, ['h2'], 'ALPN settled on h2');
  const host = proxy.server.snapshot.clusters.get('grpc')!.endpoints.get(endpointKey('127.0.0.1', origin.port)) as Host;
  t.equal(host.tlsPeerPrincipal, 'spiffe://example.org/ns/default/sa/ratings', 'peer principal recorded');
  t.ok(existingH2Pool(host)?.isTls);
});

t.test('an unreachable HTTP/2 host is a connection failure (503 UF), counted and not left active', async (t) => {
  const { refusedHost } = await import('../helpers.js');
  const dead = await refusedHost(t);
  const dir = mkdtempSync(join(tmpdir(), 'pf-h2-dead-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const proxy = await startProxyYaml(t, bootstrapYaml(ROUTES(), staticCluster('grpc', [dead], H2_OPTS), `
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: ${join(dir, 'access.log')}
              log_format: { text_format_source: { inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS%\\n" } }`));
  const r = await get(proxy.port(), '/');
  t.equal(r.status, 503);
  await until('the access log line', () => { try { return readFileSync(join(dir, 'access.log'), 'utf8').length > 0; } catch { return false; } }, { timeoutMs: 5000 });
  t.equal(readFileSync(join(dir, 'access.log'), 'utf8').trim(), '503 UF');
  await until('the failed connection to be closed', async () => /upstream_cx_active: 0\b/.test((await get(proxy.adminPort!, '/stats?filter=cluster.grpc.upstream_cx_active')).body), { timeoutMs: 5000 });
  t.pass('no connection left active');
});

t.test('use_downstream_protocol_config (Istio\'s sniffed ports): HTTP/2 requests go upstream over HTTP/2, HTTP/1.1 over HTTP/1.1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-h2-usedown-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const server = await issueWorkload({ ca, dns: ['app.test'], spiffeId: 'spiffe://example.org/ns/default/sa/app' });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  // One TLS port speaking both protocols by ALPN, as an Istio sidecar's inbound listener does.
  const seen: string[] = [];
  const origin = http2.createSecureServer({ cert: server.chainPem, key: server.keyPem, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] }, (req, res) => {
    seen.push(req.httpVersion);
    if (req.httpVersion === '2.0') {
      res.addTrailers({ 'grpc-status': '0' });
      res.writeHead(200, { 'content-type': 'application/grpc' });
    }
    res.end(`over ${req.httpVersion}`);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  origin.on('session', (s: http2.ServerHttp2Session) => { sessions.add(s); s.once('close', () => sessions.delete(s)); });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { for (const s of sessions) s.destroy(); origin.close(() => r()); }));
  const port = (origin.address() as AddressInfo).port;
  const cluster = staticCluster('grpc', [port], `
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: app.test
        common_tls_context:
          validation_context: { trusted_ca: { filename: ${join(dir, 'ca.pem')} } }`);
  const proxy = await startProxyYaml(t, bootstrapYaml(ROUTES(), cluster));
  const h2 = await h2get(t, proxy.port(), '/app.Svc/Call');
  t.equal(h2.status, 200);
  t.equal(h2.body, 'over 2.0', 'the HTTP/2 request went upstream over HTTP/2');
  t.equal(h2.trailers['grpc-status'], '0', 'with its trailers');
  const h1 = await get(proxy.port(), '/plain');
  t.equal(h1.body, 'over 1.1', 'the HTTP/1.1 request went upstream over HTTP/1.1');
  t.same(seen, ['2.0', '1.1']);
});
