/**
 * State-of-the-world protocol state for one type URL. Pure: no sockets, timers or
 * clocks. Each function takes a state and returns the next one plus what to send.
 *
 * Rules (xds_protocol.rst): the version is per type and only moves on ACK; the nonce is
 * per stream and is echoed in every request, ACK or NACK; a NACK repeats the last
 * accepted version; a request with the current nonce may change the subscription.
 */
import type { DiscoveryRequest, DiscoveryResponse } from './protos.js';
import { decodeResources, type RawResource } from './decode-response.js';
import type { ResourceChanges, ResourceEntry, ResourceType } from './resource-type.js';
import { subscribedTo } from './resource-type.js';
import { PersistentMap } from './persistent-map.js';

export interface SotwState<T = unknown> {
  readonly typeUrl: string;
  readonly wildcard: boolean;
  readonly names: ReadonlySet<string>;
  /** Last accepted version_info ('' before the first ACK). */
  readonly versionInfo: string;
  /** Nonce of the last response on the current stream ('' on a fresh stream). */
  readonly nonce: string;
  readonly resources: PersistentMap<ResourceEntry<T>>;
  /**
   * Digest of an accepted resource's bytes -> its name. SotW names live inside the
   * bytes, so this is how an unchanged resource is recognised without decoding it.
   * A cache shared by successive states and updated in place (copying it per response
   * would cost O(resources) even for a partial EDS response): every hit is confirmed
   * against the state's own resources by comparing bytes, so an entry from another
   * state, or a stale one, can only cost a decode, never give a wrong answer.
   */
  readonly digests: Map<number, string>;
}

export type SotwOutcome<T> =
  | { readonly kind: 'ack'; readonly state: SotwState<T>; readonly request: DiscoveryRequest; readonly changes: ResourceChanges<T> }
  | { readonly kind: 'nack'; readonly state: SotwState<T>; readonly request: DiscoveryRequest; readonly detail: string };

export function sotwInitial<T>(typeUrl: string, wildcard: boolean, names: Iterable<string> = []): SotwState<T> {
  return { typeUrl, wildcard, names: new Set(names), versionInfo: '', nonce: '', resources: PersistentMap.empty(), digests: new Map() };
}

export function sotwRequest(s: SotwState, errorDetail?: string): DiscoveryRequest {
  return {
    type_url: s.typeUrl,
    version_info: s.versionInfo,
    // Legacy wildcard is an empty list; explicit names are sent sorted so that two
    // requests for the same set are byte-identical.
    resource_names: s.wildcard ? [] : [...s.names].sort(),
    response_nonce: s.nonce,
    ...(errorDetail !== undefined ? { error_detail: { code: 3 /* INVALID_ARGUMENT */, message: errorDetail } } : {}),
  };
}

/** Whether this type has anything to ask for (wildcard, or at least one name). */
export function sotwActive(s: SotwState): boolean {
  return s.wildcard || s.names.size > 0;
}

/** A new stream: the nonce belongs to the old one; the version is still what we hold. */
export function sotwOnStreamStart<T>(s: SotwState<T>): { state: SotwState<T>; request?: DiscoveryRequest } {
  const state = { ...s, nonce: '' };
  return sotwActive(state) ? { state, request: sotwRequest(state) } : { state };
}

/**
 * Changes the subscribed names. Resources no longer subscribed are forgotten (and
 * reported as removed); the request re-sends the whole name list, as SotW requires.
 */
export function sotwSetNames<T>(s: SotwState<T>, names: Iterable<string>): {
  state: SotwState<T>;
  request?: DiscoveryRequest;
  changes: ResourceChanges<T>;
} {
  const next = new Set(names);
  if (sameSet(next, s.names)) return { state: s, changes: { typeUrl: s.typeUrl, upserted: [], removed: [] } };
  const removed: string[] = [];
  let resources = s.resources;
  if (!s.wildcard) {
    for (const [name, prev] of s.resources) {
      if (subscribedTo(next, name)) continue;
      removed.push(name);
      forget(s.digests, prev);
    }
    resources = s.resources.with([], removed);
  }
  const state = { ...s, names: next, resources };
  // An empty list would read as wildcard to a legacy server; but the server must learn
  // that we dropped the last name, and Envoy sends the empty list in that case too.
  return { state, request: sotwRequest(state), changes: { typeUrl: s.typeUrl, upserted: [], removed } };
}

