import type { AccessLogConfig, Bootstrap, Cluster, ConfigSink, Endpoint, EndpointDiff, FilterChain, HttpConnectionManager, Listener, RouteConfiguration, TcpProxy, TypedExtension } from '../../config/src/index.js';
import { decodeInternalUpstream, isInternalUpstreamType } from '../../config/src/index.js';
import { Diagnostics, diffEndpoints, ECDS_FILTER_TYPE, flattenLoadAssignment, formatProblem, type Problem } from '../../config/src/index.js';
import { buildHttpFilterChain, decodePerFilterConfig, systemClock, UserFilterManager, type Clock, type FilterHost, type HttpFilterChain } from '../../filters/src/index.js';
import {
  checkSecretSources, checkTlsContextSources, decodeSecretExtension, decodeTransportSocket, DownstreamTlsProvider, peerIdentity, SecretStore, UpstreamTlsProvider,
  type DownstreamTlsContextSpec, type UpstreamTlsContextSpec,
} from '../../certs/src/index.js';
import { ClusterRuntime } from './cluster/cluster.js';
import { upstreamTlsBuilder } from './upstream/tls-builder.js';
import { resolveRouteDataSources } from '../../config/src/index.js';
import { DnsRefresher } from './cluster/dns.js';
import { ConnectionManager, makeHcmStats, type HcmEnvironment, type HcmStats } from './http/connection-manager.js';
import { HttpChain } from './http/listener.js';
import { makeHttpChain } from './http1/raw-chain.js';
import type { ChainRuntime } from './listener/network-listener.js';
import { listenerStatName, NetworkListener } from './listener/network-listener.js';
import { readOriginalDst, warnIfOriginalDstUnavailable } from './net/original-dst.js';
import { OverloadManager } from './overload/overload-manager.js';
import type { Logger } from './log.js';
import { RouteTable } from './routing/route-table.js';
import type { Snapshot } from './snapshot.js';
import { StatsStore } from './stats/stats.js';
import { TcpProxyChain, type TcpSessionLog } from './tcp/tcp-proxy.js';
import { TlsTcpChain } from './tcp/tls-tcp-chain.js';
import type { UpstreamExchange } from './tcp/upstream-exchange.js';
import { compileTunneling, TunnelUpstreams } from './tunnel/upstreams.js';
// Registers envoy.filters.http.set_filter_state (the waypoint's connect_authority filter).
import './tunnel/set-filter-state.js';
import { connectionInfo, type ConnectionInfo } from './net/connection-info.js';
import { buildNetworkFilterChain, NetworkFilterChain } from './listener/network-filter-chain.js';
import './listener/builtin-network-filters.js';

export type ServerState = 'PRE_INITIALIZING' | 'INITIALIZING' | 'LIVE' | 'DRAINING';
/** admin.v3.ServerInfo.State numbers, as Envoy's `server.state` gauge reports them. */
const SERVER_STATE_VALUE: Readonly<Record<ServerState, number>> = { LIVE: 0, DRAINING: 1, PRE_INITIALIZING: 2, INITIALIZING: 3 };

type ListenerRuntime = { impl: NetworkListener; version: string; lastUpdated: number };

export interface ProxyServerOptions {
  readonly dryRun?: boolean;
  readonly overload?: OverloadManager;
  readonly userFilters?: UserFilterManager;
  /** Randomness for weighted clusters and splits (tests pass a seeded source). */
  readonly random?: () => number;
  /** Time for decisions (filters' token buckets); tests pass a fake one. */
  readonly clock?: Clock;
}

/** Thrown by configuration entry points: the message names the offending field. */
export class ConfigError extends Error {}

/**
 * The composition root of the data plane: it owns clusters, route tables and listeners,
 * implements the ConfigSink that configuration sources drive, and publishes immutable
 * Snapshots. All validation happens before anything changes, so a bad update leaves the
 * last good configuration serving.
 */
