import type { Bootstrap, HttpConnectionManager } from '../../config/src/index.js';
import { compileAccessLogs, logRequest, type AccessLogger, type AccessLogEntry } from './access-log/index.js';
import type { LineSink } from './access-log/sink.js';
import { decodeTracing } from './tracing/config.js';
import { createProvider, RequestTracer, type TracerProviderHandle } from './tracing/tracer.js';
import type { RequestView, StreamView } from './types.js';

export type { StreamView, RequestView, LogContext } from './types.js';
export { parseFormat, DEFAULT_FORMAT, compileAccessLogs, compileFilter, compileJsonFormat, LineSink, type AccessLogEntry, type AccessLogger } from './access-log/index.js';
export { decodeTracing, type TracingConfig } from './tracing/config.js';
export { extract, parseTraceparent, parseB3, formatTraceparent } from './tracing/propagation.js';

type Hook = (stream: StreamView, request: RequestView) => void;

/** Telemetry of one HTTP connection manager: what its requests run at start and end. */
export interface HcmTelemetry {
  /** Before routing; may write `traceparent`/`tracestate` into request.headers. Undefined when tracing is off. */
  readonly onRequestStart: Hook | undefined;
  /** Once per finished request (access log, span end). */
  readonly onRequestDone: Hook | undefined;
}

/**
 * Telemetry beyond stats (access logs, tracing): installed by the proxy's composition
 * root. Hooks are undefined when nothing is configured, so the request path builds
 * nothing for them.
 */
export interface TelemetryHooks extends HcmTelemetry {
  /**
   * Telemetry for one HCM, e.g. of a listener that arrived over LDS. Compiles formats,
   * opens files and shares tracer providers with the bootstrap's; throws an Error naming
   * the field when the HCM's access_log/tracing is invalid (reject the listener).
   */
  forHcm(hcm: HttpConnectionManager, path?: string): HcmTelemetry;
  /**
   * The access log of a session that is not an HTTP request (tcp_proxy's access_log):
   * HCM access logs' loggers, sinks and formats, fed a StreamView of the connection.
   * Undefined for no entries; throws naming the field when they are invalid.
   */
  forAccessLog?(entries: readonly AccessLogEntry[], path: string): Hook | undefined;
  /** Log lines written/dropped per sink, for /stats. */
  stats(): Record<string, number>;
  /** Flushes spans and log lines; closes files. */
  close(): Promise<void>;
}

export class TelemetryConfigError extends Error {}

class Telemetry {
  readonly sinks = new Map<string, LineSink>();
  readonly providers = new Map<string, TracerProviderHandle>();

  constructor(private readonly bootstrap: Bootstrap) {}

  build(hcm: HttpConnectionManager, path: string): HcmTelemetry {
    const errors: string[] = [];
    const loggers = compileAccessLogs(hcm.accessLog as readonly AccessLogEntry[], `${path}.access_log`, errors, this.sinks);
    const tracing = decodeTracing(hcm.tracing, `${path}.tracing`, this.bootstrap, errors);
    if (errors.length > 0) throw new TelemetryConfigError(errors.join('\n'));
    let tracer: RequestTracer | undefined;
    if (tracing) {
      // The OpenTelemetry SDK loads with the first provider (tracing/tracer.ts).
      const key = `${tracing.collector}|${tracing.serviceName}`;
      let p = this.providers.get(key);
      if (!p) {
        p = createProvider(tracing.collector, tracing.serviceName, this.bootstrap.node.id);
        this.providers.set(key, p);
      }
      tracer = new RequestTracer(tracing, p.tracer);
    }
    return hooksFor(loggers, tracer);
  }

  stats(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [target, s] of this.sinks) {
      const name = target.replace(/[^A-Za-z0-9_]/g, '_');
      out[`access_log.${name}.written`] = s.stats.written;
      out[`access_log.${name}.dropped`] = s.stats.dropped;
      out[`access_log.${name}.write_errors`] = s.stats.writeErrors;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.providers.values()].map((p) => p.shutdown().catch(() => undefined)));
    await Promise.all([...this.sinks.values()].map((s) => s.close()));
  }
}

