import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { ConnectionManager } from '../http/connection-manager.js';
import { HttpChain } from '../http/listener.js';
import type { ListenerStats } from '../listener/network-listener.js';
import { warmLlhttp } from './llhttp.js';
import { RawConnection, type ConnectionOwner, type SweepLimits } from './connection.js';

/**
 * Which HTTP/1.1 path HTTP chains use: the raw path by default; PILOTFISH_HTTP1=node selects
 * node:http + undici (kept for before/after measurements and as a way back if a deployment
 * meets a difference between the two).
 */
export type Http1Path = 'raw' | 'node';

export function http1PathFromEnv(env: NodeJS.ProcessEnv = process.env): Http1Path {
  return env.PILOTFISH_HTTP1 === 'node' ? 'node' : 'raw';
}

/** The HTTP chain for a filter chain: the raw HTTP/1.1 path when chosen, else node's. */
export function makeHttpChain(...args: ConstructorParameters<typeof HttpChain>): HttpChain {
  return http1PathFromEnv() === 'raw' ? new RawHttp1Chain(...args) : new HttpChain(...args);
}


/**
 * HttpChain with its HTTP/1.1 connections — plaintext or TLS, after the chain's network
 * filters — served on raw sockets (llhttp, no node:http; no undici to plaintext HTTP/1.1
 * upstreams). HttpChain still accepts, terminates TLS, runs network filters and chooses
 * the codec (ALPN, h2c preface); HTTP/2 stays node:http2. One chain object serves both, so
 * a listener update swaps the connection manager of both at once.
 *
 * Timeouts of all its connections run on one unref'd sweep per chain (no timer per
 * request or connection); its period is a quarter of the shortest limit, so a limit
 * fires at most 25% late (node's own headersTimeout check has the same bound).
 */
export class RawHttp1Chain extends HttpChain implements ConnectionOwner {
  private readonly conns = new Set<RawConnection>();
  private sweeper: NodeJS.Timeout | undefined;
  private rawDraining = false;
  private readonly listenerStats: ListenerStats;

  constructor(...args: ConstructorParameters<typeof HttpChain>) {
    super(...args);
    this.listenerStats = args[1];
    warmLlhttp();
  }

  get maxHeaderBytes(): number {
    return this.connectionManager.config.limits.maxRequestHeadersKb * 1024;
  }

  /**
   * HttpChain chose HTTP/1.1 for this connection (plaintext or after the TLS handshake and
   * the chain's network filters): it is served here instead of by node:http.
   */
  protected override toH1(socket: net.Socket | tls.TLSSocket): void {
    if (this.rawDraining) {
      socket.destroy();
      return;
    }
    this.serve(socket);
  }

  private serve(socket: net.Socket): void {
    this.listenerStats.downstream_cx_http1_total.inc();
    const c = new RawConnection(socket, this);
    this.conns.add(c);
    this.startSweep();
    socket.resume();
  }

  currentManager(): ConnectionManager {
    return this.connectionManager;
  }

  isDraining(): boolean {
    return this.rawDraining;
  }

  closed(c: RawConnection): void {
    this.conns.delete(c);
    if (this.conns.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private limits(): SweepLimits {
    const l = this.connectionManager.config.limits;
    const requestTimeout = l.requestTimeout;
    let headersTimeout = l.requestHeadersTimeout > 0 ? l.requestHeadersTimeout : 60_000;
    if (requestTimeout > 0) headersTimeout = Math.min(headersTimeout, requestTimeout);
    return { idleTimeout: l.idleTimeout, headersTimeout, requestTimeout, maxConnectionDuration: l.maxConnectionDuration ?? 0 };
  }

  private startSweep(): void {
    if (this.sweeper !== undefined) return;
    const l = this.limits();
    const streamIdle = this.connectionManager.config.limits.streamIdleTimeout;
    let shortest = Infinity;
    for (const v of [l.idleTimeout, l.headersTimeout, l.requestTimeout, l.maxConnectionDuration, streamIdle]) if (v > 0 && v < shortest) shortest = v;
    const period = Math.max(10, Math.min(1000, Math.floor(shortest / 4)));
    this.sweeper = setInterval(() => this.sweep(), period);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = performance.now();
    const limits = this.limits();
    for (const c of this.conns) c.sweep(now, limits);
  }

  override drain(): void {
    super.drain();
    this.rawDraining = true;
    for (const c of this.conns) c.drain();
  }

  override closeIdle(): void {
    super.closeIdle();
    for (const c of this.conns) if (c.idle) c.socket.destroy();
  }

  override destroy(): void {
    super.destroy();
    this.rawDraining = true;
    for (const c of this.conns) c.socket.destroy();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