export class ProxyServer implements ConfigSink {
  readonly stats = new StatsStore();
  /** Internal listeners, internal_upstream endpoints and CONNECT origination (the waypoint's HBONE). */
  readonly tunnels = new TunnelUpstreams(this.stats);
  readonly secrets = new SecretStore();
  /** Byte protocols tcp_proxy speaks upstream by negotiated ALPN (istio/ adds its metadata exchange). */
  readonly upstreamExchanges = new Map<string, (info: ConnectionInfo) => UpstreamExchange>();
  private readonly clusters = new Map<string, ClusterRuntime>();
  private readonly dns = new Map<string, DnsRefresher>();
  private readonly routeTables = new Map<string, RouteTable>();
  private readonly listeners = new Map<string, ListenerRuntime>();
  private readonly listenerConfigs = new Map<string, Listener>();
  private current: Snapshot = { version: 0, clusters: new Map(), routes: new Map() };
  private pendingCommit = false;
  private state: ServerState = 'PRE_INITIALIZING';
  private healthFailed = false;
  readonly startTime = Date.now();
  private readonly env: HcmEnvironment;
  private readonly hcmStats = new Map<string, HcmStats>();
  private readonly pendingListenerStarts: Promise<void>[] = [];
  private readonly listenFailures: string[] = [];
  /** Listeners by name -> bound port (for tests and `/listeners`). */
  readonly boundPorts = new Map<string, number>();
  onRequestDone: HcmEnvironment['onRequestDone'];
  onRequestStart: HcmEnvironment['onRequestStart'];
  /** Filter names whose config comes over ECDS, from every listener seen so far. */
  readonly ecdsNames = new Set<string>();
  /** Compiles a tcp_proxy's access_log (telemetry/); throws naming the field when invalid. */
  tcpAccessLog: ((entries: readonly AccessLogConfig[], path: string) => TcpSessionLog | undefined) | undefined;
  /** Called when a listener names a new ECDS filter (the xDS client subscribes to it). */
  onEcdsNames: ((names: ReadonlySet<string>) => void) | undefined;
  /** Observers of every endpoint change (the fast path's maps), as diffs. */
  readonly endpointObservers: ((diff: EndpointDiff) => void)[] = [];

  private readonly dryRun: boolean;
  /** The overload manager its listeners and connection managers consult (one per proxy). */
  readonly overload: OverloadManager;
  /** Hot-loaded user filters of this proxy's chains. */
  readonly userFilters: UserFilterManager;
  readonly clock: Clock;

  /** dryRun: build and validate everything, bind nothing (`pilotfish proxy --mode validate`). */
  constructor(readonly bootstrap: Bootstrap, readonly log: Logger, opts: ProxyServerOptions = {}) {
    this.dryRun = opts.dryRun ?? false;
    this.overload = opts.overload ?? new OverloadManager();
    this.clock = opts.clock ?? systemClock;
    this.userFilters = opts.userFilters ?? new UserFilterManager({ clock: this.clock, ...(opts.random ? { random: opts.random } : {}) });
    const self = this;
    this.env = {
      overload: this.overload,
      random: opts.random ?? Math.random,
      snapshot: () => self.current,
      draining: () => self.state === 'DRAINING',
      // An internal listener's inner connection has no certificate: its identity came through the tunnel.
      peerIdentity: (socket) => peerIdentity(socket as never)?.spiffeId ?? connectionInfo(socket as never)?.peerPrincipal,
      get onRequestDone() {
        return self.onRequestDone;
      },
      get onRequestStart() {
        return self.onRequestStart;
      },
    };
    // Filter counters are this proxy's own (kept by its user filter manager, shared by its chains).
    this.stats.registerExternalGauges('', () => this.userFilters.stats.snapshot());
    // Envoy's server gauges that supervisors read: pilot-agent's readiness probe asks
    // /stats?usedonly&filter=^(server.state|listener_manager.workers_started) for "0" and "1".
    this.stats.registerExternalGauges('', () => ({
      'server.state': SERVER_STATE_VALUE[this.state],
      'server.live': this.state === 'LIVE' ? 1 : 0,
      'listener_manager.workers_started': this.state === 'LIVE' || this.state === 'DRAINING' ? 1 : 0,
    }));
    // TLS counters per listener / cluster, Envoy's names: listener.<name>.ssl.handshake, cluster.<name>.ssl.*
    this.stats.registerExternalGauges('', () => {
      const out: Record<string, number> = {};
      for (const [scope, stats] of this.tlsStats) for (const [k, v] of Object.entries(stats)) out[`${scope}.${k}`] = v as number;
      return out;
    });
  }

