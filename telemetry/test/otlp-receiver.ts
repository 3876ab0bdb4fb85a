/**
 * A real OTLP/gRPC trace receiver for tests: grpc-js serving
 * opentelemetry.proto.collector.trace.v1.TraceService/Export, decoding requests with the
 * OpenTelemetry project's own generated protobuf code (@opentelemetry/otlp-proto-exporter-base).
 */
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_WAIT_MS } from '../../test-support/wait.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const root = require('@opentelemetry/otlp-proto-exporter-base/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: { trace: { v1: {
    ExportTraceServiceRequest: { decode(b: Uint8Array): unknown; toObject(m: unknown, o: object): unknown };
    ExportTraceServiceResponse: { encode(m: object): { finish(): Uint8Array } };
  } } } } };
};
const v1 = root.opentelemetry.proto.collector.trace.v1;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  serviceName: string;
  attributes: Record<string, unknown>;
  status: number;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };

function value(v: AnyValue | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  return v.doubleValue;
}

const hex = (b: string | undefined): string => (b ? Buffer.from(b, 'base64').toString('hex') : '');

export interface OtlpReceiver {
  readonly port: number;
  readonly spans: ReceivedSpan[];
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const waiters: (() => void)[] = [];
  const server = new grpc.Server();
  const service: grpc.ServiceDefinition = {
    Export: {
      path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: (b: Buffer) => v1.ExportTraceServiceRequest.toObject(v1.ExportTraceServiceRequest.decode(b), { bytes: String, longs: String, enums: Number, defaults: false }),
      responseSerialize: (m: object) => Buffer.from(v1.ExportTraceServiceResponse.encode(m).finish()),
      responseDeserialize: (b: Buffer) => b,
    },
  };
  server.addService(service, {
    Export: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<object>) => {
      for (const rs of call.request.resourceSpans ?? []) {
        const res: Record<string, unknown> = {};
        for (const kv of rs.resource?.attributes ?? []) res[kv.key] = value(kv.value);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            const attributes: Record<string, unknown> = {};
            for (const kv of s.attributes ?? []) attributes[kv.key] = value(kv.value);
            spans.push({
              traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId), name: s.name, kind: s.kind ?? 0,
              serviceName: String(res['service.name'] ?? ''), attributes, status: s.status?.code ?? 0,
            });
          }
        }
      }
      for (const w of waiters.splice(0)) w();
      cb(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return {
    port,
    spans,
    async waitFor(n, timeoutMs = DEFAULT_WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      while (spans.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} spans, got ${spans.length}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
      return spans;
    },
    close: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}
