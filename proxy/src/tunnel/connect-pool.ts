import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Counter, Gauge, StatsStore } from '../stats/stats.js';
import { InnerSocket } from './inner-socket.js';

/** Where a CONNECT goes: the next hop (ztunnel or a waypoint, port 15008) and how to reach it. */
export interface ConnectTarget {
  /** Pool key: same cluster, host and TLS material share HTTP/2 connections. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** TLS options from the cluster's UpstreamTlsContext; undefined for h2c (tests, plaintext meshes). */
  readonly tls: tls.ConnectionOptions | undefined;
  readonly connectTimeout: number;
}

export interface ConnectRequest {
  readonly authority: string;
  /** Extra request headers (tunneling_config headers_to_add), already rendered. */
  readonly headers: Readonly<Record<string, string>>;
  /** use_post: POST to this path instead of CONNECT. */
  readonly postPath?: string;
}

export interface TunnelPoolStats {
  readonly cx_total: Counter;
  readonly cx_active: Gauge;
  readonly cx_connect_fail: Counter;
  readonly streams_total: Counter;
  readonly streams_active: Gauge;
  readonly streams_refused: Counter;
  readonly tx_bytes: Counter;
  readonly rx_bytes: Counter;
}

/** One pooled HTTP/2 connection to a next hop. */
interface Session {
  readonly h2: http2.ClientHttp2Session;
  active: number;
  ready: boolean;
  /** The peer sent GOAWAY: streams in flight finish, new ones go elsewhere. */
  goingAway: boolean;
}

/** Streams per connection until the peer's SETTINGS arrive (Istio's waypoint accepts 100). */
const DEFAULT_MAX_STREAMS = 100;
/** Per-stream and connection receive windows: 64 KiB (the HTTP/2 default) would cap a tunnel at one window per round trip. */
const STREAM_WINDOW = 1 << 20;
const SESSION_WINDOW = 16 << 20;

/**
 * CONNECT origination (HBONE): each tunnel is one HTTP/2 CONNECT stream on a pooled mTLS
 * connection to the next hop; a connection carries streams up to the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS, then another one is opened. The TCP side gets an
 * InnerSocket that emits 'connect' when the peer answers 2xx; bytes are piped both ways,
 * so HTTP/2 flow control (per stream) and stream back-pressure hold a slow reader's
 * tunnel without stalling the others on the same connection.
 */
export class ConnectPool {
  private readonly pools = new Map<string, Session[]>();
  readonly stats: TunnelPoolStats;
  private closed = false;

  constructor(store: StatsStore) {
    const s = store.rootScope;
    const c = (n: string) => s.counter(`tunnel.${n}`);
    this.stats = {
      cx_total: c('upstream_cx_total'), cx_active: s.gauge('tunnel.upstream_cx_active'), cx_connect_fail: c('upstream_cx_connect_fail'),
      streams_total: c('upstream_streams_total'), streams_active: s.gauge('tunnel.upstream_streams_active'),
      streams_refused: c('upstream_streams_refused'), tx_bytes: c('upstream_tx_bytes_total'), rx_bytes: c('upstream_rx_bytes_total'),
    };
  }

  /** HTTP/2 connections open now to `key` (tests: many tunnels over a handful of connections). */
  connectionCount(key?: string): number {
    if (key !== undefined) return this.pools.get(key)?.length ?? 0;
    let n = 0;
    for (const l of this.pools.values()) n += l.length;
    return n;
  }