  private readonly tlsLog = (level: 'info' | 'warn' | 'error', message: string): void =>
    this.log.log(level === 'warn' ? 'warning' : level, `tls: ${message}`);

  /** TLS providers' counters by stat scope ("listener.main", "cluster.backend"). */
  private readonly tlsStats = new Map<string, object>();

  get snapshot(): Snapshot {
    return this.current;
  }

  get serverState(): ServerState {
    return this.state;
  }

  get healthCheckFailed(): boolean {
    return this.healthFailed;
  }

  setHealthCheckFailed(failed: boolean): void {
    this.healthFailed = failed;
  }

  /** Loads static_resources; throws ConfigError naming the field on the first invalid item. */
  async loadStatic(): Promise<void> {
    this.state = 'INITIALIZING';
    const sr = this.bootstrap.staticResources;
    sr.secrets.forEach((ext, i) => this.upsertSecretAt(ext, `static_resources.secrets[${i}]`));
    for (const [i, c] of sr.clusters.entries()) {
      const initial = c.type === 'STRICT_DNS' || c.type === 'LOGICAL_DNS' ? [] : c.loadAssignment ? flattenLoadAssignment(c.loadAssignment) : [];
      this.addCluster(c, initial, `static_resources.clusters[${i}]`);
    }
    this.commit();
    for (const [i, l] of sr.listeners.entries()) this.addListener(l, `static_resources.listeners[${i}]`);
    await Promise.all(this.pendingListenerStarts.splice(0));
    if (this.listenFailures.length > 0) throw new ConfigError(this.listenFailures.splice(0).join('\n'));
    this.commit();
  }

  markLive(): void {
    if (this.state !== 'DRAINING') this.state = 'LIVE';
  }

  // ---------------------------------------------------------------- ConfigSink

  upsertCluster(cluster: Cluster, endpoints: readonly Endpoint[]): void {
    this.addCluster(cluster, endpoints, `cluster "${cluster.name}"`);
    this.pendingCommit = true;
  }

  removeCluster(name: string): void {
    const c = this.clusters.get(name);
    if (!c) return;
    this.clusters.delete(name);
    this.dns.get(name)?.stop();
    this.dns.delete(name);
    this.pendingCommit = true;
    // Requests that already picked a host finish on their pool; close() drains them.
    setTimeout(() => void c.close(), 5000).unref();
  }

  applyEndpointDiff(diff: EndpointDiff): void {
    const c = this.clusters.get(diff.cluster);
    if (!c) return;
    c.applyDiff(diff);
    this.notifyEndpoints(diff);
  }

  private notifyEndpoints(diff: EndpointDiff): void {
    for (const o of this.endpointObservers) {
      try {
        o(diff);
      } catch (e) {
        this.log.error('endpoint observer failed', { cluster: diff.cluster, error: String(e) });
      }
    }
  }

  upsertRouteConfiguration(config: RouteConfiguration): void {
    const diag = new Diagnostics();
    const table = compileRouteTable(config, diag, `route_config "${config.name}"`);
    if (!table) throw new ConfigError(diag.errors.map(formatProblem).join('; '));
    this.routeTables.set(config.name, table);
    this.pendingCommit = true;
  }

  removeRouteConfiguration(name: string): void {
    this.routeTables.delete(name);
    this.pendingCommit = true;
  }

  upsertListener(listener: Listener): void {
    this.addListener(listener, `listener "${listener.name}"`);
  }

  removeListener(name: string): void {
    const l = this.listeners.get(name);
    if (!l) return;
    this.listeners.delete(name);
    this.listenerConfigs.delete(name);
    this.boundPorts.delete(name);
    this.tunnels.internal.delete(name, l.impl);
    this.reindexListeners();
    l.impl.drain();
    void l.impl.closed();
  }

  upsertSecret(name: string, secret: TypedExtension): void {
    this.upsertSecretAt({ ...secret, name }, `secret "${name}"`);
  }

  removeSecret(name: string): void {
    this.secrets.remove(name);
  }

  commit(): void {
    this.current = { version: this.current.version + 1, clusters: new Map(this.clusters), routes: new Map(this.routeTables) };
    this.pendingCommit = false;
  }

