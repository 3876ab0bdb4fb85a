/**
 * Turns accepted resource changes into ConfigSink calls, with Envoy's warming rules:
 *  - a cluster goes to the sink together with its endpoints: an EDS cluster waits for its
 *    ClusterLoadAssignment (and the LEDS collections that names), TLS clusters for their
 *    SDS secrets, unless those were declared missing (does-not-exist timer);
 *  - a listener waits for every RDS route configuration it names (and its secrets);
 *  - while a changed cluster or listener warms, the previous version keeps serving.
 * Endpoint updates for a warm cluster become EndpointDiffs: EDS by diffing the full new set
 * against what was pushed, LEDS by construction from the changed entries only.
 *
 * No I/O and no clocks: the client calls `apply` once per accepted response (one commit)
 * and `markMissing` when a does-not-exist timer fires.
 */
import type {
  Cluster,
  ClusterLoadAssignment,
  ConfigSink,
  Endpoint,
  EndpointDiff,
  LbEndpoint,
  Listener,
  RouteConfiguration,
  TypedExtension,
} from '../../config/src/index.js';
import { diffEndpoints, endpointKey, flattenLoadAssignment } from '../../config/src/index.js';
import { collectionOf, TYPE_URLS, type ResourceChanges, type ResourceEntry } from './resource-type.js';
import { UseIndex } from './use-index.js';

/**
 * What the sink was given for a cluster. The endpoints are a plain list (~100 bytes for
 * ten, where a Map is ~530): a full EDS update is O(n) anyway and indexes the list for
 * its diff only. A LEDS diff, which must cost what it changes, looks endpoints up by key:
 * the first one turns the list into a Map, kept from then on.
 */
interface PushedCluster {
  cluster: Cluster;
  endpoints: readonly Endpoint[] | Map<string, Endpoint>;
}

export type ExtraHandler = (changes: ResourceChanges) => void;

export class ConfigAssembler {
  private readonly listeners = new Map<string, Listener>();
  private readonly routes = new Map<string, RouteConfiguration>();
  private readonly clusters = new Map<string, Cluster>();
  /** Load assignments as accepted: `.value` may be decoded again from the bytes (EDS keeps no decoded copy). */
  private readonly clas = new Map<string, ResourceEntry<ClusterLoadAssignment>>();
  /** LEDS collection -> resource name -> endpoint */
  private readonly leds = new Map<string, Map<string, LbEndpoint>>();
  private readonly ledsAnswered = new Set<string>();
  private readonly secrets = new Map<string, TypedExtension>();
  private readonly missing = new Map<string, Set<string>>();

  private readonly pushedListeners = new Map<string, Listener>();
  private readonly pushedClusters = new Map<string, PushedCluster>();
  private readonly pushedRoutes = new Set<string>();

  // Who uses what, kept as resources change, so one update touches its users only and
  // the dependent subscriptions are the index keys (no scan of all listeners/clusters).
  /** listener -> RDS names */
  private readonly routeUse = new UseIndex();
  /** cluster -> EDS service name */
  private readonly edsUse = new UseIndex();
  /** cluster -> LEDS collections its ClusterLoadAssignment names */
  private readonly ledsUse = new UseIndex();
  /** "c\0cluster" / "l\0listener" -> SDS secret names */
  private readonly secretUse = new UseIndex();
  /**
   * Secret name -> the config source its sds_config names (see `secretSourceKey`), for
   * secrets that do not come over ADS (Istio: pilot-agent's SDS socket). Absent = ADS.
   */
  private readonly secretSource = new Map<string, string>();

  private dirty = false;
  private readonly errors: string[] = [];

  constructor(
    private readonly sink: ConfigSink,
    private readonly extra: ReadonlyMap<string, ExtraHandler> = new Map(),
  ) {}

  // ---------------------------------------------------------------- inputs

  /** Commits what `apply`/`markMissing` pushed since the last flush (one response = one commit). */
  flush(): void {
    if (this.dirty) {
      this.dirty = false;
      this.call(() => this.sink.commit(), 'commit');
      this.dirty = false;
    }
  }

