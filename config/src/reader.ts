import type { Diagnostics } from './validation.js';

/**
 * A cursor over one proto3-JSON object. It records which fields a decoder read, so
 * that every field pilotfish does not understand is reported by its path instead of
 * being silently ignored. Field names are accepted in snake_case (Envoy's YAML) and
 * lowerCamelCase (proto3 JSON), as Envoy does.
 */
export class ObjectReader {
  private readonly consumed = new Set<string>();

  private constructor(
    readonly raw: Readonly<Record<string, unknown>>,
    readonly path: string,
    readonly diag: Diagnostics,
  ) {}

  /** Returns a reader, or reports an error and returns undefined when `value` is not an object. */
  static of(value: unknown, path: string, diag: Diagnostics): ObjectReader | undefined {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      diag.error(path, `expected an object, got ${describe(value)}`);
      return undefined;
    }
    return new ObjectReader(value as Record<string, unknown>, path, diag);
  }

  child(name: string): string {
    return this.path === '' ? name : `${this.path}.${name}`;
  }

  has(name: string): boolean {
    return this.lookupKey(name) !== undefined;
  }

  /** Raw value of a field (marks it as read). */
  get(name: string): unknown {
    const key = this.lookupKey(name);
    if (key === undefined) return undefined;
    this.consumed.add(key);
    const v = this.raw[key];
    return v === null ? undefined : v;
  }

  /** Marks fields as understood without reading them (e.g. documentation-only fields). */
  accept(...names: string[]): void {
    for (const n of names) {
      const key = this.lookupKey(n);
      if (key !== undefined) this.consumed.add(key);
    }
  }

  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') {
      this.diag.error(this.child(name), `expected a string, got ${describe(v)}`);
      return fallback;
    }
    return v;
  }

  requiredString(name: string): string | undefined {
    const v = this.string(name);
    if (v === undefined) this.diag.error(this.child(name), 'is required');
    else if (v === '') this.diag.error(this.child(name), 'must not be empty');
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    let v = this.get(name);
    if (v === undefined) return fallback;
    if (isWrapper(v)) v = v.value; // google.protobuf.BoolValue
    if (typeof v !== 'boolean') {
      this.diag.error(this.child(name), `expected true or false, got ${describe(v)}`);
      return fallback;
    }
    return v;
  }

  /** An integer field (uint32/int64, plain or as a wrapper type; int64 may be a string in proto3 JSON). */
  int(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.get(name);
    if (v === undefined) return fallback;
    const n = toInteger(v);
    if (n === undefined) {
      this.diag.error(this.child(name), `expected an integer, got ${describe(v)}`);
      return fallback;
    }
    if (n < min || n > max) {
      this.diag.error(this.child(name), `must be between ${min} and ${max}, got ${n}`);
      return fallback;
    }
    return n;
  }

  optionalInt(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (!this.has(name)) return undefined;
    const n = this.int(name, Number.NaN, min, max);
    return Number.isNaN(n) ? undefined : n;
  }

  /** A double field (plain or DoubleValue wrapper). */
  number(name: string, fallback: number, min = -Infinity, max = Infinity): number {
    let v = this.get(name);
    if (v === undefined) return fallback;
    if (isWrapper(v)) v = v.value;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      this.diag.error(this.child(name), `expected a number, got ${describe(v)}`);
      return fallback;
    }
    if (n < min || n > max) {
      this.diag.error(this.child(name), `must be between ${min} and ${max}, got ${n}`);
      return fallback;
    }
    return n;
  }

  /** A google.protobuf.Duration: "1.5s" (proto3 JSON) or {seconds, nanos}; returns milliseconds. */
  duration(name: string): number | undefined;
  duration(name: string, fallback: number): number;
  duration(name: string, fallback?: number): number | undefined {
    const v = this.get(name);
    if (v === undefined) return fallback;
    const ms = parseDuration(v);
    if (ms === undefined) {
      this.diag.error(this.child(name), `expected a duration like "5s" or "0.25s", got ${describe(v)}`);
      return fallback;
    }
    return ms;
  }

  /**
   * An enum by name (or by its number, as proto3 JSON permits). `values` lists the names in
   * proto number order; `null` marks a number Envoy retired (so it is never offered in the
   * error text nor accepted). Names match case-insensitively, as Envoy's YAML loader does
   * (`lb_policy: round_robin`).
   */
  enumOf<E extends string>(name: string, values: readonly (E | null)[], fallback: E): E {
    const v = this.get(name);
    if (v === undefined) return fallback;
    const found = enumValue(v, values);
    if (found !== undefined) return found;
    this.diag.error(this.child(name), `expected one of ${values.filter((x) => x !== null).join(', ')}, got ${describe(v)}`);
    return fallback;
  }

  object(name: string): ObjectReader | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    return ObjectReader.of(v, this.child(name), this.diag);
  }

  /** Each element of a repeated field, with its indexed path. */
  array(name: string): { value: unknown; path: string }[] {
    const v = this.get(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      // Envoy's JSON/YAML loader takes a lone object where a list of them is expected (Consul's
      // bootstrap writes `grpc_services: {...}`); a scalar is still wrong.
      if (typeof v === 'object') return [{ value: v, path: this.child(name) }];
      this.diag.error(this.child(name), `expected a list, got ${describe(v)}`);
      return [];
    }
    return v.map((value, i) => ({ value, path: `${this.child(name)}[${i}]` }));
  }

  objects(name: string): ObjectReader[] {
    const out: ObjectReader[] = [];
    for (const { value, path } of this.array(name)) {
      const r = ObjectReader.of(value, path, this.diag);
      if (r) out.push(r);
    }
    return out;
  }

  strings(name: string): string[] {
    const out: string[] = [];
    for (const { value, path } of this.array(name)) {
      if (typeof value === 'string') out.push(value);
      else this.diag.error(path, `expected a string, got ${describe(value)}`);
    }
    return out;
  }

  /** Exactly one of several oneof members; reports when more than one is set. */
  oneof(names: readonly string[], required: boolean, what = 'one of'): string | undefined {
    const present = names.filter((n) => this.has(n));
    if (present.length > 1) {
      this.diag.error(this.path, `only one of ${present.join(', ')} may be set`);
      return present[0];
    }
    if (present.length === 0) {
      if (required) this.diag.error(this.path, `${what} ${names.join(', ')} is required`);
      return undefined;
    }
    return present[0];
  }

  /** Warns about every field the decoder did not read: pilotfish never silently ignores config. */
  finish(): void {
    for (const key of this.unread()) this.diag.warn(this.child(key), 'not supported by pilotfish; ignored');
  }

  /**
   * Like finish(), for configs where a typo must not silently weaken security (TLS): a field in
   * `unsupported` (Envoy has it, pilotfish does not) is a warning, any other unread field an error.
   */
  finishStrict(unsupported: readonly string[]): void {
    for (const key of this.unread()) {
      if (unsupported.some((n) => n === key || snakeToCamel(n) === key)) this.diag.warn(this.child(key), 'not supported by pilotfish; ignored');
      else this.diag.error(this.child(key), 'unknown field');
    }
  }

  /** Fields present (not null, not `@type`) that the decoder has not read. */
  unread(): string[] {
    return Object.keys(this.raw).filter((k) => !this.consumed.has(k) && k !== '@type' && this.raw[k] !== null);
  }

  private lookupKey(name: string): string | undefined {
    if (Object.hasOwn(this.raw, name)) return name;
    const camel = snakeToCamel(name);
    if (camel !== name && Object.hasOwn(this.raw, camel)) return camel;
    return undefined;
  }
}

