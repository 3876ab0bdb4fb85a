/**
 * Protobuf's MergeFrom on the JSON/YAML form of a message, as Envoy applies
 * `--config-yaml` over the file given with `-c`: message fields (and maps) merge field by
 * field, repeated fields append, scalars from the override replace. Field names may be
 * snake_case or camelCase on either side; the override's spelling wins.
 */
export function protoMerge(base: unknown, override: unknown): unknown {
  if (Array.isArray(base) && Array.isArray(override)) return [...base, ...override];
  if (!isObject(base) || !isObject(override)) return override === undefined ? base : override;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(override)) {
    const existing = Object.hasOwn(out, k) ? k : sameField(out, k);
    if (existing === undefined) {
      out[k] = v;
      continue;
    }
    const merged = protoMerge(out[existing], v);
    if (existing !== k) delete out[existing];
    out[k] = merged;
  }
  return out;
}

function sameField(o: Record<string, unknown>, key: string): string | undefined {
  const canonical = toSnake(key);
  for (const k of Object.keys(o)) if (toSnake(k) === canonical) return k;
  return undefined;
}

function toSnake(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