  /** Commits if an upsert/remove happened since the last commit. */
  flush(): void {
    if (this.pendingCommit) this.commit();
  }

  // ---------------------------------------------------------------- building blocks

  private upsertSecretAt(ext: TypedExtension, path: string): void {
    const diag = new Diagnostics();
    const spec = decodeSecretExtension(ext, diag, path);
    // Files are read here, not in the decoder: an unreadable one fails this update by its field path.
    if (!spec || !checkSecretSources(spec, diag, path)) throw new ConfigError(diag.errors.map(formatProblem).join('; '));
    this.secrets.set(spec.name, spec);
  }

  private addCluster(c: Cluster, endpoints: readonly Endpoint[], path: string): void {
    let tls: UpstreamTlsProvider | undefined;
    // internal_upstream (a cluster of internal endpoints): which metadata to pass on; no TLS.
    const internalUpstream = c.transportSocket && isInternalUpstreamType(c.transportSocket.typeUrl) ? c.transportSocket : undefined;
    if (internalUpstream) {
      const diag = new Diagnostics();
      const spec = decodeInternalUpstream(internalUpstream.config, diag, `${path}.transport_socket.typed_config`);
      if (!spec) throw new ConfigError(diag.errors.map(formatProblem).join('; '));
      this.tunnels.internal.setClusterTransport(c.name, spec);
    } else this.tunnels.internal.setClusterTransport(c.name, undefined);
    if (c.transportSocket && !internalUpstream) {
      const diag = new Diagnostics();
      const spec = decodeTransportSocket(c.transportSocket, diag, `${path}.transport_socket`);
      if (!spec || diag.errors.length > 0 || !checkTlsContextSources(spec, diag)) throw new ConfigError(diag.errors.map(formatProblem).join('; '));
      if (spec.kind !== 'upstream') throw new ConfigError(`${path}.transport_socket: a cluster needs an UpstreamTlsContext`);
      tls = new UpstreamTlsProvider(spec as UpstreamTlsContextSpec, this.secrets, { name: c.name, log: this.tlsLog });
      this.tlsStats.set(`cluster.${c.name}`, tls.stats);
    }
    const existing = this.clusters.get(c.name);
    if (existing && existing.compatibleWith(c) && !tls) {
      existing.updateConfig(c);
      if (c.type !== 'EDS') this.replaceEndpoints(existing, endpoints);
      return;
    }
    // transport_socket_matches TLS, ORIGINAL_DST loop protection, config warnings (upstream engineer's edit).
    const buildTls = upstreamTlsBuilder(this.secrets, { log: this.tlsLog });
    const runtime = new ClusterRuntime(c, endpoints, this.stats, tls, {
      upstreamTls: (ext, p, matchName) => {
        let provider: UpstreamTlsProvider;
        try {
          provider = buildTls(ext, p);
        } catch (e) {
          throw new ConfigError((e as Error).message);
        }
        this.tlsStats.set(`cluster.${c.name}.${matchName}`, provider.stats);
        return provider;
      },
      // Bound ports, not configured ones: a listener on port 0 is reachable on the port it got.
      ownListeners: () => [...this.listenerConfigs.values()].filter((l) => l.bindToPort)
        .map((l) => ({ address: l.address.address, port: this.boundPorts.get(l.name) ?? l.address.port })),
      warn: (m) => this.log.warn(m),
      tunnels: this.tunnels,
      random: this.env.random,
    });
    this.clusters.set(c.name, runtime);
    if (existing) {
      const keep = new Set(endpoints.map((e) => e.key));
      const removed = [...existing.endpoints.hosts()].map((h) => h.key).filter((k) => !keep.has(k));
      this.notifyEndpoints({ cluster: c.name, added: endpoints, removed, changed: [] });
    } else if (endpoints.length > 0) this.notifyEndpoints({ cluster: c.name, added: endpoints, removed: [], changed: [] });
    if (existing) setTimeout(() => void existing.close(), 5000).unref();
    if ((c.type === 'STRICT_DNS' || c.type === 'LOGICAL_DNS') && !this.dryRun) {
      this.dns.get(c.name)?.stop();
      const r = new DnsRefresher(c, (d) => this.applyEndpointDiff(d), (e) => this.log.warn('dns resolution failed', { cluster: c.name, error: String(e) }));
      this.dns.set(c.name, r);
      void r.start().then((eps) => {
        if (eps.length > 0 && this.clusters.get(c.name) === runtime) this.applyEndpointDiff({ cluster: c.name, added: eps, removed: [], changed: [] });
      });
    }
  }

