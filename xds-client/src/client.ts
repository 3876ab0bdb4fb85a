/**
 * XdsClient: wires the per-type protocol states (pure), the assembler (warming, sink
 * calls) and the transport (gRPC). Owns the timers: does-not-exist per resource.
 */
import type { ConfigSink, NodeInfo } from '../../config/src/index.js';
import { ConfigAssembler, type ExtraHandler } from './assembler.js';
import type { BackoffPolicy } from './backoff.js';
import { deltaFlush, deltaInitial, deltaOnResponse, deltaOnStreamStart, deltaSetNames, type DeltaState } from './delta-state.js';
import type { DeltaDiscoveryResponse, DiscoveryResponse, WireNode } from './protos.js';
import { TYPE_URLS, type ResourceChanges, type ResourceEntry, type ResourceType } from './resource-type.js';
import { clusterType, lbEndpointType, listenerType, loadAssignmentType, routeConfigurationType, secretType } from './resource-types.js';
import { sotwInitial, sotwOnResponse, sotwOnStreamStart, sotwRequest, sotwSetNames, type SotwState } from './sotw-state.js';
import { XdsStats } from './stats.js';
import { AdsTransport, type ApiType, type ServerAddress } from './transport.js';
import type * as grpc from '@grpc/grpc-js';

export interface ResourceTypeRegistration<T = unknown> {
  readonly type: ResourceType<T>;
  /** For types the client does not assemble itself (ECDS, ...): accepted changes, inside the response's commit. */
  readonly onChanges?: (changes: ResourceChanges<T>) => void;
  /** Initial subscription of an extra type: '*' (wildcard) or names. */
  readonly subscribe?: '*' | readonly string[];
}

export type XdsLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string) => void;

export interface XdsClientOptions {
  readonly node: NodeInfo;
  readonly servers: readonly ServerAddress[];
  readonly apiType: ApiType;
  readonly sink: ConfigSink;
  /** Extra types, or replacements of built-ins by type URL (e.g. SDS with certs/' decoder). */
  readonly resourceTypes?: readonly ResourceTypeRegistration<any>[];
  /** Does-not-exist timeout (bootstrap `initial_fetch_timeout`, default 15s; 0 disables). */
  readonly initialFetchTimeoutMs?: number;
  readonly setNodeOnFirstMessageOnly?: boolean;
  /** Subscribe to all listeners (bootstrap `lds_config`); default true. */
  readonly listeners?: boolean;
  /** Subscribe to all clusters (bootstrap `cds_config`); default true. */
  readonly clusters?: boolean;
  readonly backoff?: BackoffPolicy;
  readonly credentials?: grpc.ChannelCredentials;
  readonly log?: XdsLog;
  /**
   * Addresses of a static cluster, for SDS references whose `sds_config` names an
   * `api_config_source` (Istio: `sds-grpc`, pilot-agent's Unix socket). Secrets of such a
   * source are fetched on their own SDS stream to it; without this they cannot be.
   */
  readonly resolveCluster?: (name: string) => readonly ServerAddress[] | undefined;
}

/**
 * A secondary client for one SDS config source: it shares the main client's assembler, so
 * the secrets it receives warm the listeners and clusters that wait for them, and it
 * subscribes only to the secrets of its source.
 */
interface SecretSourceRole {
  readonly assembler: ConfigAssembler;
  /** `secretSourceKey` of the source: "<cluster>|<api type>". */
  readonly source: string;
}

type TypeState =
  | { mode: 'sotw'; s: SotwState }
  | { mode: 'delta'; s: DeltaState };

export interface ConfigDumpEntry {
  readonly name: string;
  readonly version: string;
  readonly lastUpdated: string;
  readonly resource: Readonly<Record<string, unknown>>;
}

export interface ConfigDump {
  readonly typeUrl: string;
  readonly versionInfo: string;
  readonly resources: readonly ConfigDumpEntry[];
}

/** Types whose names come from other resources; LDS and CDS are wildcard. */
const DEPENDENT: string[] = [TYPE_URLS.route, TYPE_URLS.endpoint, TYPE_URLS.lbEndpoint, TYPE_URLS.secret];
/** Request order on a new stream: clusters before listeners, as Envoy does. */
const ORDER: string[] = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.lbEndpoint, TYPE_URLS.secret, TYPE_URLS.listener, TYPE_URLS.route];

