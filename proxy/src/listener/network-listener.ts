import { unlinkSync } from 'node:fs';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { InternalConnection } from '../tunnel/internal-listeners.js';
import type { ConnectionLimit, Listener, ListenerFilter, ListenerFilterPredicate } from '../../../config/src/index.js';
import { listenerFilterPredicateMatches } from '../../../config/src/index.js';
import { setConnectionInfo, type ConnectionInfo } from '../net/connection-info.js';
import { listenOn } from '../net/listen.js';
import type { OverloadManager } from '../overload/overload-manager.js';
import type { Counter, Gauge, StatsStore } from '../stats/stats.js';
import { compileChainSelector, DEFAULT_CHAIN, NO_CHAIN, type ChainMatchInput, type ChainSelector } from './chain-select.js';
import type { ChainHandler } from './chain-handler.js';
import { MAX_CLIENT_HELLO, parseClientHello } from './client-hello.js';
import { MAX_HTTP_SNIFF, sniffHttp } from './http-sniff.js';

/** Envoy's listener stats that belong to the listener (not to a chain's network filters). */
export interface ListenerStats {
  readonly downstream_cx_total: Counter;
  readonly downstream_cx_active: Gauge;
  readonly downstream_cx_destroy: Counter;
  readonly downstream_cx_http1_total: Counter;
  readonly downstream_cx_http2_total: Counter;
  readonly downstream_cx_ssl_total: Counter;
  readonly downstream_cx_overload_reject: Counter;
  readonly downstream_global_cx_overflow: Counter;
  readonly no_filter_chain_match: Counter;
  readonly downstream_pre_cx_timeout: Counter;
  readonly downstream_listener_filter_error: Counter;
  /** Connections handed to another listener by use_original_dst (pilotfish's name). */
  readonly downstream_cx_original_dst_handoff: Counter;
}

/** A filter chain at run time: its handler and its connection_limit, if any. */
export interface ChainRuntime {
  readonly name: string;
  readonly handler: ChainHandler;
  readonly connectionLimit?: ConnectionLimit;
}

export interface ListenerDeps {
  readonly stats: StatsStore;
  readonly overload: OverloadManager;
  /** use_original_dst: the listener serving an address:port (exact IP first, then the wildcard one). */
  readonly findListener: (address: string, port: number) => NetworkListener | undefined;
  /**
   * Reads the original destination of an accepted socket (SO_ORIGINAL_DST, which the
   * fast path's getsockopt hook also answers), or undefined when it was not redirected
   * or the platform cannot tell.
   */
  readonly readOriginalDst: (socket: net.Socket) => { readonly address: string; readonly port: number } | undefined;
}

const TLS_INSPECTOR = /(^|[./])envoy\.extensions\.filters\.listener\.tls_inspector\.v3\.TlsInspector$/;
const HTTP_INSPECTOR = /(^|[./])envoy\.extensions\.filters\.listener\.http_inspector\.v3\.HttpInspector$/;
const ORIGINAL_DST = /(^|[./])envoy\.extensions\.filters\.listener\.original_dst\.v3\.OriginalDst$/;

interface ListenerFilterSet {
  readonly tls: boolean;
  readonly http: boolean;
  readonly originalDst: boolean;
  /** filter_disabled of each inspector: skipped for connections to a destination port the predicate matches. */
  readonly tlsDisabled?: ListenerFilterPredicate;
  readonly httpDisabled?: ListenerFilterPredicate;
  readonly originalDstDisabled?: ListenerFilterPredicate;
}

function listenerFilterSet(filters: readonly ListenerFilter[]): ListenerFilterSet {
  const find = (re: RegExp) => filters.find((f) => re.test(f.typeUrl));
  const tls = find(TLS_INSPECTOR);
  const http = find(HTTP_INSPECTOR);
  const od = find(ORIGINAL_DST);
  return {
    tls: tls !== undefined, http: http !== undefined, originalDst: od !== undefined,
    ...(tls?.filterDisabled ? { tlsDisabled: tls.filterDisabled } : {}),
    ...(http?.filterDisabled ? { httpDisabled: http.filterDisabled } : {}),
    ...(od?.filterDisabled ? { originalDstDisabled: od.filterDisabled } : {}),
  };
}

/**
 * The inspectors that run for a connection: filter_disabled is evaluated on the
 * destination port as the filter would see it (after original_dst restored it, as Envoy's
 * listener filters run in order).
 */