  /** Applies accepted changes; sink calls are committed by `flush`. */
  apply(batch: readonly ResourceChanges[]): void {
    const dirtyClusters = new Set<string>();
    const dirtyListeners = new Set<string>();
    const ledsChanges = new Map<string, { upserted: Map<string, LbEndpoint>; removed: Map<string, LbEndpoint> }>();
    for (const ch of batch) {
      switch (ch.typeUrl) {
        case TYPE_URLS.cluster:
          for (const e of ch.upserted) {
            this.clusters.set(e.name, e.value as Cluster);
            this.indexCluster(e.name);
            dirtyClusters.add(e.name);
          }
          for (const name of ch.removed) {
            this.clusters.delete(name);
            this.indexCluster(name);
            if (this.pushedClusters.delete(name)) this.call(() => this.sink.removeCluster(name));
          }
          break;
        case TYPE_URLS.endpoint:
          for (const e of ch.upserted) {
            this.clas.set(e.name, e as ResourceEntry<ClusterLoadAssignment>);
            this.unmiss(ch.typeUrl, e.name);
            for (const c of this.edsUse.users(e.name)) {
              this.indexLeds(c);
              dirtyClusters.add(c);
            }
          }
          for (const name of ch.removed) {
            this.clas.delete(name);
            for (const c of this.edsUse.users(name)) {
              this.indexLeds(c);
              dirtyClusters.add(c);
            }
          }
          break;
        case TYPE_URLS.lbEndpoint:
          this.applyLeds(ch, ledsChanges);
          break;
        case TYPE_URLS.route:
          for (const e of ch.upserted) {
            const rc = e.value as RouteConfiguration;
            this.unmiss(ch.typeUrl, e.name);
            // A route configuration the sink refuses is not "known": its listener keeps waiting.
            if (!this.call(() => this.sink.upsertRouteConfiguration(rc), `route configuration "${e.name}"`)) continue;
            this.routes.set(e.name, rc);
            this.pushedRoutes.add(e.name);
            for (const l of this.routeUse.users(e.name)) dirtyListeners.add(l);
          }
          for (const name of ch.removed) {
            this.routes.delete(name);
            if (this.pushedRoutes.delete(name)) this.call(() => this.sink.removeRouteConfiguration(name));
          }
          break;
        case TYPE_URLS.listener:
          for (const e of ch.upserted) {
            this.listeners.set(e.name, e.value as Listener);
            this.indexListener(e.name);
            dirtyListeners.add(e.name);
          }
          for (const name of ch.removed) {
            this.listeners.delete(name);
            this.indexListener(name);
            if (this.pushedListeners.delete(name)) this.call(() => this.sink.removeListener(name));
          }
          break;
        case TYPE_URLS.secret:
          for (const e of ch.upserted) {
            const s = e.value as TypedExtension;
            this.unmiss(ch.typeUrl, e.name);
            if (this.call(() => this.sink.upsertSecret(e.name, s), `secret "${e.name}"`)) this.secrets.set(e.name, s);
          }
          for (const name of ch.removed) {
            if (this.secrets.delete(name)) this.call(() => this.sink.removeSecret(name));
          }
          for (const e of ch.upserted) this.markSecretUsers(e.name, dirtyClusters, dirtyListeners);
          break;
        default: {
          const h = this.extra.get(ch.typeUrl);
          if (h !== undefined && (ch.upserted.length > 0 || ch.removed.length > 0)) {
            h(ch);
            this.dirty = true;
          }
        }
      }
    }
    // LEDS changes for warm clusters that are not being rebuilt anyway go out as diffs.
    for (const [collection, lc] of ledsChanges) {
      for (const cname of this.ledsUse.users(collection)) {
        if (dirtyClusters.has(cname)) continue;
        const pushed = this.pushedClusters.get(cname);
        if (pushed === undefined || pushed.cluster !== this.clusters.get(cname)) {
          dirtyClusters.add(cname);
          continue;
        }
        this.pushLedsDiff(cname, pushed, collection, lc.upserted, lc.removed);
      }
    }
    this.process(dirtyClusters, dirtyListeners);
  }

