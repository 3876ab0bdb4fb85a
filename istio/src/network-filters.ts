/**
 * Istio's network filters for the proxy's network-filter framework
 * (proxy/src/listener/network-filter.ts), declared here by shape (istio/ does not import
 * proxy/; proxy registers these factories):
 *  - `io.istio.network.authn.Config` (istio_authn): the verified peer and local
 *    principals into the connection's filter state (`io.istio.peer_principal`,
 *    `io.istio.local_principal`), where RBAC and the stats filter read them;
 *  - `envoy.tcp.metadataexchange.config.MetadataExchange`: the TCP exchange on
 *    connections that negotiated `istio-peer-exchange`, server side (the listener's);
 *  - `stats.PluginConfig` as a network filter: istio_tcp_* metrics.
 */
import { ObjectReader, type Diagnostics } from '../../config/src/index.js';
import { FS, serviceOfCluster, type NodeLike, type TrafficDirection } from './host.js';
import { IstioMetrics, peerTags, recordBuild, securityPolicy, TCP_TAGS, type LabeledMetrics, type TcpSeries } from './metrics.js';
import { decodeStatsPluginConfig } from './plugin-config.js';
import { encodeExchange, ExchangeReader, MX_ALPN } from './tcp-exchange.js';
import { localSide, reporterFor } from './http-filters.js';
import type { WorkloadMetadata } from './workload.js';

export const AUTHN_TYPE = 'io.istio.network.authn.Config';
export const TCP_MX_TYPE = 'envoy.tcp.metadataexchange.config.MetadataExchange';

// ------------------------------------------------------------------ the framework's shapes

export interface NetFilterConfig {
  readonly name: string;
  readonly typeUrl: string;
  readonly config: Readonly<Record<string, unknown>>;
}

export interface NetContext {
  readonly stats: { readonly labeled: LabeledMetrics };
  readonly node: NodeLike;
  readonly trafficDirection: TrafficDirection;
  readonly chainKind: 'http' | 'tcp';
  clusterMetadata?(cluster: string): Readonly<Record<string, unknown>> | undefined;
}

export interface NetConnection {
  readonly info: { filterState?: Map<string, unknown>; peerPrincipal?: string; localPrincipal?: string };
  readonly tls: boolean;
  readonly negotiatedProtocol: string;
  readonly upstream: { readonly cluster: string; readonly host: string; readonly peerPrincipal?: string | undefined; readonly localPrincipal?: string | undefined } | undefined;
  write(data: Uint8Array): void;
}

export type NetDataVerdict = { readonly data: Uint8Array | null } | 'stop' | undefined;

export interface NetFilter {
  readonly name: string;
  readonly typeUrl: string;
  onNewConnection?(conn: NetConnection): 'continue' | 'stop';
  onData?(chunk: Buffer, end: boolean, conn: NetConnection): NetDataVerdict;
  onWrite?(chunk: Buffer, end: boolean, conn: NetConnection): NetDataVerdict;
  onClose?(conn: NetConnection, summary: { readonly bytesReceived: number; readonly bytesSent: number }): void;
  describe?(): Record<string, unknown>;
  dispose?(): void;
}

export type NetFilterFactory = (config: NetFilterConfig, diag: Diagnostics, path: string, ctx: NetContext) => NetFilter | undefined;

function state(conn: NetConnection): Map<string, unknown> {
  return (conn.info.filterState ??= new Map());
}

// ------------------------------------------------------------------ istio_authn

export const authnFactory: NetFilterFactory = (cfg, diag, path) => {
  const r = ObjectReader.of(cfg.config, path, diag);
  if (!r) return undefined;
  // The trust-domain check is istiod's business in a single-domain mesh; the field is accepted.
  r.accept('skip_validate_trust_domain');
  r.finish();
  return {
    name: cfg.name,
    typeUrl: cfg.typeUrl,
    onNewConnection(conn) {
      const peer = conn.info.peerPrincipal;
      if (conn.tls && peer !== undefined) {
        const fs = state(conn);
        fs.set(FS.peerPrincipal, peer);
        if (conn.info.localPrincipal !== undefined) fs.set(FS.localPrincipal, conn.info.localPrincipal);
      }
      return 'continue';
    },
    describe: () => ({ kind: 'istio_authn' }),
  };
};