export class XdsClient {
  private readonly types = new Map<string, ResourceType<unknown>>();
  private readonly states = new Map<string, TypeState>();
  private readonly versions = new Map<string, string>();
  private readonly updatedAt = new Map<string, Map<string, number>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly explicit = new Map<string, Set<string>>();
  /** Assembler generation each dependent type's names were last computed at. */
  private readonly synced = new Map<string, number>();
  /**
   * Types whose subscription changed since their last request. As in Envoy, changes wait
   * for the next request of the type (an ACK carries them) or for the end of this turn
   * of the event loop, so a burst of changes makes one DiscoveryRequest.
   */
  private readonly pendingSubs = new Set<string>();
  private flushTimer: NodeJS.Immediate | undefined;
  private readonly assembler: ConfigAssembler;
  private readonly transport: AdsTransport;
  private readonly stat = new XdsStats();
  private readonly log: XdsLog;
  private readonly timeoutMs: number;
  private initResolve!: () => void;
  private readonly pendingInit = new Set<string>([TYPE_URLS.listener, TYPE_URLS.cluster]);
  /** Resolves once LDS and CDS have each been answered (or timed out). */
  readonly initialized: Promise<void>;

  /** "" for the ADS client; the SDS source key for a secret-source client. */
  private readonly source: string;
  /** Secret-source clients by `secretSourceKey`, created when a secret first needs one. */
  private readonly secretClients = new Map<string, XdsClient>();
  private readonly unreachableSources = new Set<string>();

  constructor(private readonly opts: XdsClientOptions, role?: SecretSourceRole) {
    this.log = opts.log ?? (() => {});
    this.timeoutMs = opts.initialFetchTimeoutMs ?? 15_000;
    this.initialized = new Promise((r) => (this.initResolve = r));
    this.source = role?.source ?? '';
    const extra = new Map<string, ExtraHandler>();
    const builtIn = role ? [secretType()] : [listenerType, routeConfigurationType, clusterType, loadAssignmentType, lbEndpointType, secretType()];
    for (const t of builtIn) this.types.set(t.typeUrl, t as ResourceType<unknown>);
    const extraSubs: [string, '*' | readonly string[]][] = [];
    for (const reg of opts.resourceTypes ?? []) {
      if (role && reg.type.typeUrl !== TYPE_URLS.secret) continue;
      this.types.set(reg.type.typeUrl, reg.type);
      if (reg.onChanges) extra.set(reg.type.typeUrl, reg.onChanges as ExtraHandler);
      if (reg.subscribe) extraSubs.push([reg.type.typeUrl, reg.subscribe]);
    }
    this.assembler = role?.assembler ?? new ConfigAssembler(opts.sink, extra);
    const delta = opts.apiType === 'DELTA_GRPC';
    if (opts.listeners === false || role) this.pendingInit.delete(TYPE_URLS.listener);
    if (opts.clusters === false || role) this.pendingInit.delete(TYPE_URLS.cluster);
    if (this.pendingInit.size === 0) this.initResolve();
    for (const url of this.types.keys()) {
      const wildcard = (url === TYPE_URLS.listener && opts.listeners !== false) || (url === TYPE_URLS.cluster && opts.clusters !== false);
      this.states.set(url, delta ? { mode: 'delta', s: deltaInitial(url, wildcard) } : { mode: 'sotw', s: sotwInitial(url, wildcard) });
    }
    for (const [url, sub] of extraSubs) {
      const st = this.states.get(url)!;
      if (sub === '*') st.s = { ...st.s, wildcard: true } as never;
      else {
        this.explicit.set(url, new Set(sub));
        st.s = { ...st.s, names: new Set(sub) } as never;
      }
    }
    this.transport = new AdsTransport(
      {
        servers: opts.servers,
        apiType: opts.apiType,
        node: toWireNode(opts.node),
        setNodeOnFirstMessageOnly: opts.setNodeOnFirstMessageOnly ?? true,
        ...(opts.backoff ? { backoff: opts.backoff } : {}),
        ...(opts.credentials ? { credentials: opts.credentials } : {}),
        ...(role ? { service: 'sds' as const } : {}),
      },
      {
        onStreamStart: (server) => this.onStreamStart(server),
        onResponse: (res) => this.onResponse(res),
        onStreamEnd: (err) => this.onStreamEnd(err),
      },
    );
  }

  start(): void {
    this.transport.start();
  }

  stop(): void {
    if (this.flushTimer !== undefined) clearImmediate(this.flushTimer);
    this.flushTimer = undefined;
    this.pendingSubs.clear();
    this.transport.stop();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.stat.connectedState = 0;
    for (const c of this.secretClients.values()) c.stop();
  }

