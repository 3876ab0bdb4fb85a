/**
 * An ADS management server: state of the world and delta on the same port, any type URL
 * the store holds (LDS/RDS/CDS/EDS/LEDS/SDS/ECDS). Per stream and type it tracks what the
 * client subscribed to and what it holds, and pushes only what changed. ACKs and NACKs
 * are surfaced as events for tests and operators.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import {
  codecs,
  nameMatches,
  TYPE_URLS,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../xds-client/src/index.js';
import { ResourceStore, type StoredResource, type TypeChange } from './snapshot.js';

export interface AckEvent {
  readonly node: string;
  readonly typeUrl: string;
  readonly version: string;
  readonly nonce: string;
  readonly delta: boolean;
}

export interface NackEvent extends AckEvent {
  readonly error: string;
}

export type XdsServerLog = (level: 'info' | 'warn' | 'debug', msg: string) => void;

const WILDCARD_BY_DEFAULT = new Set<string>([TYPE_URLS.listener, TYPE_URLS.cluster]);

interface SotwSub {
  wildcard: boolean;
  names: Set<string>;
  nonce: string;
  sentVersion: number;
  /** name -> resource version in the last response (to skip identical responses). */
  sent: Map<string, string>;
  acked: number;
  pending: boolean;
}

interface DeltaSub {
  wildcard: boolean;
  names: Set<string>;
  known: Map<string, string>;
  pending: Map<string, number>;
  acked: number;
}

abstract class Stream {
  node = '';
  constructor(protected readonly server: XdsServer, readonly id: number) {}
  abstract onChange(change: TypeChange): void;
  abstract ackedVersion(typeUrl: string): number;
  abstract close(): void;
}

class SotwStream extends Stream {
  private readonly subs = new Map<string, SotwSub>();
  private nonceCounter = 0;
  constructor(server: XdsServer, id: number, private readonly call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) {
    super(server, id);
    call.on('data', (req: DiscoveryRequest) => this.onRequest(req));
  }

  close(): void {
    this.call.end();
  }

  ackedVersion(typeUrl: string): number {
    return this.subs.get(typeUrl)?.acked ?? 0;
  }

  private onRequest(req: DiscoveryRequest): void {
    if (req.node?.id) this.node = req.node.id;
    this.server.emit('request', this.node, req); // tests count the requests a client makes
    const url = req.type_url;
    let sub = this.subs.get(url);
    const first = sub === undefined;
    if (sub === undefined) {
      sub = { wildcard: false, names: new Set(), nonce: '', sentVersion: 0, sent: new Map(), acked: 0, pending: false };
      this.subs.set(url, sub);
    }
    if (!first && req.response_nonce !== sub.nonce) return; // stale: a newer response is on its way
    if (!first && req.response_nonce !== '') {
      sub.pending = false;
      const ev = { node: this.node, typeUrl: url, version: req.version_info, nonce: req.response_nonce, delta: false };
      if (req.error_detail && req.error_detail.message !== '') {
        this.server.emitNack({ ...ev, error: req.error_detail.message });
      } else {
        sub.acked = Math.max(sub.acked, sub.sentVersion);
        this.server.emitAck(ev);
      }
    }
    const names = req.resource_names;
    const wildcard = names.includes('*') || (names.length === 0 && WILDCARD_BY_DEFAULT.has(url));
    const nextNames = new Set(names.filter((n) => n !== '*'));
    const changedSub = first || wildcard !== sub.wildcard || !sameSet(nextNames, sub.names);
    sub.wildcard = wildcard;
    sub.names = nextNames;
    if (changedSub) this.push(url, sub, true);
  }

  onChange(change: TypeChange): void {
    const sub = this.subs.get(change.typeUrl);
    if (sub === undefined) return;
    if (sub.wildcard) {
      this.push(change.typeUrl, sub, false);
      return;
    }
    // By-name types (RDS, EDS, ...): SotW responses for them are incremental (omission
    // means nothing), so only the subscribed resources that changed are sent.
    const all = this.server.store.resources(change.typeUrl);
    const changed = change.changed.filter((n) => sub.names.has(n) && all.has(n)).map((n) => all.get(n)!);
    const version = this.server.store.version(change.typeUrl);
    if (changed.length === 0) {
      if (!sub.pending) sub.acked = Math.max(sub.acked, version);
      return;
    }
    for (const r of changed) sub.sent.set(r.name, r.version);
    this.send(change.typeUrl, sub, changed, version);
  }