  /** A full endpoint list for an existing cluster (static config update): applied as a diff. */
  private replaceEndpoints(runtime: ClusterRuntime, endpoints: readonly Endpoint[]): void {
    const prev = new Map<string, Endpoint>();
    for (const h of runtime.endpoints.hosts()) prev.set(h.key, h.endpoint);
    const diff = diffEndpoints(runtime.name, prev, endpoints);
    if (diff.added.length || diff.removed.length || diff.changed.length) {
      runtime.applyDiff(diff);
      this.notifyEndpoints(diff);
    }
  }

  private addListener(l: Listener, path: string): void {
    if (l.filterChains.length === 0 && !l.defaultFilterChain) throw new ConfigError(`${path}.filter_chains: at least one filter chain is required`);
    if (l.listenerFilters.some((f) => f.typeUrl.endsWith('.original_dst.v3.OriginalDst'))) {
      // Once per process: without the addon, intercepted connections cannot be routed by where they were going.
      warnIfOriginalDstUnavailable((line) => this.log.warn(line));
    }
    const existing = this.listeners.get(l.name);
    const version = JSON.stringify(l, mapsAsObjects);
    if (existing && existing.version === version) return;
    const reuse = existing && sameAddress(existing.impl.config, l) ? existing.impl : undefined;
    // Build every chain first: a chain that fails leaves the listener as it was.
    const previous = reuse ? reuse.allChains() : [];
    const specs = l.filterChains.map((c, i) => this.prepareChain(l, c, `${path}.filter_chains[${i}]`));
    const defSpec = l.defaultFilterChain ? this.prepareChain(l, l.defaultFilterChain, `${path}.default_filter_chain`) : undefined;
    const stats = reuse?.stats;
    const used = new Set<ChainRuntime>();
    const realize = (spec: PreparedChain, index: number, listenerStats: NetworkListener['stats']): ChainRuntime => {
      // A chain keeps its handler (and its connections) across updates when its name (or, unnamed, its place) and kind match.
      const old = previous.find((p) => !used.has(p) && p.handler.kind === spec.chain.network.kind && (spec.chain.name !== '' ? p.name === spec.chain.name : previous.indexOf(p) === index));
      if (old) used.add(old);
      if (spec.kind === 'http') {
        if (old && old.handler instanceof HttpChain) {
          old.handler.update(spec.hcm, spec.tls, spec.filters);
          return { name: spec.chain.name, handler: old.handler, ...(spec.chain.connectionLimit ? { connectionLimit: spec.chain.connectionLimit } : {}) };
        }
        return { name: spec.chain.name, handler: makeHttpChain(spec.hcm, listenerStats, spec.tls, spec.filters), ...(spec.chain.connectionLimit ? { connectionLimit: spec.chain.connectionLimit } : {}) };
      }
      const limit = spec.chain.connectionLimit ? { connectionLimit: spec.chain.connectionLimit } : {};
      if (spec.tls) {
        // TLS in front of tcp_proxy (Istio's inbound mTLS TCP chains): the handshake first, then the TCP proxy.
        if (old && old.handler instanceof TlsTcpChain && old.handler.inner instanceof TcpProxyChain) {
          old.handler.inner.update(spec.proxy, spec.filters, spec.log);
          old.handler.update(old.handler.inner, spec.tls);
          return { name: spec.chain.name, handler: old.handler, ...limit };
        }
        return { name: spec.chain.name, handler: new TlsTcpChain(new TcpProxyChain(spec.proxy, () => this.current, this.stats, this.env.random, spec.filters, spec.log, this.upstreamExchanges), spec.tls, listenerStats), ...limit };
      }
      if (old && old.handler instanceof TcpProxyChain) {
        old.handler.update(spec.proxy, spec.filters, spec.log);
        return { name: spec.chain.name, handler: old.handler, ...limit };
      }
      return { name: spec.chain.name, handler: new TcpProxyChain(spec.proxy, () => this.current, this.stats, this.env.random, spec.filters, spec.log, this.upstreamExchanges), ...limit };
    };
    const deps = {
      stats: this.stats,
      overload: this.overload,
      findListener: (address: string, port: number) => this.listenerFor(address, port),
      readOriginalDst,
    };
    if (reuse && stats) {
      const chains = specs.map((sp, i) => realize(sp, i, stats));
      const def = defSpec ? realize(defSpec, -1, stats) : undefined;
      reuse.update(l, chains, def);
      // Chains that are gone drain: their connections finish, new ones go to the new chains.
      for (const p of previous) if (!used.has(p)) p.handler.drain();
      this.listeners.set(l.name, { impl: reuse, version, lastUpdated: Date.now() });
      this.listenerConfigs.set(l.name, l);
      this.reindexListeners();
      return;
    }
    if (existing) this.removeListener(l.name);
    const impl = new NetworkListener(l, [], undefined, deps);
    // internal_listener: reached by name from envoy_internal_address endpoints, never bound.
    if (l.internal) this.tunnels.internal.set(l.name, impl);
    const chains = specs.map((sp, i) => realize(sp, i, impl.stats));
    const def = defSpec ? realize(defSpec, -1, impl.stats) : undefined;
    impl.update(l, chains, def);
    this.listeners.set(l.name, { impl, version, lastUpdated: Date.now() });
    this.listenerConfigs.set(l.name, l);
    this.reindexListeners();
    this.startListening(l, impl);
  }

