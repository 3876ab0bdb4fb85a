/**
 * HTTP upgrades (WebSocket over HTTP/1.1) and terminated CONNECT: after routing and the
 * filter chain, the request leaves the undici path. A host of the route's cluster is
 * picked, a raw TCP (or TLS, per the cluster's transport socket) connection is opened to
 * it, and then:
 *
 *   upgrade    the request head is forwarded, the upstream's response head is read; a 101
 *              goes downstream (through the normal response header processing) and bytes
 *              flow both ways; any other status is relayed as the final response.
 *   connect    (route upgrade_configs CONNECT with connect_config) 200 goes downstream as
 *              soon as the upstream connection is up, and the payload is proxied as TCP.
 *
 * Bytes are moved with stream.pipe in both directions, which pauses the faster side when
 * the other one's buffer fills (back-pressure). Idle for the route's idle_timeout (else
 * the HCM's stream_idle_timeout) closes both sides.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { UpgradeConfig } from '../../../config/src/index.js';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host, PickContext } from '../cluster/endpoint-set.js';
import { newHeaderMap, type HeaderMap } from './headers.js';
import { Flags, LocalReplies, type LocalReplySpec } from './response-flags.js';

/** Largest upstream response head accepted (Envoy's default max_request_headers_kb is 60). */
const MAX_HEAD = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Envoy's rule (HCM createUpgradeFilterChain): the HCM must list the type; a route entry
 * for the type decides, else the HCM entry's `enabled`. Types compare case-insensitively.
 */
export function upgradeAllowed(hcm: readonly UpgradeConfig[], route: readonly UpgradeConfig[] | undefined, type: string): boolean {
  const t = type.toLowerCase();
  const h = hcm.find((u) => u.upgradeType.toLowerCase() === t);
  if (!h) return false;
  const r = route?.find((u) => u.upgradeType.toLowerCase() === t);
  return r ? r.enabled : h.enabled;
}

/** The route's CONNECT entry, when it terminates CONNECT (connect_config present). */
export function connectTermination(route: readonly UpgradeConfig[] | undefined): boolean {
  return route?.some((u) => u.upgradeType.toLowerCase() === 'connect' && u.connectConfig !== undefined) === true;
}

/** What the tunnel needs from the exchange that started it. */
export interface TunnelOwner {
  /** Nothing went downstream yet: answer locally (503 UH/UF, 502 UPE, 504 UT). */
  tunnelLocalReply(spec: LocalReplySpec, flag: string): void;
  /** Response headers through the HCM's processing (server, via, route mutations); writes them downstream. */
  tunnelResponseHead(status: number, headers: HeaderMap): void;
  setUpstreamHost(host: Host): void;
  /** The tunnel is over; counts are payload bytes after the heads. */
  tunnelDone(bytesFromDownstream: number, bytesToDownstream: number, flag: string | undefined): void;
}

export interface TunnelSpec {
  /** upgrade: HTTP/1.1 Upgrade; connect: terminate CONNECT here; connect-proxy: send CONNECT on to the upstream. */
  readonly mode: 'upgrade' | 'connect' | 'connect-proxy';
  readonly method: string;
  readonly path: string;
  /** Request headers after the HCM's processing (hop-by-hop already removed). */
  readonly headers: HeaderMap;
  /** The Upgrade header value as the client sent it. */
  readonly upgrade: string;
  /** Bytes the client sent after its request head. */
  readonly head: Buffer;
  readonly idleTimeout: number;
  readonly pick: PickContext;
  /** The stream's filter state (set_filter_state); its shared entries go to an internal listener. */
  readonly filterState?: ReadonlyMap<string, unknown>;
}

export class Tunnel {
  private upstream: net.Socket | undefined;
  private done = false;
  private fromDown = 0;
  private toDown = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private host: Host | undefined;
  private spliced = false;

  constructor(
    private readonly cluster: ClusterRuntime,
    private readonly spec: TunnelSpec,
    /** The downstream byte stream: the HTTP/1.1 socket, or the HTTP/2 stream. */
    private readonly down: Duplex,
    private readonly owner: TunnelOwner,
  ) {}

