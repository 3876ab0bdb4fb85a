import type { TypedExtension } from './model.js';
import { ObjectReader, describe } from './reader.js';
import type { Diagnostics } from './validation.js';

const TYPED_STRUCT_URLS = new Set([
  'type.googleapis.com/xds.type.v3.TypedStruct',
  'type.googleapis.com/udpa.type.v1.TypedStruct',
]);

export const TYPE_PREFIX = 'type.googleapis.com/';

/** Short name of a type URL: `type.googleapis.com/a.b.C` -> `a.b.C`. */
export function typeName(typeUrl: string): string {
  const slash = typeUrl.lastIndexOf('/');
  return slash < 0 ? typeUrl : typeUrl.slice(slash + 1);
}

/**
 * Decodes a `google.protobuf.Any` in proto3 JSON (`{"@type": url, ...fields}`),
 * unwrapping a TypedStruct to its inner type URL and `value`.
 */
export function decodeAny(value: unknown, diag: Diagnostics, path: string): { typeUrl: string; config: Record<string, unknown> } | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    diag.error(path, `expected an object with "@type", got ${describe(value)}`);
    return undefined;
  }
  const o = value as Record<string, unknown>;
  const typeUrl = o['@type'];
  if (typeof typeUrl !== 'string' || typeUrl === '') {
    diag.error(path, 'missing "@type"');
    return undefined;
  }
  if (TYPED_STRUCT_URLS.has(typeUrl)) {
    const inner = o['type_url'] ?? o['typeUrl'];
    if (typeof inner !== 'string' || inner === '') {
      diag.error(`${path}.type_url`, 'TypedStruct needs a type_url');
      return undefined;
    }
    const v = o['value'] ?? {};
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      diag.error(`${path}.value`, `expected an object, got ${describe(v)}`);
      return undefined;
    }
    return { typeUrl: inner, config: v as Record<string, unknown> };
  }
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (k !== '@type') config[k] = v;
  return { typeUrl, config };
}

/** An extension `{name, typed_config}` as found in filters, transport sockets, bootstrap extensions. */
export function decodeTypedExtension(r: ObjectReader, required: boolean): TypedExtension | undefined {
  const name = r.string('name', '');
  const tc = r.get('typed_config');
  r.finish();
  if (tc === undefined) {
    if (required) r.diag.error(r.child('typed_config'), 'is required');
    return undefined;
  }
  const any = decodeAny(tc, r.diag, r.child('typed_config'));
  if (!any) return undefined;
  return { name: name || typeName(any.typeUrl), typeUrl: any.typeUrl, config: any.config };
}

/** `typed_per_filter_config`: a map of filter name to Any. */
export function decodeTypedMap(r: ObjectReader, field: string): Record<string, TypedExtension> {
  const m = r.object(field);
  const out: Record<string, TypedExtension> = {};
  if (!m) return out;
  for (const key of Object.keys(m.raw)) {
    const path = m.child(key);
    // A FilterConfig wrapper ({config, disabled, is_optional}) is kept whole: filters/ decodes it.
    const any = decodeAny(m.get(key), r.diag, path);
    if (any) out[key] = { name: key, typeUrl: any.typeUrl, config: any.config };
  }
  return out;
}

/** Reads an object field that is itself a proto message given as plain JSON (e.g. a sub-config). */
export function reader(value: unknown, path: string, diag: Diagnostics): ObjectReader | undefined {
  return ObjectReader.of(value, path, diag);
}