  /** A does-not-exist timer fired: warm what waited for it without it. */
  markMissing(typeUrl: string, name: string): void {
    let set = this.missing.get(typeUrl);
    if (set === undefined) this.missing.set(typeUrl, (set = new Set()));
    set.add(name);
    const dc = new Set<string>();
    const dl = new Set<string>();
    switch (typeUrl) {
      case TYPE_URLS.endpoint:
        for (const c of this.edsUse.users(name)) dc.add(c);
        break;
      case TYPE_URLS.lbEndpoint:
        this.ledsAnswered.add(name);
        for (const c of this.ledsUse.users(name)) dc.add(c);
        break;
      case TYPE_URLS.route:
        for (const l of this.routeUse.users(name)) dl.add(l);
        break;
      case TYPE_URLS.secret:
        this.markSecretUsers(name, dc, dl);
        break;
    }
    this.process(dc, dl);
  }

  /**
   * Names each dependent type should be subscribed to now. For secrets, `source` picks
   * those of one config source ("" = ADS; else a `secretSourceKey`).
   */
  wanted(typeUrl: string, source?: string): Set<string> {
    const idx = this.indexFor(typeUrl);
    if (idx === undefined) return new Set();
    if (typeUrl !== TYPE_URLS.secret || source === undefined) return new Set(idx.deps());
    const out = new Set<string>();
    for (const n of idx.deps()) if ((this.secretSource.get(n) ?? '') === source) out.add(n);
    return out;
  }

  /** The non-ADS config sources the wanted secrets come from (`secretSourceKey`s). */
  secretSourceKeys(): Set<string> {
    const out = new Set<string>();
    for (const n of this.secretUse.deps()) {
      const k = this.secretSource.get(n);
      if (k !== undefined) out.add(k);
    }
    return out;
  }

  /**
   * Changes whenever `wanted(typeUrl)` may have changed: a caller that remembers it
   * re-reads the names only then, instead of after every response.
   */
  wantedGeneration(typeUrl: string): number {
    return this.indexFor(typeUrl)?.generation ?? 0;
  }

  private indexFor(typeUrl: string): UseIndex | undefined {
    switch (typeUrl) {
      case TYPE_URLS.route:
        return this.routeUse;
      case TYPE_URLS.endpoint:
        return this.edsUse;
      case TYPE_URLS.lbEndpoint:
        return this.ledsUse;
      case TYPE_URLS.secret:
        return this.secretUse;
    }
    return undefined;
  }

  private indexCluster(name: string): void {
    const c = this.clusters.get(name);
    this.edsUse.set(name, c?.type === 'EDS' ? [edsName(c)] : []);
    this.secretUse.set(`c\0${name}`, c ? [...secretNames(c.transportSocket, new Set(), this.secretSource)] : []);
    this.indexLeds(name);
  }

  private indexLeds(cluster: string): void {
    const c = this.clusters.get(cluster);
    const cla = c?.type === 'EDS' ? this.clas.get(edsName(c))?.value : undefined;
    const colls: string[] = [];
    if (cla) for (const l of cla.endpoints) if (l.ledsCollectionName && !colls.includes(l.ledsCollectionName)) colls.push(l.ledsCollectionName);
    this.ledsUse.set(cluster, colls);
  }

  private indexListener(name: string): void {
    const l = this.listeners.get(name);
    this.routeUse.set(name, l ? routeNames(l) : []);
    const secrets = new Set<string>();
    if (l) for (const fc of filterChains(l)) secretNames(fc.transportSocket, secrets, this.secretSource);
    this.secretUse.set(`l\0${name}`, [...secrets]);
  }

  // ---------------------------------------------------------------- warming