  private send(url: string, sub: SotwSub, chosen: readonly StoredResource[], version: number): void {
    sub.nonce = String(++this.nonceCounter);
    sub.sentVersion = version;
    sub.pending = true;
    this.call.write({
      version_info: String(version),
      type_url: url,
      nonce: sub.nonce,
      resources: chosen.map((r) => ({ type_url: url, value: r.bytes })),
    });
  }

  private push(url: string, sub: SotwSub, subscriptionChanged: boolean): void {
    const all = this.server.store.resources(url);
    const chosen: StoredResource[] = [];
    if (sub.wildcard) chosen.push(...all.values());
    else for (const n of sub.names) { const r = all.get(n); if (r) chosen.push(r); }
    const version = this.server.store.version(url);
    const same = chosen.length === sub.sent.size && chosen.every((r) => sub.sent.get(r.name) === r.version);
    if (same && !(subscriptionChanged && (sub.wildcard || chosen.length > 0))) {
      if (!sub.pending) sub.acked = Math.max(sub.acked, version);
      return;
    }
    if (!sub.wildcard && chosen.length === 0 && sub.sent.size === 0) {
      if (!sub.pending) sub.acked = Math.max(sub.acked, version);
      return;
    }
    sub.sent = new Map(chosen.map((r) => [r.name, r.version]));
    this.send(url, sub, chosen, version);
  }
}

class DeltaStream extends Stream {
  private readonly subs = new Map<string, DeltaSub>();
  private nonceCounter = 0;
  constructor(server: XdsServer, id: number, private readonly call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) {
    super(server, id);
    call.on('data', (req: DeltaDiscoveryRequest) => this.onRequest(req));
  }

  close(): void {
    this.call.end();
  }

  ackedVersion(typeUrl: string): number {
    return this.subs.get(typeUrl)?.acked ?? 0;
  }

  private onRequest(req: DeltaDiscoveryRequest): void {
    if (req.node?.id) this.node = req.node.id;
    this.server.emit('request', this.node, req); // tests count the requests a client makes
    const url = req.type_url;
    let sub = this.subs.get(url);
    const first = sub === undefined;
    if (sub === undefined) {
      sub = { wildcard: false, names: new Set(), known: new Map(), pending: new Map(), acked: 0 };
      this.subs.set(url, sub);
      for (const [n, v] of Object.entries(req.initial_resource_versions)) sub.known.set(n, v);
      if (req.resource_names_subscribe.length === 0) sub.wildcard = true; // legacy wildcard
    }
    if (req.response_nonce !== '') {
      const v = sub.pending.get(req.response_nonce);
      sub.pending.delete(req.response_nonce);
      const ev = { node: this.node, typeUrl: url, version: String(v ?? ''), nonce: req.response_nonce, delta: true };
      if (req.error_detail && req.error_detail.message !== '') {
        this.server.emitNack({ ...ev, error: req.error_detail.message });
      } else if (v !== undefined) {
        sub.acked = Math.max(sub.acked, v);
        this.server.emitAck(ev);
      }
    }
    const added: string[] = [];
    for (const n of req.resource_names_subscribe) {
      if (n === '*') sub.wildcard = true;
      else if (!sub.names.has(n)) {
        sub.names.add(n);
        added.push(n);
      }
    }
    for (const n of req.resource_names_unsubscribe) {
      if (n === '*') sub.wildcard = false;
      else sub.names.delete(n);
      for (const k of [...sub.known.keys()]) if (nameMatches(n, k) && !this.subscribed(sub, k)) sub.known.delete(k);
    }
    if (first || added.length > 0) this.push(url, sub, true);
  }

  private subscribed(sub: DeltaSub, name: string): boolean {
    if (sub.wildcard) return true;
    for (const n of sub.names) if (nameMatches(n, name)) return true;
    return false;
  }

  onChange(change: TypeChange): void {
    const sub = this.subs.get(change.typeUrl);
    if (sub !== undefined) this.push(change.typeUrl, sub, false, change);
  }

