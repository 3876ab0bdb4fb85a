/**
 * One span per proxied request (SERVER), optionally a CLIENT child around the upstream
 * (`spawn_upstream_span`), exported over OTLP/gRPC in batches. The sampling decision is
 * Envoy's: forced (x-envoy-force-trace, B3 debug) > client (x-client-trace-id with
 * client_sampling) > the caller's sampled flag > random_sampling; overall_sampling caps
 * the non-forced ones. Unsampled requests build no span, only propagate the decision.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Span, Tracer } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { headerValue, type RequestView, type StreamView } from '../types.js';
import type { TracingConfig } from './config.js';
import { extract, inject } from './propagation.js';

/**
 * The OpenTelemetry SDK and its OTLP/gRPC exporter (several MB of RSS, grpc-js included),
 * required when the first tracer provider is created: a proxy whose listeners do not
 * trace never loads them, also when its listeners come over xDS (any of them may trace).
 */
interface Otel {
  readonly api: typeof import('@opentelemetry/api');
  readonly core: typeof import('@opentelemetry/core');
  readonly sdk: typeof import('@opentelemetry/sdk-trace-base');
  readonly otlp: typeof import('@opentelemetry/exporter-trace-otlp-grpc');
  readonly resources: typeof import('@opentelemetry/resources');
}
const require = createRequire(import.meta.url);
let loaded: Otel | undefined;
function otel(): Otel {
  return (loaded ??= {
    api: require('@opentelemetry/api') as Otel['api'],
    core: require('@opentelemetry/core') as Otel['core'],
    sdk: require('@opentelemetry/sdk-trace-base') as Otel['sdk'],
    otlp: require('@opentelemetry/exporter-trace-otlp-grpc') as Otel['otlp'],
    resources: require('@opentelemetry/resources') as Otel['resources'],
  });
}

interface Active {
  readonly server: Span;
  readonly client: Span | undefined;
}

export interface TracerProviderHandle {
  readonly tracer: Tracer;
  shutdown(): Promise<void>;
  forceFlush(): Promise<void>;
}

/** A provider exporting to an OTLP/gRPC collector (or a given exporter, for tests). */
export function createProvider(collector: string, serviceName: string, nodeId: string, exporter?: SpanExporter): TracerProviderHandle {
  const { sdk, otlp, resources } = otel();
  const exp = exporter ?? new otlp.OTLPTraceExporter({ url: `http://${collector}` });
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': serviceName, 'service.instance.id': nodeId }) as never,
    spanProcessors: [new sdk.BatchSpanProcessor(exp, { scheduledDelayMillis: 500, maxQueueSize: 4096, maxExportBatchSize: 512 })],
  });
  return {
    tracer: provider.getTracer('pilotfish'),
    shutdown: () => provider.shutdown(),
    forceFlush: () => provider.forceFlush(),
  };
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

export class RequestTracer {
  private readonly active = new WeakMap<object, Active>();
  private readonly otel = otel();

  constructor(
    readonly config: TracingConfig,
    private readonly tracer: Tracer,
    private readonly random: () => number = Math.random,
  ) {}

  private decide(h: RequestView['headers'], parentSampled: boolean | undefined, debug: boolean): boolean {
    const c = this.config;
    if (debug || h['x-envoy-force-trace'] !== undefined) return true;
    let sampled: boolean;
    if (h['x-client-trace-id'] !== undefined && c.clientSampling > 0 && this.random() * 100 < c.clientSampling) sampled = true;
    else if (parentSampled !== undefined) sampled = parentSampled;
    else sampled = this.random() * 100 < c.randomSampling;
    return sampled && (c.overallSampling >= 100 || this.random() * 100 < c.overallSampling);
  }

  /** Before routing: decide, start the span(s), write traceparent for the upstream. */
  onRequestStart(stream: StreamView, request: RequestView): void {
    const h = request.headers;
    const parent = extract(h);
    const sampled = this.decide(h, parent?.sampled, parent?.debug ?? false);
    if (!sampled) {
      // No span; the next hop must still see the decision (and the same trace).
      inject(h, parent?.traceId ?? hex(16), hex(8), false, parent?.traceState);
      return;
    }
    const { api, core } = this.otel;
    const ctx = parent
      ? api.trace.setSpanContext(api.ROOT_CONTEXT, {
          traceId: parent.traceId,
          spanId: parent.spanId,
          traceFlags: api.TraceFlags.SAMPLED,
          isRemote: true,
          ...(parent.traceState ? { traceState: new core.TraceState(parent.traceState) } : {}),
        })
      : api.ROOT_CONTEXT;
    const path = request.path.split('?')[0] ?? request.path;
    const attributes: Record<string, string> = {
      'http.request.method': request.method,
      'url.path': path,
      'server.address': request.authority,
      'guid:x-request-id': stream.requestId,
      ...this.config.literalTags,
    };
    for (const [tag, header] of Object.entries(this.config.headerTags)) {
      const v = headerValue(h, header);
      if (v !== undefined) attributes[tag] = v;
    }
    const server = this.tracer.startSpan(`${request.authority}${path}`, { kind: api.SpanKind.SERVER, startTime: stream.startTime, attributes }, ctx);
    let client: Span | undefined;
    let outgoing = server.spanContext();
    if (this.config.spawnUpstreamSpan) {
      client = this.tracer.startSpan(`router ${request.authority} egress`, { kind: api.SpanKind.CLIENT, startTime: stream.startTime }, api.trace.setSpan(api.ROOT_CONTEXT, server));
      outgoing = client.spanContext();
    }
    inject(h, outgoing.traceId, outgoing.spanId, true, parent?.traceState);
    this.active.set(stream, { server, client });
  }

  /** After the response: status, upstream and peer attributes; end the span(s). */
  onRequestDone(stream: StreamView): void {
    const a = this.active.get(stream);
    if (!a) return;
    this.active.delete(stream);
    const code = stream.responseCode;
    const failed = code === 0 || code >= 500;
    a.server.setAttributes({
      'http.response.status_code': code,
      'response_flags': stream.responseFlags || '-',
      'client.address': stream.downstreamAddress,
      ...(stream.peerIdentity ? { 'peer.identity': stream.peerIdentity } : {}),
      ...(stream.routeName ? { 'http.route': stream.routeName } : {}),
      ...(stream.clusterName ? { upstream_cluster: stream.clusterName } : {}),
      ...(stream.upstreamHost ? { 'upstream_address': stream.upstreamHost } : {}),
    });
    if (failed) a.server.setStatus({ code: this.otel.api.SpanStatusCode.ERROR, message: stream.responseCodeDetails || String(code) });
    if (a.client) {
      a.client.setAttributes({
        'http.response.status_code': code,
        ...(stream.upstreamHost ? { 'server.address': stream.upstreamHost } : {}),
        ...(stream.clusterName ? { upstream_cluster: stream.clusterName } : {}),
        'http.request.resend_count': Math.max(0, stream.attemptCount - 1),
      });
      if (failed) a.client.setStatus({ code: this.otel.api.SpanStatusCode.ERROR });
      a.client.end();
    }
    a.server.end();
  }
}
