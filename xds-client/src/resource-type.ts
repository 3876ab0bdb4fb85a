import type { Diagnostics } from '../../config/src/index.js';

/**
 * A resource type as a plugin: its type URL and a decoder from proto3-JSON to our model.
 * Decoders never throw; they report path-prefixed problems into `diag`, and those become
 * the NACK's error_detail.
 */
export interface ResourceType<T = unknown> {
  readonly typeUrl: string;
  /** Stat prefix: lds, rds, cds, eds, sds, leds, ecds, ... */
  readonly statName: string;
  /**
   * SotW only: every response carries the complete set (LDS, CDS), so a resource missing
   * from a response has been removed. For RDS/EDS a response may carry a subset.
   */
  readonly allResourcesRequired: boolean;
  /** The resource's name as written inside it (SotW responses carry no separate name). */
  name(json: Readonly<Record<string, unknown>>): string | undefined;
  decode(json: Readonly<Record<string, unknown>>, diag: Diagnostics, path: string): T | undefined;
  /**
   * false: the decoded value is held weakly once applied and decoded again from the wire
   * bytes when read after a GC (EDS: a cluster's load assignment is ~2 KB of heap, read
   * again only when its cluster changes; the data plane keeps its own endpoint set).
   */
  readonly keepDecoded?: boolean;
}

/** One accepted resource as the protocol state keeps it. */
export interface ResourceEntry<T = unknown> {
  readonly name: string;
  readonly version: string;
  readonly value: T;
  /** proto3-JSON as received, with "@type" (for /config_dump; may be decoded from `bytes` on each read). */
  readonly json: Readonly<Record<string, unknown>>;
  /** The wire bytes: equal bytes mean an unchanged resource. */
  readonly bytes: Uint8Array;
}

/** What one accepted response changed for its type. */
export interface ResourceChanges<T = unknown> {
  readonly typeUrl: string;
  readonly upserted: readonly ResourceEntry<T>[];
  readonly removed: readonly string[];
}

export const TYPE_URLS = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  lbEndpoint: 'type.googleapis.com/envoy.config.endpoint.v3.LbEndpoint',
  extensionConfig: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
} as const;

/**
 * Collection names (xdstp glob `.../*`) match every resource below them; other names
 * match only themselves.
 */
export function nameMatches(subscription: string, name: string): boolean {
  if (subscription === name) return true;
  return subscription.endsWith('/*') && name.startsWith(subscription.slice(0, -1)) && name.length > subscription.length - 1;
}

const hasGlobs = new WeakMap<ReadonlySet<string>, boolean>();

/**
 * Whether `name` is covered by a subscription set, in O(1) for plain names and
 * O(depth of the name) when the set holds collection globs — not a scan of the set.
 * Subscription sets are never mutated after they are made (states replace them), so
 * whether a set holds globs is worked out once per set.
 */
export function subscribedTo(names: ReadonlySet<string>, name: string): boolean {
  if (names.has(name)) return true;
  let globs = hasGlobs.get(names);
  if (globs === undefined) {
    globs = false;
    for (const n of names) {
      if (n.endsWith('/*')) {
        globs = true;
        break;
      }
    }
    hasGlobs.set(names, globs);
  }
  if (!globs) return false;
  // Every enclosing collection of the name: ".../a/*" for each "/" with something after it.
  for (let i = name.indexOf('/'); i >= 0 && i < name.length - 1; i = name.indexOf('/', i + 1)) {
    if (names.has(name.slice(0, i + 1) + '*')) return true;
  }
  return false;
}

/** The xdstp collection (`.../*`) an entry of a collection belongs to. */
export function collectionOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? name : name.slice(0, i + 1) + '*';
}