  /**
   * Sends resources whose version the client does not hold and removals of what it holds
   * but no longer exists. A fresh subscription is always answered, if only with an empty
   * response, so the client knows the (possibly empty) set is complete.
   */
  private push(url: string, sub: DeltaSub, answer: boolean, change?: TypeChange): void {
    const all = this.server.store.resources(url);
    const resources: StoredResource[] = [];
    const removed: string[] = [];
    const consider = (name: string): void => {
      const r = all.get(name);
      if (r === undefined) {
        if (sub.known.has(name)) {
          removed.push(name);
          sub.known.delete(name);
        }
      } else if (this.subscribed(sub, name) && sub.known.get(name) !== r.version) {
        resources.push(r);
        sub.known.set(name, r.version);
      }
    };
    if (change !== undefined) {
      // Cost proportional to the change, not to the store.
      for (const n of change.changed) consider(n);
      for (const n of change.removed) consider(n);
    } else {
      for (const n of all.keys()) consider(n);
      for (const n of [...sub.known.keys()]) if (!all.has(n)) consider(n);
    }
    const version = this.server.store.version(url);
    if (resources.length === 0 && removed.length === 0 && !answer) {
      if (sub.pending.size === 0) sub.acked = Math.max(sub.acked, version);
      return;
    }
    const nonce = String(++this.nonceCounter);
    sub.pending.set(nonce, version);
    this.call.write({
      system_version_info: String(version),
      type_url: url,
      nonce,
      resources: resources.map((r) => ({ name: r.name, version: r.version, resource: { type_url: url, value: r.bytes } })),
      removed_resources: removed,
    });
  }
}

export interface XdsServerOptions {
  readonly log?: XdsServerLog;
}

export class XdsServer extends EventEmitter {
  readonly store = new ResourceStore();
  // Delta reconnects carry initial_resource_versions for every resource held: no 4 MiB cap.
  private readonly grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  private readonly streams = new Set<Stream>();
  private nextId = 0;
  private readonly log: XdsServerLog;
  /** Per node and type: the highest version ACKed (or known to be current). */
  private readonly acks = new Map<string, number>();