  private process(dirtyClusters: Set<string>, dirtyListeners: Set<string>): void {
    for (const name of dirtyClusters) {
      const c = this.clusters.get(name);
      if (c !== undefined && this.clusterReady(c)) this.pushCluster(c);
    }
    for (const name of dirtyListeners) {
      const l = this.listeners.get(name);
      if (l === undefined || !this.listenerReady(l)) continue;
      if (this.pushedListeners.get(name) === l) continue;
      for (const rn of routeNames(l)) {
        // A route configuration that does not exist serves as an empty one (404s), as in Envoy.
        if (!this.routes.has(rn) && !this.pushedRoutes.has(rn)) {
          if (this.call(() => this.sink.upsertRouteConfiguration(emptyRouteConfiguration(rn)), `route configuration "${rn}"`)) this.pushedRoutes.add(rn);
        }
      }
      if (this.call(() => this.sink.upsertListener(l), `listener "${name}"`)) this.pushedListeners.set(name, l);
    }
  }

  private clusterReady(c: Cluster): boolean {
    const secrets = secretNames(c.transportSocket, new Set());
    for (const s of secrets) if (!this.secrets.has(s) && !this.isMissing(TYPE_URLS.secret, s)) return false;
    if (c.type !== 'EDS') return true;
    const en = edsName(c);
    const cla = this.clas.get(en)?.value;
    if (cla === undefined) return this.isMissing(TYPE_URLS.endpoint, en);
    for (const l of cla.endpoints) {
      if (l.ledsCollectionName && !this.ledsAnswered.has(l.ledsCollectionName)) return false;
    }
    return true;
  }

  private listenerReady(l: Listener): boolean {
    for (const rn of routeNames(l)) if (!this.routes.has(rn) && !this.isMissing(TYPE_URLS.route, rn)) return false;
    const secrets = new Set<string>();
    for (const fc of filterChains(l)) secretNames(fc.transportSocket, secrets);
    for (const s of secrets) if (!this.secrets.has(s) && !this.isMissing(TYPE_URLS.secret, s)) return false;
    return true;
  }

  private pushCluster(c: Cluster): void {
    const next = this.endpointsFor(c);
    const pushed = this.pushedClusters.get(c.name);
    if (pushed !== undefined && pushed.cluster === c) {
      const held = pushed.endpoints;
      const prev = held instanceof Map ? held : new Map(held.map((e) => [e.key, e]));
      const diff = diffEndpoints(c.name, prev, next);
      if (emptyDiff(diff)) return;
      if (!this.call(() => this.sink.applyEndpointDiff(diff), `endpoints of cluster "${c.name}"`)) return;
      applyInPlace(prev, diff);
      // Unchanged endpoints stay the objects the sink's hosts hold (one copy, not two).
      if (!(held instanceof Map)) pushed.endpoints = listOf(prev);
      return;
    }
    if (this.call(() => this.sink.upsertCluster(c, next), `cluster "${c.name}"`)) {
      this.pushedClusters.set(c.name, { cluster: c, endpoints: uniqueList(next) });
    }
  }

  private pushLedsDiff(
    cname: string,
    pushed: PushedCluster,
    collection: string,
    upserted: Map<string, LbEndpoint>,
    removed: Map<string, LbEndpoint>,
  ): void {
    const cla = this.clas.get(edsName(pushed.cluster))?.value;
    const locality = cla?.endpoints.find((l) => l.ledsCollectionName === collection);
    if (cla === undefined || locality === undefined) return;
    const held = pushed.endpoints instanceof Map ? pushed.endpoints : (pushed.endpoints = new Map(pushed.endpoints.map((e) => [e.key, e])));
    const prev = new Map<string, Endpoint>();
    const take = (lb: LbEndpoint): void => {
      const key = endpointKey(lb.address.address, lb.address.port);
      const e = held.get(key);
      if (e !== undefined) prev.set(key, e);
    };
    for (const lb of removed.values()) take(lb);
    for (const lb of upserted.values()) take(lb);
    const next = flattenLoadAssignment({ ...cla, endpoints: [{ ...locality, lbEndpoints: [...upserted.values()] }] });
    const diff = diffEndpoints(cname, prev, next);
    if (emptyDiff(diff)) return;
    if (this.call(() => this.sink.applyEndpointDiff(diff), `endpoints of cluster "${cname}"`)) applyInPlace(held, diff);
  }

