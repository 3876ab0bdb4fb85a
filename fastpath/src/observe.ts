/**
 * Connection telemetry of the pod, from the kernel: turns the helper's connection
 * events into flow records (attributed to the workload and to a destination service)
 * and the dest_stats aggregates into bounded per-service metrics.
 *
 * Attribution: a destination address:port is a service when it is an endpoint of a
 * cluster pilotfish holds (fed by the same endpoint diffs as the XDP tables), a VIP of
 * a configured L4 service, or whatever an optional resolver (the routing table) says.
 * Anything else is labelled by its address:port for the first MAX_UNRESOLVED such
 * destinations and "other" after that, so metric cardinality stays bounded.
 */
import type { EndpointDiff } from '../../config/src/index.js';
import {
  CONN_F_PROXY, CONN_F_REDIRECTED, DIR_INBOUND, EV_CONN_CLOSE, EV_CONN_OPEN, EV_UDP_CONNECT,
  type ConnEvent, type DestStats, type Outcome, DEST_STATS_FIELDS, IPPROTO_UDP,
} from './abi.js';

export interface FlowRecord {
  /** wall clock, ISO 8601 */
  readonly time: string;
  readonly event: 'open' | 'close' | 'udp_connect';
  readonly workload: string;
  readonly direction: 'outbound' | 'inbound';
  /** 'open' while the connection lives; ok | refused | reset | timeout | error | aborted once closed */
  readonly outcome: Outcome;
  readonly protocol: 'TCP' | 'UDP';
  readonly pid: number | null;
  readonly comm: string | null;
  /** the socket's own ends */
  readonly local: string;
  readonly remote: string;
  /** where the application meant to go (outbound: connect()'s address; inbound: the local service port) */
  readonly destination: string;
  /** destination service (cluster), `inbound|<port>` for accepted connections, or null when unknown */
  readonly service: string | null;
  /** 'proxy' when connect4/6 sent it to pilotfish, else 'direct' (around the proxy) */
  readonly via: 'proxy' | 'direct';
  /** opened by pilotfish itself (its upstream connections) */
  readonly proxy_own: boolean;
  readonly bytes_sent: number;
  readonly bytes_received: number;
  readonly duration_ms: number;
  readonly srtt_us: number;
  readonly retransmits: number;
  /** sk_err at close (0: none) */
  readonly errno: number;
  readonly connection_id: string;
}

export type Resolver = (address: string, port: number, protocol: 'TCP' | 'UDP') => string | undefined;

const hostPort = (a: string, p: number): string => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

/** address:port -> cluster, from endpoint diffs of every cluster. */
export class DestinationIndex {
  private readonly byAddr = new Map<string, string>();
  private readonly byCluster = new Map<string, Map<string, string>>();
  private readonly vips = new Map<string, string>();

  addVip(cluster: string, address: string, port: number): void {
    this.vips.set(hostPort(address, port), cluster);
  }

  apply(diff: EndpointDiff): void {
    let eps = this.byCluster.get(diff.cluster);
    if (!eps) this.byCluster.set(diff.cluster, (eps = new Map()));
    for (const key of diff.removed) {
      const hp = eps.get(key);
      eps.delete(key);
      if (hp !== undefined && this.byAddr.get(hp) === diff.cluster) this.byAddr.delete(hp);
    }
    for (const e of [...diff.added, ...diff.changed]) {
      const hp = hostPort(e.address, e.port);
      eps.set(e.key, hp);
      this.byAddr.set(hp, diff.cluster);
    }
  }

  lookup(address: string, port: number): string | undefined {
    const hp = hostPort(address, port);
    return this.vips.get(hp) ?? this.byAddr.get(hp);
  }
}

export const MAX_UNRESOLVED = 64;

export interface FlowFilter {
  readonly [field: string]: readonly string[];
}

const FILTERABLE = ['service', 'outcome', 'direction', 'event', 'via', 'protocol', 'pid', 'comm', 'destination', 'workload'] as const;

/**
 * /flows?service=a,b&outcome=refused,timeout&... : each parameter is a field, its value
 * a comma-separated list of accepted values; every parameter must match. Unknown
 * parameters are an error (a typo should not silently show everything).
 */
export function parseFlowFilter(params: URLSearchParams): { ok: true; filter: FlowFilter } | { ok: false; error: string } {
  const filter: Record<string, string[]> = {};
  for (const [k, v] of params) {
    if (!(FILTERABLE as readonly string[]).includes(k)) {
      return { ok: false, error: `unknown filter "${k}"; use ${FILTERABLE.join(', ')}` };
    }
    const values = v.split(',').map((x) => x.trim()).filter(Boolean);
    if (values.length === 0) return { ok: false, error: `filter "${k}" has no value` };
    filter[k] = [...(filter[k] ?? []), ...values];
  }
  return { ok: true, filter };
}

export function matchesFilter(r: FlowRecord, f: FlowFilter): boolean {
  for (const [k, vs] of Object.entries(f)) {
    const v = (r as unknown as Record<string, unknown>)[k];
    if (!vs.includes(v === null || v === undefined ? '' : String(v))) return false;
  }
  return true;
}

type Totals = { -readonly [K in keyof DestStats]: number };
const zero = (): Totals => Object.fromEntries(DEST_STATS_FIELDS.map((f) => [f, 0])) as Totals;