  /** Validates and builds what one filter chain needs (connection manager, TLS), without touching the running listener. */
  private prepareChain(l: Listener, chain: FilterChain, fcPath: string): PreparedChain {
    let tls: DownstreamTlsProvider | undefined;
    if (chain.transportSocket) {
      const diag = new Diagnostics();
      const spec = decodeTransportSocket(chain.transportSocket, diag, `${fcPath}.transport_socket`);
      if (!spec || diag.errors.length > 0 || !checkTlsContextSources(spec, diag)) throw new ConfigError(diag.errors.map(formatProblem).join('; '));
      if (spec.kind !== 'downstream') throw new ConfigError(`${fcPath}.transport_socket: a listener needs a DownstreamTlsContext`);
      tls = new DownstreamTlsProvider(spec as DownstreamTlsContextSpec, this.secrets, { name: l.name, log: this.tlsLog });
      // Envoy's TLS stats are per listener (listener.<address>.ssl.*); a listener with several TLS chains reports the first one's here.
      const scope = `listener.${listenerStatName(l)}`;
      if (!this.tlsStats.has(scope) || fcPath.endsWith('filter_chains[0]')) this.tlsStats.set(scope, tls.stats);
    }
    const filters = this.buildNetworkFilters(l, chain, fcPath);
    if (chain.network.kind === 'tcp' && chain.network.tunneling) {
      // tunneling_config's format strings are compiled now: an operator pilotfish cannot evaluate fails the listener.
      const t = compileTunneling(chain.network.tunneling);
      if (typeof t === 'string') throw new ConfigError(`${fcPath}.filters[${chain.networkFilters.length}].typed_config.tunneling_config.${t}`);
    }
    if (chain.network.kind === 'http') {
      const hcm = this.buildConnectionManager(l.trafficDirection, chain.network, `${fcPath}.filters[${chain.networkFilters.length}].typed_config`);
      return { kind: 'http', chain, hcm, tls, filters };
    }
    let log: TcpSessionLog | undefined;
    if (chain.network.accessLog && this.tcpAccessLog) {
      try {
        log = this.tcpAccessLog(chain.network.accessLog, `${fcPath}.filters[${chain.networkFilters.length}].typed_config.access_log`);
      } catch (e) {
        throw new ConfigError((e as Error).message);
      }
    }
    return { kind: 'tcp', chain, proxy: chain.network, tls, filters, log };
  }

  /** Each distinct configuration warning, logged once: istiod's chains repeat the same filters, and every update rebuilds them. */
  private readonly warnedConfig = new Set<string>();
  private warnConfig(w: Problem): void {
    if (this.warnedConfig.has(w.message)) return;
    if (this.warnedConfig.size < 10_000) this.warnedConfig.add(w.message);
    this.log.warn(formatProblem(w));
  }