  /**
   * Names a module wants of a type, besides those the resources themselves name: ECDS
   * names the filter chains refer to, SDS secrets certs/ needs for a static listener.
   * Replaces the previous explicit set for that type.
   */
  subscribe(typeUrl: string, names: Iterable<string>): void {
    if (!this.types.has(typeUrl)) throw new Error(`xds: type ${typeUrl} is not registered`);
    this.explicit.set(typeUrl, new Set(names));
    this.setNames(typeUrl, this.namesFor(typeUrl));
    this.assembler.flush();
    for (const e of this.assembler.takeErrors()) this.log('warn', `xds: sink refused ${e}`);
  }

  private namesFor(url: string): Set<string> {
    const out = DEPENDENT.includes(url) ? this.assembler.wanted(url, url === TYPE_URLS.secret ? this.source : undefined) : new Set<string>();
    for (const n of this.explicit.get(url) ?? []) out.add(n);
    return out;
  }

  stats(): Record<string, number | string> {
    const out = this.stat.snapshot();
    for (const [key, c] of this.secretClients) {
      const cluster = key.slice(0, key.lastIndexOf('|'));
      for (const [k, v] of Object.entries(c.stat.snapshot())) out[`sds_source.${cluster}.${k}`] = v;
    }
    return out;
  }

  configDump(): ConfigDump[] {
    const out: ConfigDump[] = [];
    for (const [url, st] of this.states) {
      const times = this.updatedAt.get(url);
      const resources: ConfigDumpEntry[] = [];
      for (const e of st.s.resources.values() as Iterable<ResourceEntry>) {
        resources.push({
          name: e.name,
          version: e.version,
          lastUpdated: new Date(times?.get(e.name) ?? 0).toISOString(),
          resource: e.json,
        });
      }
      out.push({ typeUrl: url, versionInfo: this.versions.get(url) ?? '', resources });
    }
    for (const c of this.secretClients.values()) out.push(...c.configDump());
    return out;
  }

  // ---------------------------------------------------------------- stream events

  private onStreamStart(server: ServerAddress): void {
    this.stat.server = `${server.address}:${server.port}`;
    this.log('info', `xds: ${this.source === '' ? 'ADS' : 'SDS'} stream to ${this.stat.server} (${this.opts.apiType})`);
    // A new stream re-sends every subscription in full.
    this.pendingSubs.clear();
    const urls = [...ORDER.filter((u) => this.states.has(u)), ...[...this.states.keys()].filter((u) => !ORDER.includes(u))];
    for (const url of urls) {
      const st = this.states.get(url)!;
      if (st.mode === 'sotw') {
        const r = sotwOnStreamStart(st.s);
        st.s = r.state;
        if (r.request) this.transport.send(r.request);
      } else {
        const r = deltaOnStreamStart(st.s);
        st.s = r.state;
        if (r.request) this.transport.send(r.request);
      }
      this.armTimers(url);
    }
  }

  private onStreamEnd(err: string): void {
    if (this.stat.connectedState === 1) this.stat.reconnects++;
    this.stat.connectedState = 0;
    // The last good config keeps serving; only the timers pause with the stream.
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.log('warn', `xds: ${this.source === '' ? 'ADS' : 'SDS'} stream ended: ${err}`);
  }

