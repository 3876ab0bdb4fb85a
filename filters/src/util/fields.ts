import { decodeFractionalPercent, ObjectReader, type Diagnostics } from '../../../config/src/index.js';

/**
 * Readers for proto3-JSON config values as written in YAML or sent over xDS. Field names
 * are accepted in snake_case (YAML) and lowerCamelCase (canonical proto3 JSON). Readers
 * report problems under `path` and return a fallback; they never throw.
 */

export type Obj = Readonly<Record<string, unknown>>;

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function raw(o: Obj, name: string): unknown {
  const v = o[name];
  if (v !== undefined) return v;
  return o[camel(name)];
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function obj(o: Obj, name: string, diag: Diagnostics, path: string): Obj | undefined {
  const v = raw(o, name);
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) {
    diag.error(`${path}.${name}`, 'must be an object');
    return undefined;
  }
  return v;
}

export function arr(o: Obj, name: string, diag: Diagnostics, path: string): readonly unknown[] {
  const v = raw(o, name);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    diag.error(`${path}.${name}`, 'must be a list');
    return [];
  }
  return v;
}

export function str(o: Obj, name: string, diag: Diagnostics, path: string): string | undefined {
  const v = raw(o, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    diag.error(`${path}.${name}`, 'must be a string');
    return undefined;
  }
  return v;
}

export function bool(o: Obj, name: string, diag: Diagnostics, path: string, dflt = false): boolean {
  let v = raw(o, name);
  // google.protobuf.BoolValue may arrive wrapped.
  if (isObj(v) && 'value' in v) v = v.value;
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') {
    diag.error(`${path}.${name}`, 'must be a boolean');
    return dflt;
  }
  return v;
}

/** Integers may be strings in proto3 JSON (uint64) or wrapped (UInt32Value). */
export function int(
  o: Obj, name: string, diag: Diagnostics, path: string,
  opts: { min?: number; max?: number } = {},
): number | undefined {
  let v = raw(o, name);
  if (isObj(v) && 'value' in v) v = v.value;
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    diag.error(`${path}.${name}`, 'must be an integer');
    return undefined;
  }
  if (opts.min !== undefined && n < opts.min) {
    diag.error(`${path}.${name}`, `must be >= ${opts.min}`);
    return undefined;
  }
  if (opts.max !== undefined && n > opts.max) {
    diag.error(`${path}.${name}`, `must be <= ${opts.max}`);
    return undefined;
  }
  return n;
}

/** google.protobuf.Duration: "1.5s" in proto3 JSON, or {seconds, nanos}. Returns ms. */
export function duration(o: Obj, name: string, diag: Diagnostics, path: string): number | undefined {
  const v = raw(o, name);
  if (v === undefined || v === null) return undefined;
  const p = `${path}.${name}`;
  if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d{1,9})?)s$/.exec(v);
    if (!m) {
      diag.error(p, `invalid duration "${v}" (expected e.g. "1.5s")`);
      return undefined;
    }
    return Number(m[1]) * 1000;
  }
  if (isObj(v)) {
    const s = int(v, 'seconds', diag, p, { min: 0 }) ?? 0;
    const ns = int(v, 'nanos', diag, p, { min: 0, max: 999_999_999 }) ?? 0;
    return s * 1000 + ns / 1e6;
  }
  diag.error(p, 'must be a duration');
  return undefined;
}

/**
 * envoy.type.v3.FractionalPercent as a fraction in [0,1], by config/'s decoder: the denominator
 * matches case-insensitively and by number, as Envoy's loader does.
 */
export function fractionalPercent(v: unknown, diag: Diagnostics, path: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const before = diag.errors.length;
  const r = ObjectReader.of(v, path, diag);
  const f = r ? decodeFractionalPercent(r) : undefined;
  return diag.errors.length === before ? f : undefined;
}

/** RuntimeFractionalPercent read through an ObjectReader: only default_value (no runtime layer here); 0 without one. */
export function readRuntimeFraction(r: ObjectReader, name: string): number | undefined {
  const o = r.object(name);
  if (!o) return undefined;
  o.accept('runtime_key');
  const dv = o.object('default_value');
  const f = dv ? decodeFractionalPercent(dv) : 0;
  o.finish();
  return f;
}

/** envoy.config.core.v3.RuntimeFractionalPercent: only default_value (no runtime layer here). */
export function runtimeFraction(o: Obj, name: string, diag: Diagnostics, path: string): number | undefined {
  const v = obj(o, name, diag, path);
  if (!v) return undefined;
  const dv = raw(v, 'default_value');
  if (dv === undefined) return 0;
  return fractionalPercent(dv, diag, `${path}.${name}.default_value`);
}

/** envoy.type.v3.Percent {value: 0..100} as a fraction. */
export function percent(v: unknown, diag: Diagnostics, path: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = isObj(v) ? v.value : v;
  if (typeof n !== 'number' || n < 0 || n > 100) {
    diag.error(path, 'must be a percent in [0, 100]');
    return undefined;
  }
  return n / 100;
}

/** One header value as a string (multi-valued headers joined the way Envoy compares them). */
export function headerValue(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}