  /** The chain's non-terminal network filters through their registered factories; a problem fails the listener with its reason. */
  private buildNetworkFilters(l: Listener, chain: FilterChain, fcPath: string): NetworkFilterChain {
    if (chain.networkFilters.length === 0) return NetworkFilterChain.EMPTY;
    const diag = new Diagnostics();
    const errors = this.stats.listenerScope(listenerStatName(l)).counter('network_filter_error');
    const built = buildNetworkFilterChain(chain.networkFilters, diag, `${fcPath}.filters`, {
      stats: this.stats, node: this.bootstrap.node, listenerName: l.name, trafficDirection: l.trafficDirection,
      chainKind: chain.network.kind, log: (level, m) => this.log.log(level === 'warn' ? 'warning' : level, m),
      clusterMetadata: (name) => this.clusters.get(name)?.config.filterMetadata,
    }, (f, e) => {
      errors.inc();
      this.log.warn(`network filter ${f.name} failed on a connection of listener "${l.name}": ${e instanceof Error ? e.message : String(e)}`);
    });
    for (const w of diag.warnings) this.warnConfig(w);
    if (!built || diag.errors.length > 0) throw new ConfigError(diag.errors.map(formatProblem).join('; '));
    return built;
  }

  /** use_original_dst: the listener for an address:port — the one bound to that IP, else the wildcard one on that port. */
  private listenerFor(address: string, port: number): NetworkListener | undefined {
    const a = address.replace(/^::ffff:/, '');
    return this.listenerIndex.get(`${a}:${port}`) ?? this.listenerIndex.get(`0.0.0.0:${port}`) ?? this.listenerIndex.get(`:::${port}`);
  }

  private readonly listenerIndex = new Map<string, NetworkListener>();

  private reindexListeners(): void {
    this.listenerIndex.clear();
    for (const { impl } of this.listeners.values()) {
      const a = impl.config.address;
      if (a.pipe) continue;
      this.listenerIndex.set(`${a.address}:${a.port}`, impl);
    }
  }

  private startListening(l: Listener, impl: NetworkListener): void {
    if (this.dryRun || !impl.bound) return;
    // Never rejects: a listener added later over xDS must not become an unhandled rejection.
    const p = impl.listen().then(
      () => {
        this.boundPorts.set(l.name, impl.port);
        this.log.info('listener started', { listener: l.name, address: l.address.pipe ? l.address.address : `${l.address.address}:${impl.port}` });
      },
      (err: NodeJS.ErrnoException) => {
        if (this.listeners.get(l.name)?.impl === impl) this.listeners.delete(l.name);
        this.listenerConfigs.delete(l.name);
        const msg = `listener "${l.name}": cannot listen on ${l.address.address}:${l.address.port}: ${err.code ?? err.message}`;
        this.listenFailures.push(msg);
        this.log.error(msg);
      },
    );
    if (this.state !== 'LIVE') this.pendingListenerStarts.push(p);
  }

  /** Waits for listeners added through the sink to be bound. */
  async listenersReady(): Promise<void> {
    await Promise.all(this.pendingListenerStarts.splice(0));
  }

  private buildConnectionManager(direction: Listener['trafficDirection'], cfg: HttpConnectionManager, path: string): ConnectionManager {
    const before = this.ecdsNames.size;
    for (const f of cfg.httpFilters) if (f.typeUrl === ECDS_FILTER_TYPE) this.ecdsNames.add(f.name);
    if (this.ecdsNames.size !== before) this.onEcdsNames?.(this.ecdsNames);
    const diag = new Diagnostics();
    const chain: HttpFilterChain | undefined = buildHttpFilterChain(cfg.httpFilters, diag, `${path}.http_filters`, { userFilters: this.userFilters, clock: this.clock, random: this.env.random, host: this.filterHost(direction) });
    let inline: RouteTable | undefined;
    if (cfg.routeSource.kind === 'inline') inline = compileRouteTable(cfg.routeSource.config, diag, `${path}.route_config`);
    for (const w of diag.warnings) this.warnConfig(w);
    if (!chain || diag.errors.length > 0) throw new ConfigError(diag.errors.map(formatProblem).join('; '));
    // User filters load in workers; until they are ready their failure policy answers.
    void chain.ready.then((problems) => {
      for (const p of problems) this.log.error(`user filter failed to load: ${formatProblem(p)}`);
    });
    let stats = this.hcmStats.get(cfg.statPrefix);
    if (!stats) {
      stats = makeHcmStats(this.stats, cfg.statPrefix);
      this.hcmStats.set(cfg.statPrefix, stats);
    }
    return new ConnectionManager(cfg, chain, inline, this.env, stats);
  }