  private onResponse(res: DiscoveryResponse | DeltaDiscoveryResponse): void {
    this.stat.connectedState = 1;
    const url = res.type_url;
    const st = this.states.get(url);
    const type = this.types.get(url);
    if (st === undefined || type === undefined) {
      this.log('warn', `xds: response for unknown type ${url}`);
      // Still answer: a server waits for the nonce before it sends more of this type.
      if (this.opts.apiType === 'DELTA_GRPC') {
        this.transport.send({ type_url: url, resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: res.nonce, error_detail: { code: 12, message: `type ${url} not supported` } });
      } else {
        this.transport.send({ type_url: url, version_info: '', resource_names: [], response_nonce: res.nonce, error_detail: { code: 12, message: `type ${url} not supported` } });
      }
      return;
    }
    const ts = this.stat.type(type.statName);
    ts.updateAttempt++;
    // Apply first, answer after: a sink that refuses what the decoders accepted turns
    // the ACK into a NACK (and the protocol state stays at the last good version).
    let changes: ResourceChanges;
    let ack: () => void;
    let nack: (detail: string) => void;
    if (st.mode === 'sotw') {
      const prev = st.s;
      const o = sotwOnResponse(prev, type, res as DiscoveryResponse);
      st.s = o.state;
      if (o.kind === 'nack') {
        this.pendingSubs.delete(url); // the NACK carries the current names
        this.transport.send(o.request);
        return this.rejected(type, ts, o.detail);
      }
      changes = o.changes;
      // The state is adopted before applying (dependent subscriptions read it); the
      // request is built after, so it carries any name change made meanwhile.
      ack = () => {
        this.versions.set(url, (res as DiscoveryResponse).version_info);
        this.pendingSubs.delete(url); // the ACK carries the current names
        this.transport.send(sotwRequest(st.s));
      };
      nack = (detail) => {
        st.s = { ...(st.s as SotwState), versionInfo: prev.versionInfo, resources: prev.resources };
        this.pendingSubs.delete(url);
        this.transport.send(sotwRequest(st.s, detail));
      };
    } else {
      const prev = st.s;
      const o = deltaOnResponse(prev, type, res as DeltaDiscoveryResponse);
      if (o.kind === 'nack') {
        this.transport.send({ ...o.request, ...this.takeDeltaSubs(url, st) });
        return this.rejected(type, ts, o.detail);
      }
      st.s = o.state;
      changes = o.changes;
      ack = () => {
        this.versions.set(url, o.systemVersion);
        this.transport.send({ ...o.request, ...this.takeDeltaSubs(url, st) });
      };
      nack = (detail) => {
        st.s = { ...(st.s as DeltaState), resources: prev.resources };
        this.transport.send({ ...o.request, ...this.takeDeltaSubs(url, st), error_detail: { code: 3, message: detail } });
      };
    }
    this.assembler.apply([changes]);
    this.syncDependents();
    this.assembler.flush();
    const refused = this.assembler.takeErrors();
    if (refused.length > 0) {
      const detail = refused.join('; ');
      nack(detail);
      this.rejected(type, ts, detail);
      return;
    }
    ack();
    ts.updateSuccess++;
    ts.versionText = this.versions.get(url) ?? '';
    if (changes.upserted.length === 0 && changes.removed.length === 0) ts.updateEmpty++;
    const now = Date.now();
    let times = this.updatedAt.get(url);
    if (times === undefined) this.updatedAt.set(url, (times = new Map()));
    for (const e of changes.upserted) {
      times.set(e.name, now);
      this.clearTimer(url, e.name);
    }
    for (const n of changes.removed) times.delete(n);
    this.clearTimer(url, '*');
    this.initDone(url);
  }

  private rejected(type: ResourceType<unknown>, ts: { updateRejected: number; lastError: string }, detail: string): void {
    ts.updateRejected++;
    ts.lastError = detail;
    this.log('warn', `xds: rejected ${type.statName} update: ${detail}`);
  }

  // ---------------------------------------------------------------- subscriptions

  private syncDependents(): void {
    for (const url of DEPENDENT) {
      if (!this.states.has(url)) continue;
      const g = this.assembler.wantedGeneration(url);
      if (this.synced.get(url) === g) continue;
      this.synced.set(url, g);
      this.setNames(url, this.namesFor(url));
      if (url === TYPE_URLS.secret && this.source === '') this.syncSecretSources();
    }
  }

  /**
   * Secrets whose sds_config names an api_config_source come from that source on an SDS
   * stream of their own, as in Envoy (Istio's bootstrap: `sds-grpc`, pilot-agent's socket):
   * one client per source, sharing this client's assembler so its secrets warm our users.
   */
  private syncSecretSources(): void {
    for (const key of this.assembler.secretSourceKeys()) {
      let side = this.secretClients.get(key);
      if (side === undefined) {
        if (this.unreachableSources.has(key)) continue;
        const sep = key.lastIndexOf('|');
        const cluster = key.slice(0, sep);
        const servers = this.opts.resolveCluster?.(cluster) ?? [];
        if (servers.length === 0) {
          this.unreachableSources.add(key);
          this.log('warn', `xds: SDS source cluster "${cluster}" has no static endpoints; its secrets (${[...this.assembler.wanted(TYPE_URLS.secret, key)].join(', ')}) cannot be fetched`);
          continue;
        }
        side = new XdsClient(
          { ...this.opts, servers, apiType: key.slice(sep + 1) as ApiType, listeners: false, clusters: false, initialFetchTimeoutMs: 0 },
          { assembler: this.assembler, source: key },
        );
        this.secretClients.set(key, side);
        side.syncDependents();
        side.start();
        continue;
      }
      side.syncDependents();
    }
  }

