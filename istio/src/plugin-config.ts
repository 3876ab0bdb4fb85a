/**
 * Decodes Istio's `stats.PluginConfig` (istio/proxy
 * source/extensions/filters/http/istio_stats/config.proto), the configuration of the
 * `istio.stats` HTTP and network filters, from proto3 JSON. Unknown fields are reported
 * by path; expressions outside the supported subset are warnings (Istio skips them too).
 */
import { ObjectReader, type Diagnostics } from '../../config/src/index.js';
import { compileExpr, type CompiledExpr } from './expr.js';

export interface MetricOverride {
  /** Standard metric name without the istio_ prefix (`requests_total`); "" = every metric. */
  readonly name: string;
  readonly drop: boolean;
  readonly tagsToRemove: readonly string[];
  /** Tag name -> expression, in tag-name order (Istio sorts them). */
  readonly dimensions: readonly { readonly tag: string; readonly expr: CompiledExpr | undefined; readonly source: string }[];
}

export interface StatsPluginConfig {
  readonly disableHostHeaderFallback: boolean;
  /** Milliseconds between periodic TCP reports (Istio's default 5 s in the filter). */
  readonly tcpReportingMs: number;
  readonly reporter: 'UNSPECIFIED' | 'SERVER_GATEWAY';
  readonly metrics: readonly MetricOverride[];
}

/** The standard metrics, by the short names overrides use. */
export const STANDARD_METRICS = [
  'requests_total', 'request_duration_milliseconds', 'request_bytes', 'response_bytes',
  'request_messages_total', 'response_messages_total',
  'tcp_connections_opened_total', 'tcp_connections_closed_total', 'tcp_sent_bytes_total', 'tcp_received_bytes_total',
] as const;

export function decodeStatsPluginConfig(config: Readonly<Record<string, unknown>>, diag: Diagnostics, path: string): StatsPluginConfig | undefined {
  const r = ObjectReader.of(config, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const disableHostHeaderFallback = r.bool('disable_host_header_fallback', false);
  const tcpReportingMs = r.duration('tcp_reporting_duration', 5000) ?? 5000;
  const rep = r.get('reporter');
  let reporter: StatsPluginConfig['reporter'] = 'UNSPECIFIED';
  if (rep === 'SERVER_GATEWAY' || rep === 1) reporter = 'SERVER_GATEWAY';
  else if (rep !== undefined && rep !== 'UNSPECIFIED' && rep !== 0) diag.error(r.child('reporter'), `expected UNSPECIFIED or SERVER_GATEWAY, got ${JSON.stringify(rep)}`);
  // Scope rotation bounds memory in Envoy; pilotfish bounds each metric's series instead.
  r.accept('rescoping_duration', 'scope_grace_period_duration', 'rotation_interval', 'graceful_deletion_interval');
  const metrics: MetricOverride[] = [];
  r.objects('metrics').forEach((m) => {
    const name = m.string('name', '');
    if (name !== '' && !(STANDARD_METRICS as readonly string[]).includes(name)) diag.warn(m.child('name'), `"${name}" is not a standard Istio metric; the override applies to nothing`);
    const drop = m.bool('drop', false);
    const tagsToRemove = m.strings('tags_to_remove');
    const match = m.string('match', '');
    if (match !== '') diag.warn(m.child('match'), 'not implemented by Istio either; ignored');
    const dims: MetricOverride['dimensions'][number][] = [];
    const d = m.object('dimensions');
    if (d) {
      for (const tag of Object.keys(d.raw).sort()) {
        const source = d.string(tag, '');
        const c = compileExpr(source);
        if (!c.ok) diag.warn(d.child(tag), `${c.reason}: the tag is left out, as Istio does`);
        dims.push({ tag, expr: c.ok ? c.eval : undefined, source });
      }
      d.finish();
    }
    m.finish();
    metrics.push({ name, drop, tagsToRemove, dimensions: dims });
  });
  const defs = r.array('definitions');
  if (defs.length > 0) diag.warn(r.child('definitions'), 'custom metric definitions are not supported by pilotfish; ignored');
  r.finish();
  if (diag.errors.length > before) return undefined;
  return { disableHostHeaderFallback, tcpReportingMs, reporter, metrics };
}