/** Resolves an enum value given by name (any case) or number against `values` (see enumOf); undefined if invalid. */
export function enumValue<E extends string>(v: unknown, values: readonly (E | null)[]): E | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < values.length) return values[v] ?? undefined;
  if (typeof v !== 'string') return undefined;
  const upper = v.toUpperCase();
  return values.find((x): x is E => x !== null && x.toUpperCase() === upper);
}

export function snakeToCamel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isWrapper(v: unknown): v is { value: unknown } {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && 'value' in v;
}

export function toInteger(v: unknown): number | undefined {
  if (isWrapper(v)) v = v.value;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/** proto3 JSON Duration to milliseconds; also the {seconds, nanos} object form of decoded protos. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'string') {
    const m = DURATION.exec(v.trim());
    if (!m || m[1]) return undefined; // negative durations are never meaningful in a proxy config
    const seconds = Number(m[2]);
    const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
    const ms = seconds * 1000 + nanos / 1e6;
    return Number.isFinite(ms) && seconds <= 315_576_000_000 ? ms : undefined;
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.some((k) => k !== 'seconds' && k !== 'nanos')) return undefined;
    const s = o.seconds === undefined ? 0 : toInteger(o.seconds);
    const n = o.nanos === undefined ? 0 : toInteger(o.nanos);
    if (s === undefined || n === undefined || s < 0 || n < 0 || n > 999_999_999) return undefined;
    return s * 1000 + n / 1e6;
  }
  return undefined;
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}
