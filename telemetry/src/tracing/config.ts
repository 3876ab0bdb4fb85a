/**
 * HCM `tracing` (Envoy's HttpConnectionManager.Tracing) -> what the tracer needs.
 * Only `envoy.tracers.opentelemetry` is supported; its `grpc_service` names either a
 * static cluster (`envoy_grpc.cluster_name`, first endpoint) or a `google_grpc.target_uri`.
 */
import type { Bootstrap } from '../../../config/src/index.js';


export interface TracingConfig {
  /** host:port of the OTLP/gRPC collector. */
  readonly collector: string;
  readonly serviceName: string;
  /** Percentages 0..100, Envoy's defaults 100. */
  readonly randomSampling: number;
  readonly clientSampling: number;
  readonly overallSampling: number;
  readonly spawnUpstreamSpan: boolean;
  /** custom_tags with a literal value. */
  readonly literalTags: Readonly<Record<string, string>>;
  /** custom_tags from request headers: tag -> header name. */
  readonly headerTags: Readonly<Record<string, string>>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
function field(o: Obj, snake: string): unknown {
  return o[snake] ?? o[snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
}

const OTEL_TYPES = new Set(['envoy.config.trace.v3.OpenTelemetryConfig']);

/** envoy.type.v3.Percent {value} -> 0..100 */
function percent(raw: unknown, path: string, errors: string[], fallback: number): number {
  if (raw === undefined) return fallback;
  const v = isObj(raw) ? raw.value : raw;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 100) {
    errors.push(`${path}.value: expected a percentage 0..100`);
    return fallback;
  }
  return n;
}

function collectorOf(grpc: unknown, path: string, bootstrap: Bootstrap, errors: string[]): string | undefined {
  if (!isObj(grpc)) {
    errors.push(`${path}: is required (the OTLP/gRPC collector)`);
    return undefined;
  }
  const envoyGrpc = field(grpc, 'envoy_grpc');
  const googleGrpc = field(grpc, 'google_grpc');
  if (isObj(envoyGrpc)) {
    const name = field(envoyGrpc, 'cluster_name');
    const cluster = bootstrap.staticResources.clusters.find((c) => c.name === name);
    const ep = cluster?.loadAssignment?.endpoints[0]?.lbEndpoints[0];
    if (!cluster || !ep) {
      errors.push(`${path}.envoy_grpc.cluster_name: "${String(name)}" must name a static cluster with an endpoint`);
      return undefined;
    }
    const a = ep.address.address;
    return `${a.includes(':') ? `[${a}]` : a}:${ep.address.port}`;
  }
  if (isObj(googleGrpc)) {
    const uri = field(googleGrpc, 'target_uri');
    if (typeof uri !== 'string' || uri === '') {
      errors.push(`${path}.google_grpc.target_uri: is required`);
      return undefined;
    }
    return uri.replace(/^(dns:\/\/\/|dns:|ipv4:|http:\/\/)/, '');
  }
  errors.push(`${path}: expected envoy_grpc or google_grpc`);
  return undefined;
}

/** Returns undefined (and maybe errors) when tracing is absent or unusable. */
export function decodeTracing(raw: Readonly<Obj> | undefined, path: string, bootstrap: Bootstrap, errors: string[]): TracingConfig | undefined {
  if (raw === undefined) return undefined;
  const provider = field(raw, 'provider');
  if (!isObj(provider)) {
    // `tracing: {}` without a provider: Envoy keeps tracing off too.
    return undefined;
  }
  const tc = field(provider, 'typed_config');
  const typeUrl = isObj(tc) ? String(tc['@type'] ?? '') : '';
  const type = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  if (!isObj(tc) || !OTEL_TYPES.has(type)) {
    errors.push(`${path}.provider.typed_config: tracer ${type || String(field(provider, 'name'))} not supported by pilotfish (supported: envoy.config.trace.v3.OpenTelemetryConfig)`);
    return undefined;
  }
  const collector = collectorOf(field(tc, 'grpc_service'), `${path}.provider.typed_config.grpc_service`, bootstrap, errors);
  if (collector === undefined) return undefined;
  const literalTags: Record<string, string> = {};
  const headerTags: Record<string, string> = {};
  const tags = field(raw, 'custom_tags');
  if (Array.isArray(tags)) {
    tags.forEach((t, i) => {
      if (!isObj(t) || typeof t.tag !== 'string') return void errors.push(`${path}.custom_tags[${i}].tag: is required`);
      const lit = field(t, 'literal');
      const hdr = field(t, 'request_header');
      if (isObj(lit) && typeof lit.value === 'string') literalTags[t.tag] = lit.value;
      else if (isObj(hdr) && typeof hdr.name === 'string') headerTags[t.tag] = hdr.name.toLowerCase();
      else errors.push(`${path}.custom_tags[${i}]: only literal and request_header tags are supported`);
    });
  }

  return {
    collector,
    serviceName: typeof field(tc, 'service_name') === 'string' ? (field(tc, 'service_name') as string) : bootstrap.node.cluster || 'pilotfish',
    randomSampling: percent(field(raw, 'random_sampling'), `${path}.random_sampling`, errors, 100),
    clientSampling: percent(field(raw, 'client_sampling'), `${path}.client_sampling`, errors, 100),
    overallSampling: percent(field(raw, 'overall_sampling'), `${path}.overall_sampling`, errors, 100),
    spawnUpstreamSpan: field(raw, 'spawn_upstream_span') === true || (isObj(field(raw, 'spawn_upstream_span')) && (field(raw, 'spawn_upstream_span') as Obj).value === true),
    literalTags,
    headerTags,
  };
}