  /** What filters learn about where their chain runs (Istio's stats and metadata exchange read it). */
  private filterHost(trafficDirection: Listener['trafficDirection']): FilterHost {
    return {
      node: this.bootstrap.node,
      trafficDirection,
      labeledStats: this.stats.labeled,
      clusterMetadata: (name) => this.clusters.get(name)?.config.filterMetadata,
      clusterCounter: (cluster, name) => this.stats.clusterScope(cluster).counter(name),
    };
  }

  // ---------------------------------------------------------------- admin views

  clusterRuntimes(): ReadonlyMap<string, ClusterRuntime> {
    return this.clusters;
  }

  listenerRuntimes(): ReadonlyMap<string, ListenerRuntime> {
    return this.listeners;
  }

  routeTableList(): ReadonlyMap<string, RouteTable> {
    return this.routeTables;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Graceful drain: stop accepting, let in-flight requests finish, within `drainMs`. */
  async drain(drainMs: number): Promise<void> {
    if (this.state === 'DRAINING') return;
    this.state = 'DRAINING';
    this.log.info('draining listeners', { drain_time_ms: drainMs });
    for (const l of this.listeners.values()) l.impl.drain();
    const all = Promise.all([...this.listeners.values()].map((l) => l.impl.closed()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, drainMs)))]);
    if (timer) clearTimeout(timer);
  }

  async close(): Promise<void> {
    for (const l of this.listeners.values()) l.impl.destroy();
    this.tunnels.destroy();
    for (const d of this.dns.values()) d.stop();
    await Promise.all([...this.clusters.values()].map((c) => c.destroy()));
    await this.stats.shutdown();
  }
}

function sameAddress(a: Listener, b: Listener): boolean {
  return a.address.address === b.address.address && a.address.port === b.address.port && a.bindToPort === b.bindToPort;
}

/** JSON.stringify replacer: the filter_chain_matcher tree holds Maps, which would otherwise all print as {}. */
function mapsAsObjects(_key: string, value: unknown): unknown {
  return value instanceof Map ? Object.fromEntries(value) : value;
}

type PreparedChain =
  | { readonly kind: 'http'; readonly chain: FilterChain; readonly hcm: ConnectionManager; readonly tls: DownstreamTlsProvider | undefined; readonly filters: NetworkFilterChain }
  | { readonly kind: 'tcp'; readonly chain: FilterChain; readonly proxy: TcpProxy; readonly tls: DownstreamTlsProvider | undefined; readonly filters: NetworkFilterChain; readonly log: TcpSessionLog | undefined };

/** Compiles a route table, decoding typed_per_filter_config through filters/. */
export function compileRouteTable(config: RouteConfiguration, diag: Diagnostics, path: string): RouteTable | undefined {
  const before = diag.errors.length;
  // direct_response bodies from files or variables are read here, once per route configuration.
  const table = new RouteTable(resolveRouteDataSources(config, diag, path));
  config.virtualHosts.forEach((vh, vi) => {
    const cvh = table.virtualHosts[vi]!;
    cvh.routes.forEach((r, ri) => {
      const decoded: Record<string, unknown> = {};
      for (const [name, ext] of Object.entries(r.perFilterConfig)) {
        const inRoute = Object.hasOwn(r.config.typedPerFilterConfig, name);
        const p = inRoute ? `${path}.virtual_hosts[${vi}].routes[${ri}].typed_per_filter_config.${name}` : `${path}.virtual_hosts[${vi}].typed_per_filter_config.${name}`;
        const v = decodePerFilterConfig(name, ext, diag, p);
        if (v !== undefined) decoded[name] = v;
      }
      if (Object.keys(decoded).length > 0) r.decodedPerFilterConfig = decoded;
    });
    void vh;
  });
  return diag.errors.length > before ? undefined : table;
}
