import type * as net from 'node:net';
import type { ConnectionManager } from '../http/connection-manager.js';
import { HttpChain } from '../http/listener.js';
import type { ConnectionInfo } from '../net/connection-info.js';
import type { ListenerStats } from '../listener/network-listener.js';
import { RawConnection, type ConnectionOwner, type SweepLimits } from './connection.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Which HTTP/1.1 path plaintext chains use: PILOTFISH_HTTP1=raw|node (default node while the raw path is opt-in). */
export type Http1Path = 'raw' | 'node';

export function http1PathFromEnv(env: NodeJS.ProcessEnv = process.env): Http1Path {
  return env.PILOTFISH_HTTP1 === 'raw' ? 'raw' : 'node';
}

/** The HTTP chain for a filter chain: the raw HTTP/1.1 path when chosen, else node's. */
export function makeHttpChain(...args: ConstructorParameters<typeof HttpChain>): HttpChain {
  return http1PathFromEnv() === 'raw' ? new RawHttp1Chain(...args) : new HttpChain(...args);
}

/** Network filters before the connection manager run on the node path only (args of HttpChain's constructor / update after TLS). */
function withoutNetworkFilters(filters: unknown): boolean {
  return filters === undefined || (filters as { isEmpty?: unknown }).isEmpty === true;
}

/**
 * HttpChain with plaintext HTTP/1.1 connections served on raw sockets (llhttp, no
 * node:http, no undici to plaintext HTTP/1.1 upstreams). Everything else — TLS chains,
 * h2c (by preface or codec) — is the node path it extends, so one chain object serves
 * both and a listener update swaps the connection manager of both at once.
 *
 * Timeouts of all its connections run on one unref'd sweep per chain (no timer per
 * request or connection); its period is a quarter of the shortest limit, so a limit
 * fires at most 25% late (node's own headersTimeout check has the same bound).
 */
export class RawHttp1Chain extends HttpChain implements ConnectionOwner {
  private readonly conns = new Set<RawConnection>();
  private sweeper: NodeJS.Timeout | undefined;
  private rawDraining = false;
  /** Plaintext and no network filters before the HCM: what the raw path serves. */
  private eligible: boolean;
  private readonly listenerStats: ListenerStats;

  constructor(...args: ConstructorParameters<typeof HttpChain>) {
    super(...args);
    this.listenerStats = args[1];
    this.eligible = args[2] === undefined && withoutNetworkFilters((args as unknown[])[3]);
  }

  override update(...args: Parameters<HttpChain['update']>): void {
    super.update(...args);
    this.eligible = args[1] === undefined && withoutNetworkFilters((args as unknown[])[2]);
  }

  get maxHeaderBytes(): number {
    return this.connectionManager.config.limits.maxRequestHeadersKb * 1024;
  }

  override accept(socket: net.Socket, info: ConnectionInfo): void {
    const codec = this.connectionManager.config.codecType;
    if (this.rawDraining || !this.eligible || codec === 'HTTP2') return super.accept(socket, info);
    socket.setNoDelay(true);
    if (codec === 'HTTP1') return this.serve(socket);
    // AUTO: the HTTP/2 preface goes to node's http2, anything else is HTTP/1.x.
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      const n = Math.min(first.length, H2_PREFACE.length);
      if (n >= 3 && first.compare(H2_PREFACE, 0, n, 0, n) === 0) super.accept(socket, info);
      else this.serve(socket);
    });
    socket.resume();
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
