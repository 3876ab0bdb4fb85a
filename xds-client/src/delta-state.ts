/**
 * Incremental (delta) protocol state for one type URL. Pure: no sockets, timers or
 * clocks (cf. Envoy's xds_mux/delta_subscription_state).
 *
 * Rules (xds_protocol.rst, "Incremental xDS"): versions are per resource; subscribe and
 * unsubscribe are deltas against what the server already knows on this stream; a new
 * stream re-sends the whole subscription with `initial_resource_versions` so the server
 * can skip what we hold; `removed_resources` deletes; every response is ACKed or NACKed
 * by its nonce, and a NACK leaves all resource versions where they were.
 */
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from './protos.js';
import { decodeResources } from './decode-response.js';
import type { ResourceChanges, ResourceEntry, ResourceType } from './resource-type.js';
import { subscribedTo } from './resource-type.js';
import { PersistentMap } from './persistent-map.js';

export interface DeltaState<T = unknown> {
  readonly typeUrl: string;
  readonly wildcard: boolean;
  readonly names: ReadonlySet<string>;
  readonly resources: PersistentMap<ResourceEntry<T>>;
  /** Whether the current stream has been told about this type yet. */
  readonly announced: boolean;
  /**
   * The explicit names the server has been told on this stream. Name changes update
   * `names` at once; the request that tells the server is the difference against this,
   * so several changes before the next request go out as one (see `deltaFlush`).
   */
  readonly told: ReadonlySet<string>;
}

export type DeltaOutcome<T> =
  | { readonly kind: 'ack'; readonly state: DeltaState<T>; readonly request: DeltaDiscoveryRequest; readonly changes: ResourceChanges<T>; readonly systemVersion: string }
  | { readonly kind: 'nack'; readonly state: DeltaState<T>; readonly request: DeltaDiscoveryRequest; readonly detail: string };

export const WILDCARD = '*';

export function deltaInitial<T>(typeUrl: string, wildcard: boolean, names: Iterable<string> = []): DeltaState<T> {
  return { typeUrl, wildcard, names: new Set(names), resources: PersistentMap.empty(), announced: false, told: new Set() };
}

function request(typeUrl: string, fields: Partial<DeltaDiscoveryRequest>): DeltaDiscoveryRequest {
  return {
    type_url: typeUrl,
    resource_names_subscribe: [],
    resource_names_unsubscribe: [],
    initial_resource_versions: {},
    response_nonce: '',
    ...fields,
  };
}

export function deltaActive(s: DeltaState): boolean {
  return s.wildcard || s.names.size > 0;
}

function subscribed(s: DeltaState, name: string): boolean {
  return s.wildcard || subscribedTo(s.names, name);
}

/**
 * A new stream: the server knows nothing. Subscribe to everything again and tell it
 * which versions we hold, so unchanged resources are not re-sent.
 */
export function deltaOnStreamStart<T>(s: DeltaState<T>): { state: DeltaState<T>; request?: DeltaDiscoveryRequest } {
  if (!deltaActive(s)) return { state: { ...s, announced: false, told: new Set() } };
  const names = [...s.names].sort();
  // Envoy: a wildcard-only subscription is the legacy empty list; with names it is "*".
  const subscribe = s.wildcard ? (names.length === 0 ? [] : [WILDCARD, ...names]) : names;
  const initial: Record<string, string> = {};
  for (const [name, e] of s.resources) if (subscribed(s, name)) initial[name] = e.version;
  return {
    state: { ...s, announced: true, told: s.names },
    request: request(s.typeUrl, { resource_names_subscribe: subscribe, initial_resource_versions: initial }),
  };
}

/**
 * Changes the explicit names. Resources that are no longer subscribed are dropped from
 * the cache and reported as removed. When `connected`, the request telling the server
 * is built at once (`deltaFlush`); otherwise the change waits for the next flush.
 */
export function deltaSetNames<T>(s: DeltaState<T>, names: Iterable<string>, connected: boolean): {
  state: DeltaState<T>;
  request?: DeltaDiscoveryRequest;
  changes: ResourceChanges<T>;
} {
  const next = new Set(names);
  const none = { typeUrl: s.typeUrl, upserted: [], removed: [] };
  if (sameSet(next, s.names)) return { state: s, changes: none };
  let state: DeltaState<T> = { ...s, names: next };
  const removed: string[] = [];
  if (!s.wildcard) {
    for (const name of s.resources.keys()) if (!subscribed(state, name)) removed.push(name);
    if (removed.length > 0) state = { ...state, resources: s.resources.with([], removed) };
  }
  const changes = { typeUrl: s.typeUrl, upserted: [], removed };
  if (!connected) return { state, changes };
  const f = deltaFlush(state);
  return { state: f.state, changes, ...(f.request ? { request: f.request } : {}) };
}

/**
 * The request that brings the server up to date with `names`: the whole subscription
 * if this stream has not heard of the type, else the net subscribe/unsubscribe since
 * the last request (a name added and dropped again in between is not sent at all).
 */
export function deltaFlush<T>(s: DeltaState<T>): { state: DeltaState<T>; request?: DeltaDiscoveryRequest } {
  if (!s.announced) return deltaOnStreamStart(s);
  const add = [...s.names].filter((n) => !s.told.has(n)).sort();
  const drop = [...s.told].filter((n) => !s.names.has(n)).sort();
  if (add.length === 0 && drop.length === 0) return { state: s };
  return {
    state: { ...s, told: s.names },
    request: request(s.typeUrl, { resource_names_subscribe: add, resource_names_unsubscribe: drop }),
  };
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

export function deltaOnResponse<T>(s: DeltaState<T>, type: ResourceType<T>, res: DeltaDiscoveryResponse): DeltaOutcome<T> {
  // A response that both updates and removes a name contradicts itself (which one
  // wins is undefined): reject it whole, applying neither, and say why.
  if (res.removed_resources.length > 0) {
    const removing = new Set(res.removed_resources);
    const both = res.resources.find((r) => removing.has(r.name));
    if (both !== undefined) {
      const detail = `resource "${both.name}" is both updated and removed in one response`;
      return {
        kind: 'nack',
        state: s,
        detail,
        request: request(s.typeUrl, { response_nonce: res.nonce, error_detail: { code: 3, message: detail } }),
      };
    }
  }
  const present = res.resources.filter((r) => r.resource !== undefined);
  const decoded = decodeResources(
    type,
    present.map((r) => ({ name: r.name, version: r.version, any: r.resource! })),
  );
  if (!decoded.ok) {
    return {
      kind: 'nack',
      state: s,
      detail: decoded.detail,
      request: request(s.typeUrl, { response_nonce: res.nonce, error_detail: { code: 3, message: decoded.detail } }),
    };
  }
  const upserted: ResourceEntry<T>[] = [];
  for (const e of decoded.entries) {
    // Late answers for names we just unsubscribed from are not ours any more.
    if (subscribed(s, e.name)) upserted.push(e);
  }
  const removed = res.removed_resources.filter((name) => s.resources.has(name));
  const resources = s.resources.with(
    upserted.map((e) => [e.name, e] as const),
    removed,
  );
  const state = { ...s, resources };
  return {
    kind: 'ack',
    state,
    systemVersion: res.system_version_info,
    request: request(s.typeUrl, { response_nonce: res.nonce }),
    changes: { typeUrl: s.typeUrl, upserted, removed },
  };
}