  private setNames(url: string, names: Set<string>): void {
    const st = this.states.get(url)!;
    let changes: ResourceChanges;
    if (st.mode === 'sotw') {
      const r = sotwSetNames(st.s, names);
      if (r.state === st.s) return;
      st.s = r.state;
      changes = r.changes;
    } else {
      // The request is built when the batch is flushed (deltaFlush), from the net change.
      const r = deltaSetNames(st.s, names, false);
      if (r.state === st.s) return;
      st.s = r.state;
      changes = r.changes;
    }
    this.queueSubscription(url);
    if (changes.removed.length > 0) this.assembler.apply([changes]);
    for (const n of changes.removed) this.updatedAt.get(url)?.delete(n);
    if (this.transport.connected) this.armTimers(url);
  }

  private queueSubscription(url: string): void {
    this.pendingSubs.add(url);
    if (this.flushTimer !== undefined) return;
    this.flushTimer = setImmediate(() => this.flushSubscriptions());
  }

  /** Sends one request per type whose subscription changed and that no ACK has carried. */
  private flushSubscriptions(): void {
    this.flushTimer = undefined;
    if (!this.transport.connected) return; // the next stream sends everything
    for (const url of this.pendingSubs) {
      const st = this.states.get(url)!;
      if (st.mode === 'sotw') this.transport.send(sotwRequest(st.s));
      else {
        const f = deltaFlush(st.s);
        st.s = f.state;
        if (f.request) this.transport.send(f.request);
      }
    }
    this.pendingSubs.clear();
  }

  /** Pending delta subscription changes of `url`, to ride on the request being sent. */
  private takeDeltaSubs(url: string, st: TypeState): { resource_names_subscribe?: string[]; resource_names_unsubscribe?: string[] } {
    if (st.mode !== 'delta' || !this.pendingSubs.delete(url)) return {};
    const f = deltaFlush(st.s);
    st.s = f.state;
    if (f.request === undefined) return {};
    return { resource_names_subscribe: f.request.resource_names_subscribe, resource_names_unsubscribe: f.request.resource_names_unsubscribe };
  }

  // ---------------------------------------------------------------- timers

  private armTimers(url: string): void {
    if (this.timeoutMs <= 0) return;
    const st = this.states.get(url)!;
    const names = st.s.wildcard ? ['*'] : [...st.s.names];
    for (const name of names) {
      const key = `${url}\0${name}`;
      if (this.timers.has(key)) continue;
      if (name !== '*' && st.s.resources.has(name)) continue;
      if (name === '*' && !this.pendingInit.has(url)) continue;
      const t = setTimeout(() => this.onTimeout(url, name), this.timeoutMs);
      t.unref?.();
      this.timers.set(key, t);
    }
    for (const [key, t] of this.timers) {
      const [u, n] = key.split('\0') as [string, string];
      if (u === url && n !== '*' && !st.s.names.has(n)) {
        clearTimeout(t);
        this.timers.delete(key);
      }
    }
  }

  private clearTimer(url: string, name: string): void {
    const key = `${url}\0${name}`;
    const t = this.timers.get(key);
    if (t !== undefined) {
      clearTimeout(t);
      this.timers.delete(key);
    }
  }

  private onTimeout(url: string, name: string): void {
    this.timers.delete(`${url}\0${name}`);
    const type = this.types.get(url);
    if (type) this.stat.type(type.statName).initFetchTimeout++;
    this.log('warn', `xds: ${type?.statName ?? url} resource ${name} does not exist (initial fetch timeout)`);
    if (name !== '*') {
      this.assembler.markMissing(url, name);
      this.syncDependents();
      this.assembler.flush();
      for (const e of this.assembler.takeErrors()) this.log('warn', `xds: sink refused ${e}`);
    }
    this.initDone(url);
  }

  private initDone(url: string): void {
    if (this.pendingInit.delete(url) && this.pendingInit.size === 0) this.initResolve();
  }
}

function toWireNode(n: NodeInfo): WireNode {
  return {
    id: n.id,
    cluster: n.cluster,
    metadata: { ...n.metadata },
    ...(n.locality ? { locality: { region: n.locality.region, zone: n.locality.zone, sub_zone: n.locality.subZone } } : {}),
    user_agent_name: 'pilotfish',
    user_agent_version: '0.1.0',
    client_features: [],
  };
}