  private endpointsFor(c: Cluster): Endpoint[] {
    if (c.type !== 'EDS') return c.loadAssignment ? flattenLoadAssignment(c.loadAssignment) : [];
    const cla = this.clas.get(edsName(c))?.value;
    if (cla === undefined) return [];
    if (!cla.endpoints.some((l) => l.ledsCollectionName)) return flattenLoadAssignment(cla);
    return flattenLoadAssignment({
      ...cla,
      endpoints: cla.endpoints.map((l) =>
        l.ledsCollectionName ? { ...l, lbEndpoints: [...(this.leds.get(l.ledsCollectionName)?.values() ?? [])] } : l,
      ),
    });
  }

  private applyLeds(
    ch: ResourceChanges,
    out: Map<string, { upserted: Map<string, LbEndpoint>; removed: Map<string, LbEndpoint> }>,
  ): void {
    const entry = (coll: string) => {
      let v = out.get(coll);
      if (v === undefined) out.set(coll, (v = { upserted: new Map(), removed: new Map() }));
      let members = this.leds.get(coll);
      if (members === undefined) this.leds.set(coll, (members = new Map()));
      return { v, members };
    };
    for (const e of ch.upserted) {
      const coll = collectionOf(e.name);
      const { v, members } = entry(coll);
      const old = members.get(e.name);
      if (old !== undefined) v.removed.set(e.name, old);
      members.set(e.name, e.value as LbEndpoint);
      v.upserted.set(e.name, e.value as LbEndpoint);
    }
    for (const name of ch.removed) {
      const coll = collectionOf(name);
      const { v, members } = entry(coll);
      const old = members.get(name);
      if (old === undefined) continue;
      members.delete(name);
      v.upserted.delete(name);
      v.removed.set(name, old);
    }
    // Any LEDS response answers the collections we are subscribed to (possibly empty).
    for (const coll of this.ledsUse.deps()) {
      if (!this.ledsAnswered.has(coll)) {
        this.ledsAnswered.add(coll);
        if (!out.has(coll)) entry(coll);
      }
    }
    // A collection we left must be waited for again if we ever come back to it.
    for (const coll of [...this.leds.keys()]) {
      if (!this.ledsUse.has(coll) && this.leds.get(coll)!.size === 0) {
        this.leds.delete(coll);
        this.ledsAnswered.delete(coll);
      }
    }
  }

  // ---------------------------------------------------------------- indexes

  /** A secret arrived (or was declared missing): its users that wait may warm now. */
  private markSecretUsers(secret: string, dc: Set<string>, dl: Set<string>): void {
    for (const user of this.secretUse.users(secret)) {
      const name = user.slice(2);
      if (user[0] === 'c') {
        if (this.pushedClusters.get(name)?.cluster !== this.clusters.get(name)) dc.add(name);
      } else if (this.pushedListeners.get(name) !== this.listeners.get(name)) dl.add(name);
    }
  }

  private isMissing(typeUrl: string, name: string): boolean {
    return this.missing.get(typeUrl)?.has(name) ?? false;
  }

  private unmiss(typeUrl: string, name: string): void {
    this.missing.get(typeUrl)?.delete(name);
  }

  /**
   * Runs one sink call. A sink may still refuse what our decoders accepted (it compiles
   * regexes, builds TLS contexts); the refusal is collected for the NACK and the
   * resource is not recorded as pushed, so the previous version keeps serving.
   */
  private call(f: () => void, what = ''): boolean {
    this.dirty = true;
    try {
      f();
      return true;
    } catch (e) {
      this.errors.push(`${what ? what + ': ' : ''}${e instanceof Error ? e.message : String(e)}`);
      return false;
    }
  }

  /** Sink refusals since the last call (they turn an ACK into a NACK). */
  takeErrors(): string[] {
    return this.errors.splice(0);
  }
}