const esc = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export class FlowObserver {
  readonly index = new DestinationIndex();
  private readonly unresolved = new Set<string>();
  private readonly subscribers = new Set<(r: FlowRecord) => void>();
  /** per dest_stats key (hex): the last values read, for deltas that stay monotonic across LRU eviction */
  private readonly last = new Map<string, Totals>();
  /** label set -> accumulated totals */
  private readonly totals = new Map<string, Totals>();
  records = 0;
  /** offset from the kernel's monotonic clock (bpf_ktime_get_ns) to the wall clock, in ms */
  private readonly monoToWallMs: number;

  constructor(readonly workload: string, private readonly resolver?: Resolver) {
    // bpf_ktime_get_ns is CLOCK_MONOTONIC, which is what process.hrtime reads on Linux
    this.monoToWallMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
  }

  resolve(address: string, port: number, protocol: 'TCP' | 'UDP'): string | undefined {
    return this.index.lookup(address, port) ?? this.resolver?.(address, port, protocol);
  }

  /** The metric label for a destination: its service, or a bounded stand-in. */
  serviceLabel(address: string, port: number, protocol: 'TCP' | 'UDP', dir: number): string {
    if (dir === DIR_INBOUND) return `inbound|${port}`;
    const s = this.resolve(address, port, protocol);
    if (s !== undefined) return s;
    const hp = hostPort(address, port);
    if (this.unresolved.has(hp)) return hp;
    if (this.unresolved.size < MAX_UNRESOLVED) {
      this.unresolved.add(hp);
      return hp;
    }
    return 'other';
  }

  subscribe(fn: (r: FlowRecord) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  toRecord(ev: ConnEvent): FlowRecord {
    const inbound = ev.dir === DIR_INBOUND;
    const protocol = ev.key.proto === IPPROTO_UDP ? 'UDP' : 'TCP';
    const dest = inbound ? { address: ev.key.src, port: ev.key.sport } : ev.orig ?? { address: ev.key.dst, port: ev.key.dport };
    const service = inbound ? `inbound|${dest.port}` : this.resolve(dest.address, dest.port, protocol) ?? null;
    const event = ev.type === EV_CONN_CLOSE ? 'close' : ev.type === EV_UDP_CONNECT ? 'udp_connect' : 'open';
    return {
      time: new Date(this.monoToWallMs + Number(ev.tsNs / 1_000_000n)).toISOString(),
      event,
      workload: this.workload,
      direction: inbound ? 'inbound' : 'outbound',
      outcome: ev.type === EV_CONN_OPEN || ev.type === EV_UDP_CONNECT ? 'open' : ev.outcome,
      protocol,
      pid: ev.tgid || null,
      comm: ev.comm || null,
      local: ev.key.sport ? hostPort(ev.key.src, ev.key.sport) : '-',
      remote: hostPort(ev.key.dst, ev.key.dport),
      destination: hostPort(dest.address, dest.port),
      service,
      via: ev.flags & CONN_F_REDIRECTED ? 'proxy' : 'direct',
      proxy_own: (ev.flags & CONN_F_PROXY) !== 0,
      bytes_sent: ev.bytesSent,
      bytes_received: ev.bytesReceived,
      duration_ms: Number(ev.durationNs) / 1e6,
      srtt_us: ev.srttUs,
      retransmits: ev.retrans,
      errno: ev.err,
      connection_id: ev.cookie.toString(),
    };
  }

  onEvent(ev: ConnEvent): void {
    if (this.subscribers.size === 0) return;
    const r = this.toRecord(ev);
    this.records++;
    for (const s of this.subscribers) s(r);
  }

  /** Folds a dump of dest_stats into per-service totals (deltas, so LRU eviction never makes a counter go back). */
  updateDestStats(entries: readonly { key: string; dest: { address: string; port: number; proto: 'TCP' | 'UDP'; dir: number }; stats: DestStats }[]): void {
    for (const { key, dest, stats } of entries) {
      const prev = this.last.get(key);
      const labels = `workload="${esc(this.workload)}",service="${esc(this.serviceLabel(dest.address, dest.port, dest.proto, dest.dir))}",direction="${dest.dir === DIR_INBOUND ? 'inbound' : 'outbound'}"`;
      let t = this.totals.get(labels);
      if (!t) this.totals.set(labels, (t = zero()));
      // a smaller value than last time: the entry was evicted and started again
      const restarted = prev !== undefined && DEST_STATS_FIELDS.some((f) => stats[f] < prev[f]);
      for (const f of DEST_STATS_FIELDS) t[f] += stats[f] - (prev && !restarted ? prev[f] : 0);
      this.last.set(key, { ...stats });
    }
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = {};
    for (const [l, t] of this.totals) {
      m[`fastpath_flow_opened_total{${l}}`] = t.opened;
      m[`fastpath_flow_established_total{${l}}`] = t.established;
      m[`fastpath_flow_closed_total{${l},outcome="ok"}`] = t.closedOk;
      m[`fastpath_flow_closed_total{${l},outcome="refused"}`] = t.refused;
      m[`fastpath_flow_closed_total{${l},outcome="reset"}`] = t.reset;
      m[`fastpath_flow_closed_total{${l},outcome="timeout"}`] = t.timeout;
      m[`fastpath_flow_closed_total{${l},outcome="error"}`] = t.otherErr;
      m[`fastpath_flow_bytes_sent_total{${l}}`] = t.bytesSent;
      m[`fastpath_flow_bytes_received_total{${l}}`] = t.bytesReceived;
      m[`fastpath_flow_retransmits_total{${l}}`] = t.retransmits;
      m[`fastpath_flow_srtt_us{${l}}`] = t.srttSamples ? Math.round(t.srttSumUs / t.srttSamples) : 0;
      m[`fastpath_flow_udp_connects_total{${l}}`] = t.udpConnects;
      m[`fastpath_flow_udp_datagrams_total{${l}}`] = t.udpDatagrams;
    }
    m.fastpath_flow_records_total = this.records;
    m.fastpath_flow_subscribers = this.subscribers.size;
    return m;
  }
}
