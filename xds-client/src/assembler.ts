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
import { collectionOf, TYPE_URLS, type ResourceChanges } from './resource-type.js';

interface PushedCluster {
  cluster: Cluster;
  endpoints: Map<string, Endpoint>;
}

export type ExtraHandler = (changes: ResourceChanges) => void;

export class ConfigAssembler {
  private readonly listeners = new Map<string, Listener>();
  private readonly routes = new Map<string, RouteConfiguration>();
  private readonly clusters = new Map<string, Cluster>();
  private readonly clas = new Map<string, ClusterLoadAssignment>();
  /** LEDS collection -> resource name -> endpoint */
  private readonly leds = new Map<string, Map<string, LbEndpoint>>();
  private readonly ledsAnswered = new Set<string>();
  private readonly secrets = new Map<string, TypedExtension>();
  private readonly missing = new Map<string, Set<string>>();

  private readonly pushedListeners = new Map<string, Listener>();
  private readonly pushedClusters = new Map<string, PushedCluster>();
  private readonly pushedRoutes = new Set<string>();

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
            dirtyClusters.add(e.name);
          }
          for (const name of ch.removed) {
            this.clusters.delete(name);
            if (this.pushedClusters.delete(name)) this.call(() => this.sink.removeCluster(name));
          }
          break;
        case TYPE_URLS.endpoint:
          for (const e of ch.upserted) {
            this.clas.set(e.name, e.value as ClusterLoadAssignment);
            this.unmiss(ch.typeUrl, e.name);
            for (const c of this.clustersUsing(e.name)) dirtyClusters.add(c);
          }
          for (const name of ch.removed) {
            this.clas.delete(name);
            for (const c of this.clustersUsing(name)) dirtyClusters.add(c);
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
            for (const l of this.listenersUsingRoute(e.name)) dirtyListeners.add(l);
          }
          for (const name of ch.removed) {
            this.routes.delete(name);
            if (this.pushedRoutes.delete(name)) this.call(() => this.sink.removeRouteConfiguration(name));
          }
          break;
        case TYPE_URLS.listener:
          for (const e of ch.upserted) {
            this.listeners.set(e.name, e.value as Listener);
            dirtyListeners.add(e.name);
          }
          for (const name of ch.removed) {
            this.listeners.delete(name);
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
          if (ch.upserted.length > 0) this.markAllWaiting(dirtyClusters, dirtyListeners);
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
      for (const cname of this.clustersUsingCollection(collection)) {
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
        for (const c of this.clustersUsing(name)) dc.add(c);
        break;
      case TYPE_URLS.lbEndpoint:
        this.ledsAnswered.add(name);
        for (const c of this.clustersUsingCollection(name)) dc.add(c);
        break;
      case TYPE_URLS.route:
        for (const l of this.listenersUsingRoute(name)) dl.add(l);
        break;
      case TYPE_URLS.secret:
        this.markAllWaiting(dc, dl);
        break;
    }
    this.process(dc, dl);
  }

  /** Names each dependent type should be subscribed to now. */
  wanted(typeUrl: string): Set<string> {
    const out = new Set<string>();
    switch (typeUrl) {
      case TYPE_URLS.route:
        for (const l of this.listeners.values()) for (const n of routeNames(l)) out.add(n);
        break;
      case TYPE_URLS.endpoint:
        for (const c of this.clusters.values()) if (c.type === 'EDS') out.add(edsName(c));
        break;
      case TYPE_URLS.lbEndpoint:
        for (const c of this.clusters.values()) {
          if (c.type !== 'EDS') continue;
          const cla = this.clas.get(edsName(c));
          if (cla) for (const l of cla.endpoints) if (l.ledsCollectionName) out.add(l.ledsCollectionName);
        }
        break;
      case TYPE_URLS.secret:
        for (const c of this.clusters.values()) secretNames(c.transportSocket, out);
        for (const l of this.listeners.values()) for (const fc of filterChains(l)) secretNames(fc.transportSocket, out);
        break;
    }
    return out;
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
    const cla = this.clas.get(en);
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
      const diff = diffEndpoints(c.name, pushed.endpoints, next);
      if (emptyDiff(diff)) return;
      if (this.call(() => this.sink.applyEndpointDiff(diff), `endpoints of cluster "${c.name}"`)) applyInPlace(pushed.endpoints, diff);
      return;
    }
    if (this.call(() => this.sink.upsertCluster(c, next), `cluster "${c.name}"`)) {
      this.pushedClusters.set(c.name, { cluster: c, endpoints: new Map(next.map((e) => [e.key, e])) });
    }
  }

  private pushLedsDiff(
    cname: string,
    pushed: PushedCluster,
    collection: string,
    upserted: Map<string, LbEndpoint>,
    removed: Map<string, LbEndpoint>,
  ): void {
    const cla = this.clas.get(edsName(pushed.cluster));
    const locality = cla?.endpoints.find((l) => l.ledsCollectionName === collection);
    if (cla === undefined || locality === undefined) return;
    const prev = new Map<string, Endpoint>();
    const take = (lb: LbEndpoint): void => {
      const key = endpointKey(lb.address.address, lb.address.port);
      const e = pushed.endpoints.get(key);
      if (e !== undefined) prev.set(key, e);
    };
    for (const lb of removed.values()) take(lb);
    for (const lb of upserted.values()) take(lb);
    const next = flattenLoadAssignment({ ...cla, endpoints: [{ ...locality, lbEndpoints: [...upserted.values()] }] });
    const diff = diffEndpoints(cname, prev, next);
    if (emptyDiff(diff)) return;
    if (this.call(() => this.sink.applyEndpointDiff(diff), `endpoints of cluster "${cname}"`)) applyInPlace(pushed.endpoints, diff);
  }

  private endpointsFor(c: Cluster): Endpoint[] {
    if (c.type !== 'EDS') return c.loadAssignment ? flattenLoadAssignment(c.loadAssignment) : [];
    const cla = this.clas.get(edsName(c));
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
    const wanted = this.wanted(TYPE_URLS.lbEndpoint);
    for (const coll of wanted) {
      if (!this.ledsAnswered.has(coll)) {
        this.ledsAnswered.add(coll);
        if (!out.has(coll)) entry(coll);
      }
    }
    // A collection we left must be waited for again if we ever come back to it.
    for (const coll of [...this.leds.keys()]) {
      if (!wanted.has(coll) && this.leds.get(coll)!.size === 0) {
        this.leds.delete(coll);
        this.ledsAnswered.delete(coll);
      }
    }
  }

  // ---------------------------------------------------------------- indexes

  private clustersUsing(eds: string): string[] {
    const out: string[] = [];
    for (const c of this.clusters.values()) if (c.type === 'EDS' && edsName(c) === eds) out.push(c.name);
    return out;
  }

  private clustersUsingCollection(collection: string): string[] {
    const out: string[] = [];
    for (const c of this.clusters.values()) {
      if (c.type !== 'EDS') continue;
      const cla = this.clas.get(edsName(c));
      if (cla?.endpoints.some((l) => l.ledsCollectionName === collection)) out.push(c.name);
    }
    return out;
  }

  private listenersUsingRoute(route: string): string[] {
    const out: string[] = [];
    for (const l of this.listeners.values()) if (routeNames(l).includes(route)) out.push(l.name);
    return out;
  }

  private markAllWaiting(dc: Set<string>, dl: Set<string>): void {
    for (const c of this.clusters.keys()) if (!this.pushedClusters.has(c) || this.pushedClusters.get(c)!.cluster !== this.clusters.get(c)) dc.add(c);
    for (const l of this.listeners.keys()) if (this.pushedListeners.get(l) !== this.listeners.get(l)) dl.add(l);
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

/** SDS names in a raw transport socket: every `{name, sds_config}` object. */
export function secretNames(ext: TypedExtension | undefined, out: Set<string>): Set<string> {
  if (ext === undefined) return out;
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach(walk);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (typeof o.name === 'string' && ('sds_config' in o || 'sdsConfig' in o)) out.add(o.name);
    for (const x of Object.values(o)) walk(x);
  };
  walk(ext.config);
  return out;
}

function emptyDiff(d: EndpointDiff): boolean {
  return d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0;
}

function applyInPlace(m: Map<string, Endpoint>, d: EndpointDiff): void {
  for (const k of d.removed) m.delete(k);
  for (const e of d.added) m.set(e.key, e);
  for (const e of d.changed) m.set(e.key, e);
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
