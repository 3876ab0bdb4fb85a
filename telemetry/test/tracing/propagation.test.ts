import t from 'tap';
import fc from 'fast-check';
import { extract, formatTraceparent, parseB3, parseTraceparent } from '../../src/tracing/propagation.js';
import { RequestTracer } from '../../src/tracing/tracer.js';
import { InMemorySpanExporter, BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { TracingConfig } from '../../src/tracing/config.js';
import type { StreamView, RequestView } from '../../src/types.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

t.test('traceparent: valid, invalid, future versions', async (t) => {
  t.same(parseTraceparent(`00-${T}-${S}-01`, 'a=b'), { traceId: T, spanId: S, sampled: true, debug: false, traceState: 'a=b' });
  t.equal(parseTraceparent(`00-${T}-${S}-00`)?.sampled, false);
  t.ok(parseTraceparent(`01-${T}-${S}-01-extra`), 'later version may add fields');
  for (const bad of [`00-${T}-${S}-01-x`, `ff-${T}-${S}-01`, `00-${'0'.repeat(32)}-${S}-01`, `00-${T}-${'0'.repeat(16)}-01`, `00-${T}-${S}`, 'garbage', `00-${T.slice(1)}-${S}-01`]) {
    t.equal(parseTraceparent(bad), undefined, bad);
  }
});

t.test('B3 single and multi header, accepted on input', async (t) => {
  t.same(parseB3({ b3: `${T}-${S}-1` }), { traceId: T, spanId: S, sampled: true, debug: false, traceState: undefined });
  t.same(parseB3({ b3: `a3ce929d0e0e4736-${S}-d` })?.traceId, `0000000000000000a3ce929d0e0e4736`, '64-bit trace ids are padded');
  t.equal(parseB3({ b3: `${T}-${S}-d` })?.debug, true);
  t.equal(parseB3({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '0' })?.sampled, false);
  t.equal(parseB3({ 'x-b3-traceid': T, 'x-b3-spanid': S })?.sampled, undefined);
  t.equal(parseB3({ b3: '0' }), undefined);
  t.equal(extract({ traceparent: `00-${T}-${S}-01`, b3: `${'1'.repeat(32)}-${S}-1` })?.traceId, T, 'W3C wins');
});

t.test('property: formatted traceparents parse back', async () => {
  const hexs = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n }).filter((s) => /[1-9a-f]/.test(s));
  fc.assert(fc.property(hexs(32), hexs(16), fc.boolean(), (tid, sid, smp) => {
    const p = parseTraceparent(formatTraceparent(tid, sid, smp));
    return p !== undefined && p.traceId === tid && p.spanId === sid && p.sampled === smp;
  }));
  fc.assert(fc.property(fc.string({ maxLength: 70 }), (s) => {
    parseTraceparent(s);
    parseB3({ b3: s, 'x-b3-traceid': s, 'x-b3-spanid': s });
  }));
});

function setup(cfg: Partial<TracingConfig>, random = () => 0.5) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = new RequestTracer({ collector: 'x', serviceName: 's', randomSampling: 100, clientSampling: 100, overallSampling: 100, spawnUpstreamSpan: false, literalTags: {}, headerTags: {}, ...cfg }, provider.getTracer('t'), random);
  return { exporter, tracer };
}

function req(headers: Record<string, string> = {}): { stream: StreamView; request: RequestView } {
  const stream = { requestId: 'r', startTime: performance.now(), downstreamAddress: '127.0.0.1', peerIdentity: undefined, method: 'GET', protocol: 'HTTP/1.1', routeName: 'rt', clusterName: 'c', responseCode: 200, responseFlags: '', responseCodeDetails: 'via_upstream', upstreamHost: '127.0.0.1:1', attemptCount: 1, bytesSent: 2 };
  return { stream, request: { method: 'GET', path: '/a?b', authority: 'svc', scheme: 'http', headers: { ...headers } } };
}

t.test('sampling the Envoy way', async (t) => {
  // random_sampling 0: no span, but the next hop sees an unsampled traceparent
  let s = setup({ randomSampling: 0 });
  let r = req();
  s.tracer.onRequestStart(r.stream, r.request);
  s.tracer.onRequestDone(r.stream);
  t.equal(s.exporter.getFinishedSpans().length, 0);
  t.match(r.request.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);

  // a sampled caller is followed even at 0%
  r = req({ traceparent: `00-${T}-${S}-01`, tracestate: 'k=v' });
  s.tracer.onRequestStart(r.stream, r.request);
  s.tracer.onRequestDone(r.stream);
  const [span] = s.exporter.getFinishedSpans();
  t.equal(span?.spanContext().traceId, T);
  t.equal(span?.parentSpanContext?.spanId, S);
  t.equal(r.request.headers.traceparent, `00-${T}-${span?.spanContext().spanId}-01`, 'upstream sees our span as parent');
  t.equal(r.request.headers.tracestate, 'k=v');

  // x-envoy-force-trace overrides an unsampled caller
  s = setup({ randomSampling: 0 });
  r = req({ traceparent: `00-${T}-${S}-00`, 'x-envoy-force-trace': 'true' });
  s.tracer.onRequestStart(r.stream, r.request);
  s.tracer.onRequestDone(r.stream);
  t.equal(s.exporter.getFinishedSpans().length, 1);

  // x-client-trace-id with client_sampling
  s = setup({ randomSampling: 0, clientSampling: 100 });
  r = req({ 'x-client-trace-id': 'abc' });
  s.tracer.onRequestStart(r.stream, r.request);
  s.tracer.onRequestDone(r.stream);
  t.equal(s.exporter.getFinishedSpans().length, 1);

  // overall_sampling caps even a sampled caller; an unsampled caller stays unsampled
  s = setup({ overallSampling: 10 }, () => 0.5);
  r = req({ traceparent: `00-${T}-${S}-01` });
  s.tracer.onRequestStart(r.stream, r.request);
  t.match(r.request.headers.traceparent, new RegExp(`^00-${T}-[0-9a-f]{16}-00$`));
});

t.test('spawn_upstream_span: a CLIENT child is what the upstream sees', async (t) => {
  const s = setup({ spawnUpstreamSpan: true });
  const r = req();
  s.tracer.onRequestStart(r.stream, r.request);
  s.tracer.onRequestDone(r.stream);
  const spans = s.exporter.getFinishedSpans();
  t.equal(spans.length, 2);
  const client = spans.find((x) => x.kind === 2)!;
  const server = spans.find((x) => x.kind === 1)!;
  t.equal(client.parentSpanContext?.spanId, server.spanContext().spanId);
  t.equal(r.request.headers.traceparent, `00-${client.spanContext().traceId}-${client.spanContext().spanId}-01`);
  t.equal(server.attributes['http.response.status_code'], 200);
});
