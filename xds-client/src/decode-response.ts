import { Diagnostics, formatProblem, type Problem } from '../../config/src/index.js';
import { decodeResourceJson, type WireAny } from './protos.js';
import type { ResourceEntry, ResourceType } from './resource-type.js';

export interface RawResource {
  /** Known for delta responses; SotW resources are named by their content. */
  readonly name?: string;
  readonly version: string;
  readonly any: WireAny;
  /** Position in the response, for problem paths (defaults to the position in `raws`). */
  readonly index?: number;
}

export type DecodedResources<T> =
  | { readonly ok: true; readonly entries: ResourceEntry<T>[] }
  | { readonly ok: false; readonly errors: readonly Problem[]; readonly detail: string };

/**
 * Decodes all resources of one response. One bad resource rejects the whole response
 * (as Envoy does): the last good config keeps serving and the NACK says why.
 */
export function decodeResources<T>(type: ResourceType<T>, raws: readonly RawResource[]): DecodedResources<T> {
  const diag = new Diagnostics();
  const entries: ResourceEntry<T>[] = [];
  const seen = new Set<string>();
  raws.forEach((raw, i) => {
    const path = `resources[${raw.index ?? i}]`;
    if (raw.any.type_url !== type.typeUrl) {
      diag.error(path, `type ${raw.any.type_url} in a response for ${type.typeUrl}`);
      return;
    }
    let json: Record<string, unknown>;
    try {
      json = decodeResourceJson(type.typeUrl, raw.any.value);
    } catch (e) {
      diag.error(path, `cannot decode: ${(e as Error).message}`);
      return;
    }
    const name = raw.name ?? type.name(json);
    if (name === undefined || name === '') {
      diag.error(path, 'resource has no name');
      return;
    }
    if (seen.has(name)) {
      diag.error(path, `duplicate resource name "${name}"`);
      return;
    }
    seen.add(name);
    const before = diag.errors.length;
    const value = type.decode(json, diag, path);
    if (value === undefined || diag.errors.length > before) {
      if (diag.errors.length === before) diag.error(path, `resource "${name}" is invalid`);
      return;
    }
    entries.push(new AcceptedResource(name, raw.version, value, raw.any.value, type));
  });
  if (diag.errors.length > 0) {
    const detail = diag.errors.slice(0, 20).map(formatProblem).join('; ') + (diag.errors.length > 20 ? `; ... ${diag.errors.length - 20} more` : '');
    return { ok: false, errors: diag.errors, detail };
  }
  return { ok: true, entries };
}

/**
 * An accepted resource. Its proto3-JSON is decoded again from the wire bytes when
 * /config_dump asks for it instead of being kept: the JSON tree of a cluster's load
 * assignment (10 endpoints) is ~3 KB of heap, for a page read rarely (bench/memory/clusters.ts).
 * The decoded value of a type with `keepDecoded: false` (EDS) is held weakly: read when
 * the response is applied, then again only when its cluster changes, ~2 KB per cluster
 * that the data plane's own endpoint set makes redundant in between.
 */
class AcceptedResource<T> implements ResourceEntry<T> {
  /**
   * The decoded value, or for types that do not keep it (`keepDecoded: false`) a WeakRef
   * to it (one field for both: one record per resource, thousands of them). A decoded
   * resource is a plain object, never a WeakRef.
   */
  private held: T | WeakRef<T & object>;

  constructor(
    readonly name: string,
    readonly version: string,
    value: T,
    readonly bytes: Uint8Array,
    private readonly type: ResourceType<T>,
  ) {
    this.held = type.keepDecoded === false && typeof value === 'object' && value !== null ? new WeakRef(value) : value;
  }

  get value(): T {
    const h = this.held;
    if (!(h instanceof WeakRef)) return h;
    const live = h.deref();
    if (live !== undefined) return live;
    // Accepted once, so it decodes again without problems: the same bytes, the same decoder.
    const again = this.type.decode(decodeResourceJson(this.type.typeUrl, this.bytes), new Diagnostics(), '') as T & object;
    this.held = new WeakRef(again);
    return again;
  }

  get json(): Readonly<Record<string, unknown>> {
    return { '@type': this.type.typeUrl, ...decodeResourceJson(this.type.typeUrl, this.bytes) };
  }
}