export function edsName(c: Cluster): string {
  return c.edsServiceName ?? c.name;
}

function filterChains(l: Listener) {
  return l.defaultFilterChain ? [...l.filterChains, l.defaultFilterChain] : l.filterChains;
}

export function routeNames(l: Listener): string[] {
  const out: string[] = [];
  for (const fc of filterChains(l)) {
    const n = fc.network;
    if (n.kind === 'http' && n.routeSource.kind === 'rds' && !out.includes(n.routeSource.routeConfigName)) {
      out.push(n.routeSource.routeConfigName);
    }
  }
  return out;
}

/**
 * SDS names in a raw transport socket: every `{name, sds_config}` object. With `sources`,
 * also records each name's non-ADS config source (`secretSourceKey`), in the same walk.
 */
export function secretNames(ext: TypedExtension | undefined, out: Set<string>, sources?: Map<string, string>): Set<string> {
  if (ext === undefined) return out;
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach(walk);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    const sds = o.sds_config ?? o.sdsConfig;
    if (typeof o.name === 'string' && sds !== undefined) {
      out.add(o.name);
      if (sources) {
        const key = secretSourceKey(sds);
        if (key === undefined) sources.delete(o.name);
        else sources.set(o.name, key);
      }
    }
    for (const x of Object.values(o)) walk(x);
  };
  walk(ext.config);
  return out;
}

/**
 * The config source of an SDS reference that is not ADS, as a key: "<cluster>|<api type>"
 * for an `api_config_source` with an envoy_grpc service (Istio's bootstrap points
 * `sds-grpc` at pilot-agent's socket). Undefined for `ads: {}` and for sources pilotfish
 * does not fetch from (the config decoders report those).
 */
export function secretSourceKey(sdsConfig: unknown): string | undefined {
  const api = prop(sdsConfig, 'api_config_source');
  if (api === undefined) return undefined;
  const services = prop(api, 'grpc_services');
  const first = Array.isArray(services) ? services[0] : undefined;
  const cluster = prop(prop(first, 'envoy_grpc'), 'cluster_name');
  if (typeof cluster !== 'string' || cluster === '') return undefined;
  const apiType = prop(api, 'api_type');
  return `${cluster}|${typeof apiType === 'string' && apiType.toUpperCase() === 'DELTA_GRPC' ? 'DELTA_GRPC' : 'GRPC'}`;
}

function prop(o: unknown, snake: string): unknown {
  if (o === null || typeof o !== 'object') return undefined;
  const r = o as Record<string, unknown>;
  if (snake in r) return r[snake];
  return r[snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
}

function emptyDiff(d: EndpointDiff): boolean {
  return d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0;
}

function applyInPlace(m: Map<string, Endpoint>, d: EndpointDiff): void {
  for (const k of d.removed) m.delete(k);
  for (const e of d.added) m.set(e.key, e);
  for (const e of d.changed) m.set(e.key, e);
}

/** A map's values as an array of exactly their number (a pushed array keeps spare capacity). */
function listOf(m: ReadonlyMap<string, Endpoint>): Endpoint[] {
  const out = new Array<Endpoint>(m.size);
  let i = 0;
  for (const e of m.values()) out[i++] = e;
  return out;
}

/** `eps` without repeated keys (the first kept, as diffEndpoints does), sized exactly. */
function uniqueList(eps: readonly Endpoint[]): Endpoint[] {
  const seen = new Set<string>();
  for (const e of eps) seen.add(e.key);
  if (seen.size === eps.length) return eps.slice();
  const m = new Map<string, Endpoint>();
  for (const e of eps) if (!m.has(e.key)) m.set(e.key, e);
  return listOf(m);
}

function emptyRouteConfiguration(name: string): RouteConfiguration {
  return {
    name,
    virtualHosts: [],
    validateClusters: false,
    requestHeadersToAdd: [],
    requestHeadersToRemove: [],
    responseHeadersToAdd: [],
    responseHeadersToRemove: [],
  };
}
