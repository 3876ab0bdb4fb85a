/**
 * ORIGINAL_DST clusters (Envoy's original_dst_cluster.cc): no configured endpoints; the
 * upstream host of a request is where its downstream connection was originally going
 * (restored by the `original_dst` listener filter), or, with `use_http_header`, the
 * address in `x-envoy-original-dst-host` (or `http_header_name`). Envoy's rules:
 *   - a present, valid header wins; only its first value counts (it is untrusted);
 *   - an invalid header value counts `original_dst_host_invalid` and falls back to the
 *     connection;
 *   - the connection's address counts only when it was restored (not merely the
 *     listener's own address); nothing usable -> no host (503, UH);
 *   - `upstream_port_override` replaces the port of either;
 *   - hosts are created on demand, keyed by address:port, and removed by a sweep every
 *     `cleanup_interval` once unused for a whole interval (picked since the last sweep,
 *     or with requests in flight, keeps a host).
 *
 * Loop protection (pilotfish; Envoy relies on iptables rules and Istio's blackhole
 * chains): a destination that is one of the proxy's own listener addresses would
 * connect back to the proxy forever, so it is refused (no host -> 503) and counted in
 * `original_dst_loop_refused`. Only checked when a host is created.
 *
 * Steady state is allocation-free: hosts are found by address then port (no key
 * string), and header values are cached verbatim.
 */
import * as net from 'node:net';
import * as os from 'node:os';
import { Host, type PickContext } from './endpoint-set.js';
import type { Counter } from '../stats/stats.js';

export const DEFAULT_ORIGINAL_DST_HEADER = 'x-envoy-original-dst-host';

export interface OriginalDstConfig {
  readonly useHttpHeader: boolean;
  /** Lower-cased header name; "" = x-envoy-original-dst-host. */
  readonly httpHeaderName: string;
  readonly upstreamPortOverride?: number;
  /** ms between cleanup sweeps (Envoy default 5000). */
  readonly cleanupInterval: number;
}

export interface OriginalDstStats {
  readonly original_dst_host_invalid: Counter;
  readonly original_dst_loop_refused: Counter;
}

/** The proxy's own listener addresses (address may be a wildcard: 0.0.0.0 or ::). */
export type OwnListeners = () => Iterable<{ readonly address: string; readonly port: number }>;

export interface OriginalDstEvents {
  onAdded(h: Host): void;
  /** The host left the cluster: close its pool after in-flight requests. */
  onRemoved(h: Host): void;
}

export class OriginalDstHosts {
  private readonly byAddr = new Map<string, Map<number, Host>>();
  private readonly byHeader = new Map<string, Host>();
  private readonly header: string | undefined;
  private readonly portOverride: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private count = 0;
  private closed = false;

  constructor(
    private readonly clusterName: string,
    private readonly config: OriginalDstConfig,
    private readonly stats: OriginalDstStats,
    private readonly events: OriginalDstEvents,
    private readonly ownListeners: OwnListeners | undefined,
  ) {
    this.header = config.useHttpHeader ? (config.httpHeaderName !== '' ? config.httpHeaderName.toLowerCase() : DEFAULT_ORIGINAL_DST_HEADER) : undefined;
    this.portOverride = config.upstreamPortOverride;
  }

  get size(): number {
    return this.count;
  }

  /** Each live host once. */
  hosts(): Host[] {
    const out = new Set<Host>();
    for (const ports of this.byAddr.values()) for (const h of ports.values()) if (!h.removed) out.add(h);
    return [...out];
  }

  pick(ctx: PickContext): Host | undefined {
    if (this.closed) return undefined;
    const name = this.header;
    if (name !== undefined) {
      const headers = ctx.headers;
      if (headers !== undefined) {
        const v = headers[name];
        const first = typeof v === 'string' ? v : v !== undefined ? v[0] : undefined;
        if (first !== undefined) {
          const cached = this.byHeader.get(first);
          if (cached !== undefined && !cached.removed) {
            cached.used = true;
            return cached;
          }
          const parsed = parseHostPort(first);
          if (parsed === undefined) this.stats.original_dst_host_invalid.inc();
          else {
            const h = this.lookup(parsed.address, this.portOverride ?? parsed.port);
            if (h !== undefined) this.byHeader.set(first, h);
            return h;
          }
        }
      }
    }
    const info = ctx.connection;
    if (info === undefined) return undefined;
    const dst = info.originalDst;
    if (dst === undefined) return undefined;
    return this.lookup(dst.address, this.portOverride ?? dst.port);
  }