  constructor(opts: XdsServerOptions = {}) {
    super();
    this.log = opts.log ?? (() => {});
    const sotw = {
      requestStream: true,
      responseStream: true,
      requestSerialize: (v: DiscoveryRequest) => codecs.request.encode(v),
      requestDeserialize: (b: Buffer) => codecs.request.decode(b),
      responseSerialize: (v: DiscoveryResponse) => codecs.response.encode(v),
      responseDeserialize: (b: Buffer) => codecs.response.decode(b),
    } as const;
    const delta = {
      requestStream: true,
      responseStream: true,
      requestSerialize: (v: DeltaDiscoveryRequest) => codecs.deltaRequest.encode(v),
      requestDeserialize: (b: Buffer) => codecs.deltaRequest.decode(b),
      responseSerialize: (v: DeltaDiscoveryResponse) => codecs.deltaResponse.encode(v),
      responseDeserialize: (b: Buffer) => codecs.deltaResponse.decode(b),
    } as const;
    const onSotw = (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => this.attach(new SotwStream(this, ++this.nextId, call), call);
    const onDelta = (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => this.attach(new DeltaStream(this, ++this.nextId, call), call);
    this.grpcServer.addService(
      {
        StreamAggregatedResources: { path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', ...sotw },
        DeltaAggregatedResources: { path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources', ...delta },
      },
      { StreamAggregatedResources: onSotw, DeltaAggregatedResources: onDelta },
    );
    // The same streams answer the non-aggregated SDS service, as pilot-agent's SDS server
    // does for Envoy's `api_config_source` secrets (the resources held are what is served).
    this.grpcServer.addService(
      {
        StreamSecrets: { path: '/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets', ...sotw },
        DeltaSecrets: { path: '/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets', ...delta },
      },
      { StreamSecrets: onSotw, DeltaSecrets: onDelta },
    );
  }

  private attach(s: Stream, call: grpc.ServerDuplexStream<unknown, unknown>): void {
    this.streams.add(s);
    // The stream's request metadata (GrpcService.initial_metadata of the client) goes with it.
    this.emit('connect', s.id, call.metadata.getMap());
    const done = (): void => {
      if (this.streams.delete(s)) this.emit('disconnect', { id: s.id, node: s.node });
    };
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
  }

  /** Binds `host:port` (port 0 picks one) and returns the port; a host "unix:<path>" binds that Unix socket (port ignored). */
  listen(port = 0, host = '127.0.0.1'): Promise<number> {
    const target = host.startsWith('unix:') ? host : `${host.includes(':') ? `[${host}]` : host}:${port}`;
    return new Promise((resolve, reject) => {
      this.grpcServer.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, p) => {
        if (err) reject(err);
        else resolve(p);
      });
    });
  }

  /** Ends every stream (clients reconnect) and stops the server. */
  close(): Promise<void> {
    for (const s of this.streams) s.close();
    this.streams.clear();
    // Clients reconnect on their own; there is nothing to wait for.
    this.grpcServer.forceShutdown();
    return new Promise((resolve) => setTimeout(resolve, 20));
  }

  get connections(): number {
    return this.streams.size;
  }

  // ---------------------------------------------------------------- resources

  /** Replaces all resources of a type; streams get only what changed. Returns the type version. */
  setResources(typeUrl: string, resources: ReadonlyMap<string, Readonly<Record<string, unknown>>> | Readonly<Record<string, Readonly<Record<string, unknown>>>>): number {
    const m = resources instanceof Map ? resources : new Map(Object.entries(resources));
    return this.publish(this.store.replace(typeUrl, m));
  }

  /** Upserts and removes some resources of a type. Returns the type version. */
  updateResources(typeUrl: string, upsert: ReadonlyMap<string, Readonly<Record<string, unknown>>> | Readonly<Record<string, Readonly<Record<string, unknown>>>>, remove: readonly string[] = []): number {
    const m = upsert instanceof Map ? upsert : new Map(Object.entries(upsert));
    return this.publish(this.store.update(typeUrl, m, remove));
  }

  private publish(change: TypeChange): number {
    if (change.changed.length === 0 && change.removed.length === 0) return change.version;
    this.log('debug', `xds server: ${change.typeUrl} v${change.version}: ${change.changed.length} changed, ${change.removed.length} removed`);
    for (const s of this.streams) s.onChange(change);
    this.refreshAcks(change.typeUrl);
    return change.version;
  }

  version(typeUrl: string): number {
    return this.store.version(typeUrl);
  }

  // ---------------------------------------------------------------- ACK / NACK

  emitAck(ev: AckEvent): void {
    this.log('debug', `xds server: ACK ${ev.node} ${ev.typeUrl} ${ev.version}`);
    this.refreshAcks(ev.typeUrl);
    this.emit('ack', ev);
  }

  emitNack(ev: NackEvent): void {
    this.log('warn', `xds server: NACK from ${ev.node} for ${ev.typeUrl} (nonce ${ev.nonce}): ${ev.error}`);
    this.emit('nack', ev);
  }

  private refreshAcks(typeUrl: string): void {
    for (const s of this.streams) {
      const key = `${s.node}\0${typeUrl}`;
      const v = s.ackedVersion(typeUrl);
      if (v > (this.acks.get(key) ?? 0)) {
        this.acks.set(key, v);
        this.emit('acked-version', { node: s.node, typeUrl, version: v });
      }
    }
  }

  /** Highest version of `typeUrl` that `node` has ACKed or is known to hold. */
  ackedVersion(node: string, typeUrl: string): number {
    return this.acks.get(`${node}\0${typeUrl}`) ?? 0;
  }

  /** Resolves once `node` has ACKed `typeUrl` at `version` or later (or holds it). */
  waitForAck(node: string, typeUrl: string, version: number = this.version(typeUrl), timeoutMs = 10_000): Promise<void> {
    if (this.ackedVersion(node, typeUrl) >= version) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAck = (): void => {
        if (this.ackedVersion(node, typeUrl) >= version) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no ACK from ${node} for ${typeUrl} v${version} within ${timeoutMs}ms (have v${this.ackedVersion(node, typeUrl)})`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('acked-version', onAck);
      };
      this.on('acked-version', onAck);
    });
  }

  /** Resolves with the next NACK from `node` for `typeUrl`. */
  waitForNack(node: string, typeUrl: string, timeoutMs = 10_000): Promise<NackEvent> {
    return new Promise((resolve, reject) => {
      const onNack = (ev: NackEvent): void => {
        if (ev.node === node && ev.typeUrl === typeUrl) {
          cleanup();
          resolve(ev);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no NACK from ${node} for ${typeUrl} within ${timeoutMs}ms`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('nack', onNack);
      };
      this.on('nack', onNack);
    });
  }
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