/** Builds the two closures a request calls; nothing is allocated for parts that are off. */
export function hooksFor(loggers: readonly AccessLogger[], tracer: RequestTracer | undefined): HcmTelemetry {
  const onRequestStart: Hook | undefined = tracer ? (s, r) => tracer.onRequestStart(s, r) : undefined;
  let onRequestDone: Hook | undefined;
  if (loggers.length > 0 && tracer) {
    onRequestDone = (stream, request) => {
      tracer.onRequestDone(stream);
      logRequest(loggers, { stream, request, endTime: performance.now() });
    };
  } else if (loggers.length > 0) {
    onRequestDone = (stream, request) => logRequest(loggers, { stream, request, endTime: performance.now() });
  } else if (tracer) {
    onRequestDone = (stream) => tracer.onRequestDone(stream);
  }
  return { onRequestStart, onRequestDone };
}

function httpManagers(bootstrap: Bootstrap): { hcm: HttpConnectionManager; path: string; port: number }[] {
  const out: { hcm: HttpConnectionManager; path: string; port: number }[] = [];
  bootstrap.staticResources.listeners.forEach((l, i) => {
    const chains = [...l.filterChains.map((fc, j) => ({ fc, p: `filter_chains[${j}]` })), ...(l.defaultFilterChain ? [{ fc: l.defaultFilterChain, p: 'default_filter_chain' }] : [])];
    for (const { fc, p } of chains) {
      if (fc.network.kind === 'http') out.push({ hcm: fc.network, path: `static_resources.listeners[${i}].${p}.filters[0].typed_config`, port: l.address.port });
    }
  });
  return out;
}

/**
 * Compiles the access logs and tracing of every static listener's HCM. The global hooks
 * dispatch by the request's local port (the listener it arrived on); with one configured
 * HCM (or listeners bound to port 0) that HCM's telemetry applies to every request.
 * Per-HCM wiring (forHcm) is exact and is what LDS listeners need.
 */
export async function installTelemetry(bootstrap: Bootstrap): Promise<TelemetryHooks> {
  const t = new Telemetry(bootstrap);
  const byPort = new Map<number, HcmTelemetry>();
  const configured: HcmTelemetry[] = [];
  try {
    for (const { hcm, path, port } of httpManagers(bootstrap)) {
      const h = t.build(hcm, path);
      if (!h.onRequestStart && !h.onRequestDone) continue;
      configured.push(h);
      if (port !== 0 && !byPort.has(port)) byPort.set(port, h);
    }
  } catch (e) {
    await t.close();
    throw e;
  }
  const base = {
    forHcm: (hcm: HttpConnectionManager, path = 'http_connection_manager') => t.build(hcm, path),
    forAccessLog: (entries: readonly AccessLogEntry[], path: string): Hook | undefined => {
      const errors: string[] = [];
      const loggers = compileAccessLogs(entries, path, errors, t.sinks);
      if (errors.length > 0) throw new TelemetryConfigError(errors.join('\n'));
      return loggers.length === 0 ? undefined : (stream, request) => logRequest(loggers, { stream, request, endTime: performance.now() });
    },
    stats: () => t.stats(), close: () => t.close() };
  if (configured.length === 0) return { onRequestStart: undefined, onRequestDone: undefined, ...base };
  if (configured.length === 1) return { ...configured[0]!, ...base };
  const pick = (s: StreamView): HcmTelemetry | undefined => (s.downstreamLocalPort !== undefined ? byPort.get(s.downstreamLocalPort) : undefined);
  const anyStart = configured.some((h) => h.onRequestStart);
  return {
    onRequestStart: anyStart ? (s, r) => pick(s)?.onRequestStart?.(s, r) : undefined,
    onRequestDone: (s, r) => pick(s)?.onRequestDone?.(s, r),
    ...base,
  };
}
export { FlowLog, parseFlowFormat, flowResponseFlags, DEFAULT_FLOW_FORMAT, FLOW_COMMANDS, type FlowFormat, type FlowRecordView } from './flow-records.js';