export function sotwOnResponse<T>(s: SotwState<T>, type: ResourceType<T>, res: DiscoveryResponse): SotwOutcome<T> {
  const withNonce = { ...s, nonce: res.nonce };
  // Bytes before decoding: a resource byte-identical to the accepted one is reused as is.
  const reused: ResourceEntry<T>[] = [];
  const fresh: RawResource[] = [];
  const freshDigests: number[] = [];
  res.resources.forEach((any, index) => {
    if (any.type_url === type.typeUrl) {
      const d = digest(any.value);
      const name = s.digests.get(d);
      const prev = name === undefined ? undefined : s.resources.get(name);
      if (prev !== undefined && sameBytes(prev.bytes, any.value)) {
        // Kept as accepted, version included: like Envoy's config dump, a resource's
        // version is that of the response that last changed it. Not re-setting it keeps
        // an unchanged resource from costing a map write.
        reused.push(prev);
        return;
      }
      freshDigests.push(d);
    } else freshDigests.push(0);
    fresh.push({ version: res.version_info, any, index });
  });
  const decoded = decodeResources(type, fresh);
  const detail = !decoded.ok ? decoded.detail : duplicate(reused, decoded.entries);
  if (detail !== undefined) {
    return { kind: 'nack', state: withNonce, request: sotwRequest(withNonce, detail), detail };
  }
  const entries = (decoded as { entries: ResourceEntry<T>[] }).entries;
  const digests = s.digests;
  const sets: [string, ResourceEntry<T>][] = [];
  const upserted: ResourceEntry<T>[] = [];
  const inResponse = new Set<string>();
  for (const e of reused) {
    if (!s.wildcard && !subscribedTo(s.names, e.name)) continue;
    inResponse.add(e.name);
  }
  entries.forEach((e, i) => {
    // A server may send names we did not ask for (e.g. right after an unsubscribe).
    if (!s.wildcard && !subscribedTo(s.names, e.name)) return;
    inResponse.add(e.name);
    const prev = s.resources.get(e.name);
    if (prev !== undefined && sameBytes(prev.bytes, e.bytes)) return;
    if (prev !== undefined) forget(digests, prev);
    digests.set(freshDigests[i]!, e.name);
    sets.push([e.name, e]);
    upserted.push(e);
  });
  const removed: string[] = [];
  if (type.allResourcesRequired) {
    for (const [name, prev] of s.resources) {
      if (inResponse.has(name)) continue;
      removed.push(name);
      forget(digests, prev);
    }
  }
  const state = { ...withNonce, versionInfo: res.version_info, resources: s.resources.with(sets, removed), digests };
  return { kind: 'ack', state, request: sotwRequest(state), changes: { typeUrl: s.typeUrl, upserted, removed } };
}

/** Drops the digest of a resource leaving the state (if it still points at it). */
function forget(digests: Map<number, string>, e: ResourceEntry): void {
  const d = digest(e.bytes);
  if (digests.get(d) === e.name) digests.delete(d);
}

function duplicate(a: readonly ResourceEntry[], b: readonly ResourceEntry[]): string | undefined {
  if (a.length === 0) return undefined;
  const seen = new Set<string>();
  for (const e of a) {
    if (seen.has(e.name)) return `duplicate resource name "${e.name}"`;
    seen.add(e.name);
  }
  for (const e of b) if (seen.has(e.name)) return `duplicate resource name "${e.name}"`;
  return undefined;
}

/**
 * Content digest for the reuse lookup: 32-bit murmur3-style over the bytes. Every hit is
 * confirmed by a byte compare, so a collision costs one decode, never a wrong answer;
 * a cryptographic hash cost several times more per resource at 10,000 resources.
 */
function digest(b: Uint8Array): number {
  let h = b.length;
  const n = b.length & ~3;
  let i = 0;
  for (; i < n; i += 4) {
    let k = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h ^= k;
    h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
  }
  for (; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/**
 * SotW resends unchanged resources in every response; comparing content keeps an
 * unchanged cluster from being re-pushed (and its connections from being rebuilt).
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}
