/**
 * Pure helpers that turn EDS data into the data path's endpoint model and full
 * updates into diffs (design: "Endpoint diffs"). No I/O, no clocks.
 */
import type { ClusterLoadAssignment, Endpoint, EndpointDiff, EnvoyHealthStatus } from './model.js';

const TRANSPORT_SOCKET_MATCH = 'envoy.transport_socket_match';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** metadata.filter_metadata["envoy.transport_socket_match"] of an endpoint (snake or camel case), if an object. */
export function transportSocketMatchOf(metadata: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> | undefined {
  const fm = metadata['filter_metadata'] ?? metadata['filterMetadata'];
  if (fm === null || typeof fm !== 'object' || Array.isArray(fm)) return undefined;
  const m = (fm as Record<string, unknown>)[TRANSPORT_SOCKET_MATCH];
  return m !== null && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, unknown>) : undefined;
}

/** metadata.filter_metadata (namespaces to Structs), for an internal_upstream socket to pass on. */
export function filterMetadataOf(metadata: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  const fm = metadata['filter_metadata'] ?? metadata['filterMetadata'];
  return fm !== null && typeof fm === 'object' && !Array.isArray(fm) ? (fm as Record<string, unknown>) : {};
}

/** Structural equality of JSON values (metadata Structs), key order ignored. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameJson(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.hasOwn(bo, k) && sameJson(ao[k], bo[k]));
}

/** "1.2.3.4:80", "[::1]:80" (an address containing ':' is IPv6 and gets brackets). */
export function endpointKey(address: string, port: number): string {
  // join() makes one flat string; `${address}:${port}` would be a rope (V8 cons strings:
  // 32 bytes per node) kept for the host's life as its key in the endpoint set's Map:
  // ~30 bytes more per endpoint, 10 endpoints per cluster, thousands of clusters.
  return address.includes(':') ? ['[', address, ']:', port].join('') : [address, port].join(':');
}

export function healthFromEnvoy(status: EnvoyHealthStatus): Endpoint['health'] {
  switch (status) {
    case 'HEALTHY':
    case 'UNKNOWN':
      return 'healthy';
    case 'DEGRADED':
      return 'degraded';
    case 'UNHEALTHY':
    case 'TIMEOUT':
      return 'unhealthy';
    case 'DRAINING':
      return 'draining';
  }
}

export function localityKey(l: { readonly region: string; readonly zone: string; readonly subZone: string }): string {
  return `${l.region}/${l.zone}/${l.subZone}`;
}

/**
 * Flattens a ClusterLoadAssignment. An endpoint key listed more than once keeps its
 * first occurrence: the data path identifies endpoints by key, so a duplicate cannot
 * be represented, and keeping the first makes the result independent of later noise.
 * LEDS-backed localities (no inline lb_endpoints) contribute nothing here.
 */
export function flattenLoadAssignment(cla: ClusterLoadAssignment): Endpoint[] {
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  for (const group of cla.endpoints) {
    const locality = localityKey(group.locality);
    const localityWeight = group.loadBalancingWeight ?? 1;
    for (const lb of group.lbEndpoints) {
      // An internal address is its own key ("envoy://listener/endpoint_id").
      const key = lb.address.pipe ? `unix:${lb.address.pipe.path}` : lb.address.internal ? lb.address.address : endpointKey(lb.address.address, lb.address.port);
      if (seen.has(key)) continue;
      seen.add(key);
      const transportSocketMatch = transportSocketMatchOf(lb.metadata);
      // A plain literal, the optional fields added after: a literal with spreads gets
      // room for 12 fields (120 bytes), this one exactly its 9 (96), and every endpoint
      // of every cluster is one of these.
      const e: Mutable<Endpoint> = {
        key,
        address: lb.address.address,
        port: lb.address.port,
        hostname: lb.hostname,
        weight: lb.loadBalancingWeight,
        priority: group.priority,
        locality,
        localityWeight,
        health: healthFromEnvoy(lb.healthStatus),
      };
      if (transportSocketMatch) e.transportSocketMatch = transportSocketMatch;
      if (lb.address.pipe) e.pipe = true;
      if (lb.address.internal) e.internal = { ...lb.address.internal, metadata: filterMetadataOf(lb.metadata) };
      out.push(e);
    }
  }
  return out;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return (
    a.key === b.key &&
    a.address === b.address &&
    a.port === b.port &&
    a.hostname === b.hostname &&
    a.weight === b.weight &&
    a.priority === b.priority &&
    a.locality === b.locality &&
    a.localityWeight === b.localityWeight &&
    a.health === b.health &&
    a.pipe === b.pipe &&
    sameJson(a.transportSocketMatch, b.transportSocketMatch) &&
    sameJson(a.internal, b.internal)
  );
}

/**
 * Turns a full endpoint list (SotW EDS) into a diff against the current state.
 * O(|prev| + |next|): a full update has to look at everything once; what it buys is
 * that the endpoint set then only touches what changed. A key repeated in `next`
 * keeps its first occurrence (as flattenLoadAssignment does).
 */
export function diffEndpoints(
  cluster: string,
  prev: ReadonlyMap<string, Endpoint>,
  next: readonly Endpoint[],
): EndpointDiff {
  const added: Endpoint[] = [];
  const changed: Endpoint[] = [];
  const removed: string[] = [];
  const seen = new Set<string>();
  for (const e of next) {
    if (seen.has(e.key)) continue;
    seen.add(e.key);
    const p = prev.get(e.key);
    if (p === undefined) added.push(e);
    else if (!sameEndpoint(p, e)) changed.push(e);
  }
  for (const key of prev.keys()) if (!seen.has(key)) removed.push(key);
  return { cluster, added, removed, changed };
}

/** Applies a diff to a keyed snapshot, returning a new map (the input is not modified). */
export function applyEndpointDiff(
  prev: ReadonlyMap<string, Endpoint>,
  diff: EndpointDiff,
): Map<string, Endpoint> {
  const out = new Map(prev);
  for (const key of diff.removed) out.delete(key);
  for (const e of diff.added) out.set(e.key, e);
  for (const e of diff.changed) out.set(e.key, e);
  return out;
}
