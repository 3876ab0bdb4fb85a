/**
 * Envoy's AccessLogFilter (config.accesslog.v3): decided per request before anything is
 * formatted, so a filtered-out request costs a comparison.
 */
import { compileHeaderMatcher, decodeHeaderMatcher, Diagnostics, formatProblem, ObjectReader } from '../../../config/src/index.js';
import type { LogContext } from '../types.js';
import { headerValue } from '../types.js';

export type LogFilter = (ctx: LogContext) => boolean;

type Obj = Record<string, unknown>;

function field(o: Obj, snake: string): unknown {
  if (o[snake] !== undefined) return o[snake];
  const camel = snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return o[camel];
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function unwrapNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  if (isObj(v)) return unwrapNumber(v.value);
  return undefined;
}

/** ComparisonFilter {op: EQ|GE|LE|NE, value: RuntimeUInt32 {default_value, runtime_key}}. */
function comparison(raw: unknown, path: string, errors: string[]): ((n: number) => boolean) | undefined {
  if (!isObj(raw)) {
    errors.push(`${path}: expected {op, value}`);
    return undefined;
  }
  const op = field(raw, 'op') ?? 'EQ';
  const value = field(raw, 'value');
  const n = isObj(value) ? unwrapNumber(field(value, 'default_value')) : unwrapNumber(value);
  if (n === undefined) {
    errors.push(`${path}.value.default_value: expected a number`);
    return undefined;
  }
  switch (op) {
    case 'EQ': case 0: return (x) => x === n;
    case 'GE': case 1: return (x) => x >= n;
    case 'LE': case 2: return (x) => x <= n;
    case 'NE': case 3: return (x) => x !== n;
    default:
      errors.push(`${path}.op: expected EQ, GE, LE or NE, got ${JSON.stringify(op)}`);
      return undefined;
  }
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** FractionalPercent {numerator, denominator} as a probability 0..1. */
export function fraction(raw: unknown, path: string, errors: string[]): number | undefined {
  if (!isObj(raw)) {
    errors.push(`${path}: expected {numerator, denominator}`);
    return undefined;
  }
  const num = unwrapNumber(field(raw, 'numerator')) ?? 0;
  const denRaw = field(raw, 'denominator') ?? 'HUNDRED';
  const den = typeof denRaw === 'number' ? [100, 10_000, 1_000_000][denRaw] : DENOMINATORS[String(denRaw)];
  if (den === undefined) {
    errors.push(`${path}.denominator: expected HUNDRED, TEN_THOUSAND or MILLION`);
    return undefined;
  }
  return Math.min(1, Math.max(0, num / den));
}

/** Compiles one AccessLogFilter; errors are path-prefixed like the config decoders'. */
export function compileFilter(raw: unknown, path: string, errors: string[], random: () => number = Math.random): LogFilter | undefined {
  if (!isObj(raw)) {
    errors.push(`${path}: expected a filter mapping`);
    return undefined;
  }
  const kinds = Object.keys(raw);
  if (kinds.length !== 1) {
    errors.push(`${path}: expected exactly one filter kind, got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`);
    return undefined;
  }
  const kind = kinds[0]!;
  const body = raw[kind];
  const p = `${path}.${kind}`;
  switch (kind) {
    case 'status_code_filter':
    case 'statusCodeFilter': {
      const cmp = comparison(isObj(body) ? body.comparison : undefined, `${p}.comparison`, errors);
      return cmp && ((c) => cmp(c.stream.responseCode));
    }
    case 'duration_filter':
    case 'durationFilter': {
      const cmp = comparison(isObj(body) ? body.comparison : undefined, `${p}.comparison`, errors);
      return cmp && ((c) => cmp(Math.floor(c.endTime - c.stream.startTime)));
    }
    case 'runtime_filter':
    case 'runtimeFilter': {
      // pilotfish has no runtime layer: the default percent_sampled applies (Envoy's default 0% when absent).
      const pct = isObj(body) ? field(body, 'percent_sampled') : undefined;
      const f = pct === undefined ? 0 : fraction(pct, `${p}.percent_sampled`, errors);
      if (f === undefined) return undefined;
      return () => random() < f;
    }
    case 'not_health_check_filter':
    case 'notHealthCheckFilter':
      return (c) => c.request.headers['x-envoy-health-check'] === undefined;
    case 'response_flag_filter':
    case 'responseFlagFilter': {
      const flags = isObj(body) && Array.isArray(body.flags) ? body.flags.map(String) : [];
      if (flags.length === 0) return (c) => c.stream.responseFlags !== '';
      const set = new Set(flags);
      return (c) => c.stream.responseFlags !== '' && c.stream.responseFlags.split(',').some((f) => set.has(f));
    }
    case 'header_filter':
    case 'headerFilter': {
      // HeaderFilter {header: HeaderMatcher}: the config model's matcher, with pseudo-headers read from the request.
      const diag = new Diagnostics();
      const r = isObj(body) ? ObjectReader.of(body.header, `${p}.header`, diag) : undefined;
      if (!isObj(body)) diag.error(`${p}.header`, 'is required');
      const h = r ? decodeHeaderMatcher(r) : undefined;
      for (const e of diag.errors) errors.push(formatProblem(e));
      if (!h || diag.errors.length > 0) return undefined;
      const test = compileHeaderMatcher(h);
      return (c) => test((name) => {
        switch (name) {
          case ':method': return c.request.method;
          case ':path': return c.request.path;
          case ':authority': return c.request.authority;
          case ':scheme': return c.request.scheme;
          case ':status': return String(c.stream.responseCode);
          default: return headerValue(c.request.headers, name);
        }
      });
    }
    case 'and_filter':
    case 'andFilter':
    case 'or_filter':
    case 'orFilter': {
      const subs = isObj(body) && Array.isArray(body.filters) ? body.filters : undefined;
      if (!subs || subs.length < 2) {
        errors.push(`${p}.filters: expected at least two filters`);
        return undefined;
      }
      const compiled = subs.map((s, i) => compileFilter(s, `${p}.filters[${i}]`, errors, random));
      if (compiled.some((f) => f === undefined)) return undefined;
      const fs = compiled as LogFilter[];
      return kind.startsWith('and') ? (c) => fs.every((f) => f(c)) : (c) => fs.some((f) => f(c));
    }
    default:
      // Refuse rather than ignore: an ignored filter would log what the operator excluded.
      errors.push(`${p}: access log filter not supported by pilotfish (supported: status_code_filter, duration_filter, runtime_filter, not_health_check_filter, response_flag_filter, header_filter, and_filter, or_filter)`);
      return undefined;
  }
}
