import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, formatProblem, type Bootstrap } from '../config/src/index.js';
import { installTelemetry, type TelemetryHooks } from '../telemetry/src/index.js';
import { startOtlpReceiver } from '../telemetry/test/otlp-receiver.js';

// Two proxies' telemetry, configured from Envoy bootstraps (tracing.provider
// envoy.tracers.opentelemetry -> a real OTLP/gRPC receiver), driven through the hooks
// exactly as the connection manager calls them: onRequestStart before routing (it writes
// traceparent into the headers the upstream gets), onRequestDone at the end.
function bootstrap(name: string, collectorPort: number, extra = ''): Bootstrap {
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseYaml(`
node: { id: ${name}, cluster: ${name} }
static_resources:
  listeners:
  - name: in
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          tracing:
            random_sampling: { value: 100 }
            ${extra}
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: ${name}
                grpc_service:
                  envoy_grpc: { cluster_name: otel }
          route_config: { virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }] }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: otel
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: otel
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${collectorPort} } } } }] }]
`), diag);
  if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
  return b;
}

const stream = (id: string) => ({
  requestId: id, startTime: performance.now(), downstreamAddress: '127.0.0.1', peerIdentity: undefined as string | undefined, method: 'GET', protocol: 'HTTP/1.1',
  routeName: 'r', clusterName: 'c', responseCode: 0, responseFlags: '', responseCodeDetails: '', upstreamHost: '127.0.0.1:9', attemptCount: 1, bytesSent: 0,
});

t.test('spans over OTLP/gRPC with parent/child links across two hops', async (t) => {
  const rx = await startOtlpReceiver();
  t.teardown(() => rx.close());
  const hooks: TelemetryHooks[] = [];
  t.teardown(() => Promise.all(hooks.map((h) => h.close())));
  const front = await installTelemetry(bootstrap('frontend-sidecar', rx.port));
  const back = await installTelemetry(bootstrap('waypoint', rx.port, 'spawn_upstream_span: true'));
  hooks.push(front, back);
  t.ok(front.onRequestStart && front.onRequestDone && back.onRequestStart);

  // hop 1: a client request with a B3 context
  const clientTrace = '463ac35c9f6413ad48485a3953bb6124';
  const clientSpan = 'a2fb4a1d1a96d312';
  const s1 = stream('one');
  const r1 = { method: 'GET', path: '/api/x', authority: 'shop', scheme: 'http' as const, headers: { b3: `${clientTrace}-${clientSpan}-1` } as Record<string, string> };
  front.onRequestStart!(s1, r1);
  // hop 2 receives what hop 1 sent upstream
  const s2 = stream('two');
  const r2 = { method: 'GET', path: '/api/x', authority: 'backend', scheme: 'http' as const, headers: { ...r1.headers } };
  back.onRequestStart!(s2, r2);
  t.match(r2.headers.traceparent, new RegExp(`^00-${clientTrace}-[0-9a-f]{16}-01$`));
  s2.responseCode = 503;
  s2.responseFlags = 'UH';
  back.onRequestDone!(s2, r2);
  s1.responseCode = 503;
  front.onRequestDone!(s1, r1);

  // a request that arrives unsampled stays unsampled at both hops
  const s3 = stream('three');
  const r3 = { method: 'GET', path: '/', authority: 'shop', scheme: 'http' as const, headers: { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-00` } as Record<string, string> };
  front.onRequestStart!(s3, r3);
  front.onRequestDone!(s3, r3);

  await Promise.all(hooks.map((h) => h.close())); // flushes the batch processors
  const spans = await rx.waitFor(3);
  t.equal(spans.length, 3, 'front SERVER, waypoint SERVER + CLIENT; nothing for the unsampled request');
  const f = spans.find((s) => s.serviceName === 'frontend-sidecar')!;
  const wServer = spans.find((s) => s.serviceName === 'waypoint' && s.kind === 2)!; // OTLP SPAN_KIND_SERVER = 2
  const wClient = spans.find((s) => s.serviceName === 'waypoint' && s.kind === 3)!; // CLIENT = 3
  t.ok(f && wServer && wClient);
  for (const s of spans) t.equal(s.traceId, clientTrace, 'one trace, the caller\'s');
  t.equal(f.parentSpanId, clientSpan, 'hop 1 is a child of the B3 caller');
  t.equal(wServer.parentSpanId, f.spanId, 'hop 2 is a child of hop 1');
  t.equal(wClient.parentSpanId, wServer.spanId, 'upstream span is a child of hop 2');
  t.equal(r2.headers.traceparent, `00-${clientTrace}-${wClient.spanId}-01`, 'hop 2 sent its CLIENT span upstream');
  t.equal(wServer.attributes['http.response.status_code'], 503);
  t.equal(wServer.attributes.response_flags, 'UH');
  t.equal(wServer.status, 2, 'STATUS_CODE_ERROR for 5xx');
  t.equal(f.name, 'shop/api/x');
});

t.test('tracing off builds nothing; a bad provider is a config error', async (t) => {
  const rx = await startOtlpReceiver();
  t.teardown(() => rx.close());
  const b = bootstrap('x', rx.port);
  const listener = b.staticResources.listeners[0]!;
  const hcm = listener.filterChains[0]!.network;
  const off = await installTelemetry({ ...b, staticResources: { ...b.staticResources, listeners: [{ ...listener, filterChains: [{ ...listener.filterChains[0]!, network: { ...hcm, tracing: undefined } as never }] }] } });
  t.equal(off.onRequestStart, undefined);
  t.equal(off.onRequestDone, undefined);
  await off.close();
  const bad = { ...hcm, tracing: { provider: { name: 'envoy.tracers.zipkin', typed_config: { '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig' } } } };
  await t.rejects(installTelemetry({ ...b, staticResources: { ...b.staticResources, listeners: [{ ...listener, filterChains: [{ ...listener.filterChains[0]!, network: bad as never }] }] } }),
    /static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.tracing\.provider\.typed_config: tracer envoy\.config\.trace\.v3\.ZipkinConfig not supported/);
});
