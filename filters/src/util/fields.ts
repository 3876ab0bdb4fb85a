import { decodeFractionalPercent, ObjectReader, type Diagnostics } from '../../../config/src/index.js';

/**
 * What is left of the filters' own readers. Built-in filters decode with config/'s ObjectReader
 * (path-prefixed problems, unknown fields warned, case-insensitive enums); raw/str/int/isObj
 * remain for the user-filter config (filters/src/user) and the chain builder until they move too.
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

export function str(o: Obj, name: string, diag: Diagnostics, path: string): string | undefined {
  const v = raw(o, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    diag.error(`${path}.${name}`, 'must be a string');
    return undefined;
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

/** One header value as a string (multi-valued headers joined the way Envoy compares them). */
export function headerValue(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}