  start(): void {
    const host = this.cluster.pick(this.spec.pick);
    if (!host) {
      this.fail(LocalReplies.noHealthyUpstream, Flags.NoHealthyUpstream);
      return;
    }
    this.host = host;
    this.owner.setUpstreamHost(host);
    host.activeRequests++;
    const s = this.cluster.stats;
    s.upstream_rq_total.inc();
    s.upstream_rq_active.inc();
    const e = host.endpoint;
    // An internal endpoint (a waypoint's connect_terminate -> main_internal): an in-process connection, no TLS.
    const inner = e.internal ? this.cluster.tunnels?.connect(this.cluster, host, this.spec.pick.connection, undefined, this.spec.filterState) : undefined;
    const tlsOpts = inner ? undefined : this.cluster.transportFor(host).tls?.current()?.connect as tls.ConnectionOptions | undefined;
    const sock = inner ? inner as unknown as net.Socket : tlsOpts
      // An HTTP/1.1 head goes first unless CONNECT is terminated here (then the payload is the cluster's own protocol).
      ? tls.connect(this.spec.mode === 'connect' ? { ...tlsOpts, host: e.address, port: e.port } : { ...tlsOpts, host: e.address, port: e.port, ALPNProtocols: ['http/1.1'] })
      : net.connect({ host: e.address, port: e.port });
    sock.setNoDelay(true);
    this.upstream = sock;
    const timeout = this.cluster.config.connectTimeout;
    if (timeout > 0) {
      this.connectTimer = setTimeout(() => {
        s.upstream_cx_connect_fail.inc();
        this.fail(LocalReplies.connectFailure, Flags.UpstreamConnectionFailure);
      }, timeout);
    }
    s.upstream_cx_total.inc();
    s.upstream_cx_active.inc();
    sock.once('close', () => {
      s.upstream_cx_active.dec();
      s.upstream_cx_destroy.inc();
    });
    sock.on('error', () => this.onUpstreamError());
    sock.once(tlsOpts ? 'secureConnect' : 'connect', () => this.onConnected());
    // The client may hang up while we connect.
    this.down.once('close', this.onDownClose);
  }

  /** Ends the tunnel from outside (max_stream_duration). */
  abort(flag: string): void {
    if (!this.done && this.upstream !== undefined && this.connectTimer === undefined && this.spliced) this.finish(flag, true);
    else if (!this.done) this.fail({ status: 408, body: 'downstream duration timeout', details: 'max_duration_timeout' }, flag);
  }

  private readonly onDownClose = (): void => {
    this.finish(Flags.DownstreamConnectionTermination);
  };

  private onUpstreamError(): void {
    if (this.done) return;
    if (this.connectTimer !== undefined) {
      // Still connecting: a connect failure, answered locally.
      this.cluster.stats.upstream_cx_connect_fail.inc();
      this.fail(LocalReplies.connectFailure, Flags.UpstreamConnectionFailure);
      return;
    }
    this.finish(Flags.UpstreamConnectionTermination);
  }