function enabledInspectors(f: ListenerFilterSet, destinationPort: number): { readonly tls: boolean; readonly http: boolean } {
  return {
    tls: f.tls && !(f.tlsDisabled && listenerFilterPredicateMatches(f.tlsDisabled, destinationPort)),
    http: f.http && !(f.httpDisabled && listenerFilterPredicateMatches(f.httpDisabled, destinationPort)),
  };
}

/**
 * One Envoy listener: a bound socket (or none, with bind_to_port: false), the listener
 * filters (original_dst, tls_inspector, http_inspector), filter chain selection, and
 * hand-off to the listener of a connection's original destination (use_original_dst).
 * Each chosen chain's handler serves the connection. Configuration updates swap the
 * chains and the selector; connections already accepted stay with the chain they got.
 */
export class NetworkListener {
  private readonly server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private draining = false;
  readonly stats: ListenerStats;
  private selector: ChainSelector;
  private filters: ListenerFilterSet;
  private limitStats = new Map<string, { limited: Counter; active: Gauge }>();

  constructor(
    public config: Listener,
    private chains: readonly ChainRuntime[],
    private defaultChain: ChainRuntime | undefined,
    private readonly deps: ListenerDeps,
  ) {
    this.stats = makeListenerStats(deps.stats, config);
    this.selector = compileChainSelector(config);
    this.filters = listenerFilterSet(config.listenerFilters);
    this.makeLimitStats();
    this.server = config.bindToPort
      ? net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.onAccept(socket))
      : undefined;
  }

  /** Binds the socket (TCP or a Unix pipe); a listener with bind_to_port: false has nothing to bind. */
  async listen(): Promise<void> {
    if (!this.server) return;
    const pipe = this.config.address.pipe;
    if (pipe && !pipe.path.startsWith('@')) {
      // A stale socket file from an earlier run would fail the bind with EADDRINUSE, as Envoy removes it too.
      try {
        unlinkSync(pipe.path);
      } catch {
        // absent: nothing to remove
      }
    }
    await listenOn(this.server, this.config.address);
  }

  /** The bound port (0 for pipes and unbound listeners). */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : this.config.address.port;
  }

  get bound(): boolean {
    return this.server !== undefined;
  }

  get activeConnections(): number {
    return this.sockets.size;
  }

  /** New chains for new connections; handlers no longer used are drained by the caller. */
  update(config: Listener, chains: readonly ChainRuntime[], defaultChain: ChainRuntime | undefined): void {
    this.config = config;
    this.chains = chains;
    this.defaultChain = defaultChain;
    this.selector = compileChainSelector(config);
    this.filters = listenerFilterSet(config.listenerFilters);
    this.makeLimitStats();
  }

  allChains(): readonly ChainRuntime[] {
    return this.defaultChain ? [...this.chains, this.defaultChain] : this.chains;
  }

  private makeLimitStats(): void {
    const next = new Map<string, { limited: Counter; active: Gauge }>();
    for (const c of this.allChains()) {
      const l = c.connectionLimit;
      if (!l) continue;
      const s = this.deps.stats.rootScope;
      next.set(l.statPrefix, this.limitStats.get(l.statPrefix) ?? {
        limited: s.counter(`connection_limit.${l.statPrefix}.limited_connections`),
        active: s.gauge(`connection_limit.${l.statPrefix}.active_connections`),
      });
    }
    this.limitStats = next;
  }

  private onAccept(socket: net.Socket): void {
    // Overload manager first (global limit, stop_accepting_connections), as Envoy orders it.
    const overload = this.deps.overload;
    socket.on('error', () => undefined);
    if (!overload.admitConnection()) {
      (overload.stopAccepting ? this.stats.downstream_cx_overload_reject : this.stats.downstream_global_cx_overflow).inc();
      socket.destroy();
      return;
    }
    socket.once('close', () => overload.releaseConnection());
    this.track(socket);
    this.runListenerFilters(socket);
  }

  /** A connection handed over by another listener's use_original_dst (already admitted and counted there). */
  acceptHandoff(socket: net.Socket, originalDst: { address: string; port: number }): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    this.track(socket);
    this.sniffAndDispatch(socket, originalDst);
  }

  /**
   * An inner connection from an internal_upstream socket (proxy/src/tunnel/): no accept,
   * no overload admission of its own (the outer connection was admitted); original_dst was
   * restored from filter state / metadata by the caller, which also seeds filter state and
   * the downstream identity.
   */
  acceptInternal(socket: Duplex, conn: InternalConnection): void {
    const s = socket as net.Socket;
    s.on('error', () => undefined);
    if (this.draining) {
      s.destroy();
      return;
    }
    this.track(s);
    this.sniffAndDispatch(s, conn.originalDst, conn);
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** The listener has an original_dst listener filter (internal listeners restore from filter state). */
  get restoresOriginalDst(): boolean {
    return this.filters.originalDst;
  }

  private track(socket: net.Socket): void {
    this.stats.downstream_cx_total.inc();
    this.stats.downstream_cx_active.inc();
    this.sockets.add(socket);
    socket.once('close', () => {
      // A connection handed to another listener is no longer ours to count.
      if (!this.sockets.delete(socket)) return;
      this.stats.downstream_cx_active.dec();
      this.stats.downstream_cx_destroy.inc();
    });
  }

  private runListenerFilters(socket: net.Socket): void {
    let originalDst: { address: string; port: number } | undefined;
    const od = this.filters;
    // use_original_dst implies the original_dst listener filter, as Envoy adds it (istiod's virtualOutbound has no listener_filters).
    if ((od.originalDst || this.config.useOriginalDst) && !(od.originalDstDisabled && listenerFilterPredicateMatches(od.originalDstDisabled, socket.localPort ?? 0))) {
      originalDst = this.deps.readOriginalDst(socket);
      if (originalDst && this.config.useOriginalDst) {
        const target = this.deps.findListener(originalDst.address, originalDst.port);
        if (target && target !== this) {
          this.stats.downstream_cx_original_dst_handoff.inc();
          // Counted on the listener that serves it from now on (Envoy's behaviour for handed-off connections).
          this.sockets.delete(socket);
          this.stats.downstream_cx_active.dec();
          target.acceptHandoff(socket, originalDst);
          return;
        }
      }
    }
    this.sniffAndDispatch(socket, originalDst);
  }

  /** tls_inspector / http_inspector: peek at the first bytes, then push them back and dispatch. */
  private sniffAndDispatch(socket: net.Socket, originalDst: { address: string; port: number } | undefined, inner?: InternalConnection): void {
    const f = enabledInspectors(this.filters, originalDst?.port ?? socket.localPort ?? 0);
    if (!f.tls && !f.http) {
      this.dispatch(socket, originalDst, undefined, '', [], inner);
      return;
    }
    let buffered: Buffer = Buffer.alloc(0);
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (serverName: string | undefined, transport: string, alpn: readonly string[]): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (buffered.length > 0) socket.unshift(buffered);
      this.dispatch(socket, originalDst, serverName, transport, alpn, inner);
    };
    const decide = (final: boolean): void => {
      let tlsDone = !f.tls;
      let serverName: string | undefined;
      let transport = '';
      let alpn: readonly string[] = [];
      if (f.tls) {
        const hello = parseClientHello(buffered);
        if (hello.kind === 'tls') {
          tlsDone = true;
          transport = 'tls';
          serverName = hello.serverName;
          alpn = hello.alpn;
        } else if (hello.kind === 'not_tls') {
          tlsDone = true;
          transport = 'raw_buffer';
        } else if (final) {
          tlsDone = true;
        }
      }
      if (transport === 'tls' || !f.http) {
        if (tlsDone) finish(serverName, transport, alpn);
        return;
      }
      const http = sniffHttp(buffered);
      if (http.kind === 'need_more' && !final) return;
      if (!tlsDone && !final) return;
      finish(serverName, transport, http.kind === 'http' ? [http.protocol] : alpn);
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length > Math.max(MAX_CLIENT_HELLO, MAX_HTTP_SNIFF)) {
        decide(true);
        return;
      }
      decide(false);
    };
    const onEnd = (): void => {
      // The client closed before the inspectors could decide: nothing to serve.
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      this.stats.downstream_listener_filter_error.inc();
      socket.destroy();
    };
    const timeout = this.config.listenerFiltersTimeout;
    if (timeout > 0) {
      timer = setTimeout(() => {
        if (done) return;
        this.stats.downstream_pre_cx_timeout.inc();
        if (this.config.continueOnListenerFiltersTimeout) decide(true);
        else {
          done = true;
          socket.destroy();
        }
      }, timeout);
      timer.unref();
    }
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.resume();
  }

  private dispatch(
    socket: net.Socket,
    originalDst: { address: string; port: number } | undefined,
    serverName: string | undefined,
    transportProtocol: string,
    applicationProtocols: readonly string[],
    inner?: InternalConnection,
  ): void {
    if (socket.destroyed) return;
    const localAddress = this.config.address.pipe ? this.config.address.address : (socket.localAddress ?? '');
    const localPort = socket.localPort ?? 0;
    const remoteAddress = socket.remoteAddress ?? '';
    const remotePort = socket.remotePort ?? 0;
    const input: ChainMatchInput = {
      destinationAddress: originalDst?.address ?? localAddress,
      destinationPort: originalDst?.port ?? localPort,
      sourceAddress: remoteAddress,
      sourcePort: remotePort,
      directSourceAddress: remoteAddress,
      serverName,
      transportProtocol,
      applicationProtocols,
    };
    const choice = this.selector(input);
    const chain = choice === DEFAULT_CHAIN ? this.defaultChain : choice === NO_CHAIN ? undefined : this.chains[choice];
    if (!chain) {
      // Envoy closes a connection no filter chain matches and counts it.
      this.stats.no_filter_chain_match.inc();
      socket.destroy();
      return;
    }
    const info: ConnectionInfo = {
      remoteAddress, remotePort, localAddress, localPort,
      ...(originalDst ? { originalDst } : {}),
      ...(serverName !== undefined ? { serverName } : {}),
      transportProtocol: transportProtocol || 'raw_buffer',
      applicationProtocols,
      filterChainName: chain.name,
      // An inner connection carries the filter state and identity its tunnel shared (proxy/src/tunnel/).
      ...(inner ? { filterState: inner.filterState, ...(inner.peerPrincipal !== undefined ? { peerPrincipal: inner.peerPrincipal } : {}) } : {}),
    };
    setConnectionInfo(socket, info);
    if (!this.admitToChain(socket, chain)) return;
    chain.handler.accept(socket, info);
  }

  /** envoy.filters.network.connection_limit: close (after `delay`) past max_connections. */
  private admitToChain(socket: net.Socket, chain: ChainRuntime): boolean {
    const limit = chain.connectionLimit;
    if (!limit) return true;
    const ls = this.limitStats.get(limit.statPrefix);
    if (!ls) return true;
    if (ls.active.value >= limit.maxConnections) {
      ls.limited.inc();
      // Envoy's connection_limit: close, after `delay` when configured (slows reconnect storms).
      if (limit.delay > 0) setTimeout(() => socket.destroy(), limit.delay).unref();
      else socket.destroy();
      return false;
    }
    ls.active.inc();
    socket.once('close', () => ls.active.dec());
    return true;
  }

  /** Stops accepting; every chain asks its clients to go away. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.server?.close();
    for (const c of this.allChains()) c.handler.drain();
  }

  /** Resolves when every connection has closed. */
  async closed(): Promise<void> {
    while (this.sockets.size > 0) {
      for (const c of this.allChains()) c.handler.closeIdle();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  destroy(): void {
    this.draining = true;
    this.server?.close();
    for (const c of this.allChains()) c.handler.destroy();
    for (const s of this.sockets) s.destroy();
  }
}

/** Envoy scopes listener stats by address ("0.0.0.0_15001"), or by stat_prefix when set. */
export function listenerStatName(config: Listener): string {
  const a = config.address;
  return config.statPrefix ?? (a.pipe ? a.pipe.path : `${a.address}_${a.port}`);
}

function makeListenerStats(store: StatsStore, config: Listener): ListenerStats {
  const s = store.listenerScope(listenerStatName(config));
  return {
    downstream_cx_total: s.counter('downstream_cx_total'), downstream_cx_active: s.gauge('downstream_cx_active'),
    downstream_cx_destroy: s.counter('downstream_cx_destroy'), downstream_cx_http1_total: s.counter('downstream_cx_http1_total'),
    downstream_cx_http2_total: s.counter('downstream_cx_http2_total'), downstream_cx_ssl_total: s.counter('downstream_cx_ssl_total'),
    downstream_cx_overload_reject: s.counter('downstream_cx_overload_reject'), downstream_global_cx_overflow: s.counter('downstream_global_cx_overflow'),
    no_filter_chain_match: s.counter('no_filter_chain_match'), downstream_pre_cx_timeout: s.counter('downstream_pre_cx_timeout'),
    downstream_listener_filter_error: s.counter('downstream_listener_filter_error'),
    downstream_cx_original_dst_handoff: s.counter('downstream_cx_original_dst_handoff'),
  };
}