// ------------------------------------------------------------------ TCP metadata exchange

interface MxConn {
  phase: 'start' | 'reading' | 'done';
  wrote: boolean;
  reader: ExchangeReader;
}

export const tcpMxFactory: NetFilterFactory = (cfg, diag, path, ctx) => {
  const r = ObjectReader.of(cfg.config, path, diag);
  if (!r) return undefined;
  const protocol = r.string('protocol', MX_ALPN);
  r.accept('enable_discovery', 'additional_labels');
  r.finish();
  const own = encodeExchange(ctx.node.id, ctx.node.metadata);
  const conns = new WeakMap<NetConnection, MxConn>();
  const of = (conn: NetConnection): MxConn | undefined => {
    let s = conns.get(conn);
    if (s) return s.phase === 'done' ? undefined : s;
    s = { phase: 'start', wrote: false, reader: new ExchangeReader() };
    conns.set(conn, s);
    if (conn.negotiatedProtocol !== protocol) {
      // No exchange on this connection (plain TLS or another ALPN): the peer is unknown.
      state(conn).set(FS.downstreamPeerId, FS.peerUnknown);
      s.phase = 'done';
      return undefined;
    }
    return s;
  };
  const writeOwn = (s: MxConn, conn: NetConnection): void => {
    if (s.wrote) return;
    s.wrote = true;
    conn.write(own);
  };
  return {
    name: cfg.name,
    typeUrl: cfg.typeUrl,
    onData(chunk, _end, conn) {
      const s = of(conn);
      if (!s) return undefined;
      writeOwn(s, conn);
      s.phase = 'reading';
      const res = s.reader.push(chunk);
      if (res.kind === 'more') return { data: null };
      s.phase = 'done';
      const fs = state(conn);
      if (res.kind === 'done') {
        fs.set(FS.downstreamPeer, res.peer);
        fs.set(FS.downstreamPeerId, res.peerId);
      } else fs.set(FS.downstreamPeerId, FS.peerUnknown);
      return { data: res.rest };
    },
    onWrite(_chunk, _end, conn) {
      // Server-first protocols: our metadata goes out before the upstream's first bytes.
      const s = of(conn);
      if (s) writeOwn(s, conn);
      return undefined;
    },
    describe: () => ({ kind: 'istio_tcp_metadata_exchange', protocol }),
  };
};

// ------------------------------------------------------------------ istio.stats (TCP)

interface TcpStatsConn {
  series: TcpSeries | undefined;
  sent: number;
  received: number;
  reportedSent: number;
  reportedReceived: number;
  timer: NodeJS.Timeout | undefined;
}