  private onConnected(): void {
    if (this.done) return;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const up = this.upstream!;
    if (this.spec.mode === 'connect') {
      this.owner.tunnelResponseHead(200, {});
      if (this.spec.head.length > 0) {
        this.fromDown += this.spec.head.length;
        up.write(this.spec.head);
      }
      this.splice(Buffer.alloc(0));
      return;
    }
    up.write(this.spec.mode === 'connect-proxy' ? connectHead(this.spec) : requestHead(this.spec));
    if (this.spec.head.length > 0) {
      this.fromDown += this.spec.head.length;
      up.write(this.spec.head);
    }
    let buf: Buffer = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > MAX_HEAD) bad();
        return;
      }
      up.off('data', onData);
      up.off('end', onEnd);
      up.pause();
      const parsed = parseResponseHead(buf.subarray(0, end).toString('latin1'));
      if (!parsed) return bad();
      const rest = buf.subarray(end + 4);
      if (this.spec.mode === 'connect-proxy' && parsed.status >= 200 && parsed.status < 300) {
        // The upstream proxy established the tunnel.
        this.owner.tunnelResponseHead(parsed.status, parsed.headers);
        this.splice(rest);
        return;
      }
      if (this.spec.mode === 'upgrade' && parsed.status === 101) {
        // Upgrade and Connection are what make it a 101: kept, the rest is processed as any response.
        const h = parsed.headers;
        h.connection = 'Upgrade';
        h.upgrade = parsed.upgrade ?? this.spec.upgrade;
        this.owner.tunnelResponseHead(101, h);
        this.splice(rest);
        return;
      }
      // Not upgraded: the upstream's answer is the final response, framed as the upstream framed it.
      const h = parsed.headers;
      h.connection = 'close';
      this.owner.tunnelResponseHead(parsed.status, h);
      this.splice(rest, true);
    };
    const bad = () => {
      up.off('data', onData);
      up.off('end', onEnd);
      this.fail(LocalReplies.protocolError, Flags.UpstreamProtocolError);
    };
    const onEnd = () => this.fail(LocalReplies.reset, Flags.UpstreamConnectionTermination);
    up.on('data', onData);
    up.once('end', onEnd);
  }

  /** Both heads are done: bytes flow both ways until either side ends. */
  private splice(rest: Buffer, responseOnly = false): void {
    if (this.done) return;
    this.spliced = true;
    const up = this.upstream!;
    const down = this.down;
    if (rest.length > 0) {
      this.toDown += rest.length;
      down.write(rest);
    }
    up.on('data', (c: Buffer) => (this.toDown += c.length));
    if (!responseOnly) down.on('data', (c: Buffer) => (this.fromDown += c.length));
    up.pipe(down);
    if (!responseOnly) down.pipe(up);
    up.resume();
    const idle = this.spec.idleTimeout;
    if (idle > 0) {
      // A socket's timer restarts on reads and writes, so each side's timer sees both directions.
      const onIdle = () => this.finish(Flags.StreamIdleTimeout, true);
      up.setTimeout(idle, onIdle);
      const ds = down as Duplex & { setTimeout?: (ms: number, cb?: () => void) => unknown };
      if (typeof ds.setTimeout === 'function') ds.setTimeout(idle, onIdle);
    }
    // Half-close is passed on by pipe (end); a full close of either side ends the tunnel.
    up.once('close', () => this.finish(undefined));
    down.once('end', () => {
      if (responseOnly) this.finish(undefined);
    });
  }

  private fail(spec: LocalReplySpec, flag: string): void {
    if (this.done) return;
    this.done = true;
    this.cleanup();
    this.owner.tunnelLocalReply(spec, flag);
  }

  /** The tunnel ends: both sides closed (a graceful end already went through pipe). */
  private finish(flag: string | undefined, destroyDown = false): void {
    if (this.done) return;
    this.done = true;
    this.cleanup();
    if (destroyDown || flag !== undefined) this.down.destroy();
    else this.down.end();
    this.owner.tunnelDone(this.fromDown, this.toDown, flag);
  }

  private cleanup(): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.down.off('close', this.onDownClose);
    this.upstream?.destroy();
    if (this.host) {
      this.host.activeRequests--;
      this.cluster.stats.upstream_rq_active.dec();
      this.host = undefined;
    }
  }
}

/** The request head for the upstream: the processed headers plus the upgrade's own two. */
export function requestHead(spec: Pick<TunnelSpec, 'method' | 'path' | 'headers' | 'upgrade'>): string {
  let s = `${spec.method} ${spec.path} HTTP/1.1\r\n`;
  for (const k in spec.headers) {
    const v = spec.headers[k];
    if (v === undefined || k === 'connection' || k === 'upgrade' || k.charCodeAt(0) === 58) continue;
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
    else s += `${k}: ${v}\r\n`;
  }
  return `${s}connection: Upgrade\r\nupgrade: ${spec.upgrade}\r\n\r\n`;
}

/** CONNECT passed on to an upstream that terminates it: authority-form target, Host the same. */
export function connectHead(spec: Pick<TunnelSpec, 'path' | 'headers'>): string {
  let s = `CONNECT ${spec.path} HTTP/1.1\r\n`;
  for (const k in spec.headers) {
    const v = spec.headers[k];
    if (v === undefined || k === 'connection' || k === 'upgrade' || k.charCodeAt(0) === 58) continue;
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
    else s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

/** Serialises a response head for a raw HTTP/1.1 socket. */
export function responseHead(status: number, headers: HeaderMap): string {
  let s = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Unknown'}\r\n`;
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
    else s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

const STATUS_TEXT: Record<number, string> = { 101: 'Switching Protocols', 200: 'OK', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 407: 'Proxy Authentication Required', 502: 'Bad Gateway', 503: 'Service Unavailable' };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A strict HTTP/1.1 response head: status line, then "name: value" lines (no obs-fold, no bare CR/LF). */
export function parseResponseHead(text: string): { status: number; headers: HeaderMap; upgrade: string | undefined } | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers = newHeaderMap();
  let upgrade: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    const c = l.indexOf(':');
    if (c <= 0) return undefined;
    const name = l.slice(0, c).toLowerCase();
    if (!TOKEN.test(name)) return undefined;
    const value = l.slice(c + 1).trim();
    if (/[\r\n\0]/.test(value)) return undefined;
    if (name === 'upgrade') {
      upgrade = value;
      continue;
    }
    if (name === 'connection' || name === 'keep-alive') continue;
    const cur = headers[name];
    headers[name] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
  }
  return { status: Number(m[1]), headers, upgrade };
}