  /**
   * Opens a tunnel. The returned socket errors (ECONNREFUSED / ECONNRESET) when the
   * connection or the stream fails, or the peer answers something other than 2xx.
   */
  open(target: ConnectTarget, req: ConnectRequest): InnerSocket {
    const [client, end] = InnerSocket.pair({ localAddress: '', localPort: 0, remoteAddress: target.address, remotePort: target.port }, 256 * 1024);
    if (this.closed) {
      process.nextTick(() => client.destroy(Object.assign(new Error('tunnel pool closed'), { code: 'ECONNREFUSED' })));
      return client;
    }
    const session = this.session(target);
    session.active++;
    this.stats.streams_total.inc();
    this.stats.streams_active.inc();
    const headers: http2.OutgoingHttpHeaders = req.postPath !== undefined
      ? { ':method': 'POST', ':path': req.postPath, ':authority': req.authority, ':scheme': target.tls ? 'https' : 'http', ...req.headers }
      : { ':method': 'CONNECT', ':authority': req.authority, ...req.headers };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.h2.request(headers, { endStream: false });
    } catch (e) {
      this.release(target.key, session);
      process.nextTick(() => client.destroy(Object.assign(new Error(`CONNECT failed: ${(e as Error).message}`), { code: 'ECONNREFUSED' })));
      return client;
    }
    let established = false;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.release(target.key, session);
    };
    stream.on('response', (h) => {
      const status = Number(h[':status']);
      if (status < 200 || status >= 300) {
        this.stats.streams_refused.inc();
        end.destroy();
        client.destroy(Object.assign(new Error(`CONNECT answered ${status}`), { code: 'ECONNREFUSED' }));
        stream.close();
        return;
      }
      established = true;
      // Payload flows only once the tunnel is up; pipe() carries back-pressure both ways.
      end.pipe(stream);
      stream.pipe(end);
      client.emit('connect');
    });
    stream.on('data', (c: Buffer) => this.stats.rx_bytes.inc(c.length));
    end.on('data', (c: Buffer) => this.stats.tx_bytes.inc(c.length));
    stream.on('error', () => undefined);
    stream.once('close', () => {
      release();
      if (!established) {
        client.destroy(Object.assign(new Error('CONNECT stream closed before the tunnel was established'), { code: 'ECONNREFUSED' }));
        return;
      }
      // The peer reset or finished: a graceful end already went through pipe (end()).
      if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) end.destroy();
    });
    end.once('close', () => {
      // The TCP side closed (or timed out): cancel the stream if it is still open.
      if (!stream.closed) stream.close(established ? http2.constants.NGHTTP2_NO_ERROR : http2.constants.NGHTTP2_CANCEL);
    });
    return client;
  }

  private session(target: ConnectTarget): Session {
    let list = this.pools.get(target.key);
    if (!list) this.pools.set(target.key, (list = []));
    for (const s of list) {
      if (s.goingAway || s.h2.closed || s.h2.destroyed) continue;
      const max = s.ready ? s.h2.remoteSettings.maxConcurrentStreams ?? DEFAULT_MAX_STREAMS : DEFAULT_MAX_STREAMS;
      if (s.active < max) return s;
    }
    return this.connect(target, list);
  }

  private connect(target: ConnectTarget, list: Session[]): Session {
    const authority = `${target.tls ? 'https' : 'http'}://${target.address.includes(':') ? `[${target.address}]` : target.address}:${target.port}`;
    const h2 = http2.connect(authority, {
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      ...(target.tls
        // No Nagle: a tunnel's small writes (a request head, an echo) must not wait for an ACK.
        ? { createConnection: () => tls.connect({ ...target.tls, host: target.address, port: target.port, ALPNProtocols: ['h2'] }).setNoDelay(true) }
        : { createConnection: () => net.connect({ host: target.address, port: target.port, noDelay: true }) }),
    });
    const s: Session = { h2, active: 0, ready: false, goingAway: false };
    h2.once('goaway', () => (s.goingAway = true));
    list.push(s);
    this.stats.cx_total.inc();
    this.stats.cx_active.inc();
    const timer = target.connectTimeout > 0
      ? setTimeout(() => {
        this.stats.cx_connect_fail.inc();
        h2.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
      }, target.connectTimeout)
      : undefined;
    timer?.unref();
    h2.once('connect', () => {
      if (timer) clearTimeout(timer);
      h2.setLocalWindowSize(SESSION_WINDOW);
    });
    h2.once('remoteSettings', () => (s.ready = true));
    h2.on('error', () => {
      if (!s.ready) this.stats.cx_connect_fail.inc();
    });
    h2.once('close', () => {
      if (timer) clearTimeout(timer);
      this.stats.cx_active.dec();
      const i = list.indexOf(s);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0 && this.pools.get(target.key) === list) this.pools.delete(target.key);
    });
    // No stream for a while: the connection goes (Envoy's pool idle timeout is 1 h; HBONE peers prune sooner).
    h2.setTimeout(60_000, () => {
      if (s.active === 0) h2.close();
    });
    return s;
  }

  private release(key: string, s: Session): void {
    s.active--;
    this.stats.streams_active.dec();
    void key;
  }

  /** Closes every pooled connection (streams in flight are cut). */
  destroy(): void {
    this.closed = true;
    for (const list of this.pools.values()) for (const s of list) s.h2.destroy();
    this.pools.clear();
  }
}
