/**
 * The control plane's resource store: per type URL, each resource's encoded bytes and a
 * content version; a per-type version that moves when anything of that type changes.
 * Updates report exactly which names changed, so streams push only those.
 */
import { createHash } from 'node:crypto';
import { encodeJson } from '../../xds-client/src/index.js';

export interface StoredResource {
  readonly name: string;
  readonly version: string;
  readonly bytes: Uint8Array;
  readonly json: Readonly<Record<string, unknown>>;
}

export interface TypeChange {
  readonly typeUrl: string;
  readonly version: number;
  readonly changed: readonly string[];
  readonly removed: readonly string[];
}

export class ResourceStore {
  private readonly types = new Map<string, Map<string, StoredResource>>();
  private readonly versions = new Map<string, number>();
  /** Encodings of the last JSON per name: most updates leave most resources alone. */
  private readonly lastJson = new Map<string, Map<string, string>>();

  typeUrls(): string[] {
    return [...this.types.keys()];
  }

  version(typeUrl: string): number {
    return this.versions.get(typeUrl) ?? 0;
  }

  resources(typeUrl: string): ReadonlyMap<string, StoredResource> {
    return this.types.get(typeUrl) ?? new Map();
  }

  /** Replaces the whole set of a type. */
  replace(typeUrl: string, resources: ReadonlyMap<string, Readonly<Record<string, unknown>>>): TypeChange {
    const cur = this.types.get(typeUrl) ?? new Map<string, StoredResource>();
    const removed = [...cur.keys()].filter((n) => !resources.has(n));
    return this.update(typeUrl, resources, removed);
  }

  /** Upserts some resources and removes others. */
  update(typeUrl: string, upsert: ReadonlyMap<string, Readonly<Record<string, unknown>>>, remove: readonly string[]): TypeChange {
    let cur = this.types.get(typeUrl);
    if (cur === undefined) this.types.set(typeUrl, (cur = new Map()));
    let texts = this.lastJson.get(typeUrl);
    if (texts === undefined) this.lastJson.set(typeUrl, (texts = new Map()));
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [name, json] of upsert) {
      const text = JSON.stringify(json);
      if (texts.get(name) === text && cur.has(name)) continue;
      const bytes = encodeJson(typeUrl, json as Record<string, unknown>);
      const version = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
      texts.set(name, text);
      if (cur.get(name)?.version === version) continue;
      cur.set(name, { name, version, bytes, json });
      changed.push(name);
    }
    for (const name of remove) {
      if (cur.delete(name)) removed.push(name);
      texts.delete(name);
    }
    let v = this.versions.get(typeUrl) ?? 0;
    if (changed.length > 0 || removed.length > 0 || !this.versions.has(typeUrl)) this.versions.set(typeUrl, ++v);
    return { typeUrl, version: v, changed, removed };
  }
}