  private lookup(address: string, port: number): Host | undefined {
    const ports = this.byAddr.get(address);
    let h = ports !== undefined ? ports.get(port) : undefined;
    if (h === undefined) {
      h = this.create(address, port);
      if (h === undefined) return undefined;
    }
    h.used = true;
    return h;
  }

  private create(rawAddress: string, port: number): Host | undefined {
    // "::ffff:10.0.0.1" (a dual-stack socket's view) and "10.0.0.1" are one host, found
    // under both spellings afterwards.
    const address = unmapV4(rawAddress);
    let h = address !== rawAddress ? this.byAddr.get(address)?.get(port) : undefined;
    if (h === undefined) {
      if (net.isIP(address) === 0 || !(port >= 0 && port <= 65535)) return undefined;
      if (this.ownListeners !== undefined && isOwnListener(this.ownListeners, address, port)) {
        this.stats.original_dst_loop_refused.inc();
        return undefined;
      }
      h = new Host({
        key: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`,
        address, port, hostname: '', weight: 1, priority: 0, locality: '', localityWeight: 1, health: 'healthy',
      });
      this.index(address, port, h);
      this.count++;
      this.events.onAdded(h);
      if (this.timer === undefined) this.arm();
    }
    if (address !== rawAddress) this.index(rawAddress, port, h);
    return h;
  }

  private index(address: string, port: number, h: Host): void {
    let ports = this.byAddr.get(address);
    if (ports === undefined) this.byAddr.set(address, (ports = new Map()));
    ports.set(port, h);
  }

  private arm(): void {
    this.timer = setInterval(() => this.sweep(), Math.max(1, this.config.cleanupInterval));
    this.timer.unref();
  }

  /** Envoy's cleanup(): drops hosts neither picked since the last sweep nor busy. */
  sweep(): void {
    // Two passes: a host may be indexed under two spellings of its address.
    for (const [addr, ports] of this.byAddr) {
      for (const [port, h] of ports) {
        if (!h.removed && (h.used || h.activeRequests > 0)) continue;
        if (!h.removed) {
          h.removed = true;
          this.count--;
          this.events.onRemoved(h);
        }
        ports.delete(port);
      }
      if (ports.size === 0) this.byAddr.delete(addr);
    }
    for (const ports of this.byAddr.values()) for (const h of ports.values()) h.used = false;
    for (const [v, h] of this.byHeader) if (h.removed) this.byHeader.delete(v);
    if (this.count === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  toString(): string {
    return `original_dst(${this.clusterName}: ${this.count} hosts)`;
  }
}

/** "10.0.0.1:80" or "[::1]:80" (Envoy's parseInternetAddressAndPort); undefined when invalid. */
export function parseHostPort(v: string): { address: string; port: number } | undefined {
  let address: string;
  let portText: string;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    if (close < 0 || v.charCodeAt(close + 1) !== 58 /* : */) return undefined;
    address = v.slice(1, close);
    portText = v.slice(close + 2);
    if (net.isIPv6(address) === false) return undefined;
  } else {
    const colon = v.lastIndexOf(':');
    if (colon < 0) return undefined;
    address = v.slice(0, colon);
    portText = v.slice(colon + 1);
    if (net.isIPv4(address) === false) return undefined;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { address, port };
}

function unmapV4(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

/** Is address:port one of our listeners? A wildcard listener owns every local address. */
export function isOwnListener(own: OwnListeners, address: string, port: number): boolean {
  let local: Set<string> | undefined;
  for (const l of own()) {
    if (l.port !== port) continue;
    const la = unmapV4(l.address);
    if (la === address) return true;
    if (la === '0.0.0.0' || la === '::' || la === '') {
      local ??= localAddresses();
      if (local.has(address)) return true;
    }
  }
  return false;
}

function localAddresses(): Set<string> {
  const s = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) s.add(unmapV4(i.address));
  return s;
}

export function originalDstConfigOf(c: { readonly originalDst?: { readonly useHttpHeader: boolean; readonly httpHeaderName: string; readonly upstreamPortOverride?: number }; readonly cleanupInterval: number }): OriginalDstConfig {
  const o = c.originalDst;
  return {
    useHttpHeader: o?.useHttpHeader ?? false,
    httpHeaderName: o?.httpHeaderName ?? '',
    ...(o?.upstreamPortOverride !== undefined ? { upstreamPortOverride: o.upstreamPortOverride } : {}),
    cleanupInterval: c.cleanupInterval > 0 ? c.cleanupInterval : 5000,
  };
}