export function tcpStatsFactory(): NetFilterFactory {
  return (cfg, diag, path, ctx) => {
    const config = decodeStatsPluginConfig(cfg.config, diag, path);
    if (!config) return undefined;
    if (ctx.chainKind !== 'tcp') {
      // On an HTTP chain Istio's network stats filter reports nothing the HTTP one does not.
      return { name: cfg.name, typeUrl: cfg.typeUrl, describe: () => ({ kind: 'istio_stats', chain: 'http', recording: false }) };
    }
    const reporter = reporterFor(ctx.trafficDirection, config);
    const local = localSide({ node: ctx.node, trafficDirection: ctx.trafficDirection, labeledStats: ctx.stats.labeled });
    const metrics = new IstioMetrics(ctx.stats.labeled, config, (m) => diag.warn(path, m));
    recordBuild(ctx.stats.labeled, ctx.node.metadata.ISTIO_VERSION);
    const conns = new WeakMap<NetConnection, TcpStatsConn>();
    const peerRead = (conn: NetConnection): boolean => {
      // Client side: tcp_proxy finishes the upstream exchange (when the peer negotiated
      // istio-peer-exchange) before it reports the upstream connected, so the peer is
      // known, or unknown for good, by then.
      if (reporter === 'source') return true;
      return conn.info.filterState?.has(FS.downstreamPeerId) === true;
    };
    const open = (conn: NetConnection, s: TcpStatsConn): void => {
      const fs = conn.info.filterState;
      const server = reporter !== 'source';
      const peer = fs?.get(server ? FS.downstreamPeer : FS.upstreamPeer) as WorkloadMetadata | undefined;
      // Server side: the downstream connection's certificates; client side: the upstream
      // connection's (tcp_proxy's mTLS to the peer sidecar), as Istio's source reporter has them.
      const peerPrincipal = server ? String(fs?.get(FS.peerPrincipal) ?? conn.info.peerPrincipal ?? '') : conn.upstream?.peerPrincipal ?? '';
      const localPrincipal = server ? String(fs?.get(FS.localPrincipal) ?? conn.info.localPrincipal ?? '') : conn.upstream?.localPrincipal ?? '';
      const cluster = conn.upstream?.cluster;
      const svc = serviceOfCluster(cluster, cluster === undefined ? undefined : ctx.clusterMetadata?.(cluster));
      const report = { reporter, peer, peerPrincipal, localPrincipal, serviceHost: svc?.host ?? '', serviceName: svc?.name ?? '' };
      const tags = [...peerTags(local, report), 'tcp', '-', securityPolicy(report.reporter, report.peerPrincipal, report.localPrincipal)];
      if (tags.length !== TCP_TAGS.length) throw new Error('istio.stats: tcp tag count mismatch');
      s.series = metrics.tcpSeries(tags);
      s.series.opened?.inc();
    };
    const flush = (s: TcpStatsConn): void => {
      if (!s.series) return;
      s.series.sent?.inc(s.sent - s.reportedSent);
      s.series.received?.inc(s.received - s.reportedReceived);
      s.reportedSent = s.sent;
      s.reportedReceived = s.received;
    };
    const get = (conn: NetConnection): TcpStatsConn => {
      let s = conns.get(conn);
      if (!s) {
        s = { series: undefined, sent: 0, received: 0, reportedSent: 0, reportedReceived: 0, timer: undefined };
        conns.set(conn, s);
      }
      return s;
    };
    const touch = (conn: NetConnection, s: TcpStatsConn): void => {
      // Reported once the peer is known and tcp_proxy has its upstream (the destination
      // service comes from the cluster), or at close; then periodically, like Istio.
      if (s.series === undefined && peerRead(conn) && conn.upstream !== undefined) open(conn, s);
      if (s.series !== undefined && s.timer === undefined && config.tcpReportingMs > 0) {
        s.timer = setInterval(() => flush(s), config.tcpReportingMs);
        s.timer.unref();
      }
    };
    return {
      name: cfg.name,
      typeUrl: cfg.typeUrl,
      onNewConnection(conn) {
        get(conn);
        return 'continue';
      },
      onData(chunk, _end, conn) {
        const s = get(conn);
        s.received += chunk.length;
        touch(conn, s);
        return undefined;
      },
      onWrite(chunk, _end, conn) {
        const s = get(conn);
        s.sent += chunk.length;
        touch(conn, s);
        return undefined;
      },
      onClose(conn, summary) {
        const s = get(conn);
        if (s.timer) clearInterval(s.timer);
        if (s.series === undefined) open(conn, s);
        // Wire totals from the connection, when larger (bytes a filter consumed count too, as in Istio).
        s.sent = Math.max(s.sent, summary.bytesSent);
        s.received = Math.max(s.received, summary.bytesReceived);
        flush(s);
        s.series?.closed?.inc();
      },
      describe: () => ({ kind: 'istio_stats', reporter, tcp_reporting_ms: config.tcpReportingMs }),
    };
  };
}
