/**
 * TypeScript side of bpf/fp_abi.h: the same sizes, offsets and constants, and the
 * encoders that turn plain values into the bytes the maps hold. test/abi.test.ts
 * compiles native/abi_dump.c and checks every number here against the C compiler.
 */
import { isIP } from 'node:net';

export const ABI_VERSION = 1;
export const MAX_SERVICES = 32;
export const MAX_BACKENDS = 4096;
export const MAGLEV_MAX = 65537;

export const FAMILY_V4 = 4;
export const FAMILY_V6 = 6;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const SVC_F_USERSPACE = 0x1;
export const CFG_F_FIB = 0x1;
export const CFG_F_EVENTS = 0x2;
export const CFG_F_INTERCEPT = 0x4;
export const CFG_F_SOCKMAP = 0x8;

export const CFG_F_OBSERVE = 0x10;
export const CFG_F_CONN_EVENTS = 0x20;

export const EV_FLOW_NEW = 1;
export const EV_CONNECT_REDIRECT = 2;
export const EV_CONN_OPEN = 3;
export const EV_CONN_CLOSE = 4;
export const EV_UDP_CONNECT = 5;

export const DIR_OUTBOUND = 1;
export const DIR_INBOUND = 2;

/** fp_conn_event.outcome, by value. */
export const OUTCOMES = ['open', 'ok', 'refused', 'reset', 'timeout', 'error', 'aborted'] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const OUT_NONE = 0;
export const OUT_OK = 1;
export const OUT_REFUSED = 2;
export const OUT_RESET = 3;
export const OUT_TIMEOUT = 4;
export const OUT_ERROR = 5;
export const OUT_ABORTED = 6;

export const CONN_F_PROXY = 0x1;
export const CONN_F_REDIRECTED = 0x2;

/** Struct layouts: size and field offsets, as in fp_abi.h. */
export const LAYOUT = {
  fp_sockaddr: { size: 20, addr: 0, port: 16, family: 18, proto: 19 },
  fp_service: { size: 16, id: 0, table_size: 4, flags: 8, backend_count: 12 },
  fp_flow_key: { size: 40, src: 0, dst: 16, sport: 32, dport: 34, proto: 36, family: 37 },
  fp_flow: { size: 40, backend: 0, backend_id: 20, service_id: 24, created_ns: 32 },
  fp_config: { size: 32, flags: 0, outbound_port: 4, outbound_addr4: 8, outbound_addr6: 12 },
  fp_event: { size: 64, ts_ns: 0, key: 8, type: 48, backend_id: 52, service_id: 56 },
  fp_conn: { size: 56, orig: 0, tgid: 20, start_ns: 24, comm: 32, dir: 48, flags: 49 },
  fp_conn_event: {
    size: 144, ts_ns: 0, duration_ns: 8, bytes_sent: 16, bytes_received: 24, cookie: 32, key: 40, orig: 80,
    tgid: 100, comm: 104, srtt_us: 120, retrans: 124, type: 128, dir: 132, outcome: 133, flags: 134, old_state: 135, err: 136,
  },
  fp_dest_key: { size: 24, addr: 0, dir: 20 },
  fp_dest_stats: { size: 112, opened: 0, udp_datagrams: 104 },
  fp_lb_stats: { size: 24, packets: 0, bytes: 8, flows: 16 },
  fp_runtime: {
    size: 240, tid: 0, in_poll: 4, nr_poll: 8, in_gc: 20, stall_ns: 24, poll_enter_ns: 32, poll_exit_ns: 40, iterations: 48,
    busy_ns: 56, busy_max_ns: 64, stalls: 72, gc_enter_ns: 80, gcs: 88, gc_ns: 96, gc_max_ns: 104, hist: 112,
  },
} as const;

export const RT_HIST = 16;

export interface RuntimeState {
  readonly tid: number;
  readonly inPoll: boolean;
  readonly inGc: boolean;
  readonly pollExitNs: bigint;
  readonly iterations: number;
  readonly busyNs: number;
  readonly busyMaxNs: number;
  readonly stalls: number;
  readonly gcs: number;
  readonly gcNs: number;
  readonly gcMaxNs: number;
  /** iterations by busy time: bucket i holds [64us * 2^(i-1), 64us * 2^i), bucket 0 below 64 us, the last open-ended */
  readonly hist: readonly number[];
}

export function decodeRuntime(b: Buffer): RuntimeState {
  const L = LAYOUT.fp_runtime;
  const u64 = (o: number) => Number(b.readBigUInt64LE(o));
  return {
    tid: b.readUInt32LE(L.tid),
    inPoll: b.readUInt32LE(L.in_poll) !== 0,
    inGc: b.readUInt32LE(L.in_gc) !== 0,
    pollExitNs: b.readBigUInt64LE(L.poll_exit_ns),
    iterations: u64(L.iterations),
    busyNs: u64(L.busy_ns),
    busyMaxNs: u64(L.busy_max_ns),
    stalls: u64(L.stalls),
    gcs: u64(L.gcs),
    gcNs: u64(L.gc_ns),
    gcMaxNs: u64(L.gc_max_ns),
    hist: Array.from({ length: RT_HIST }, (_, i) => u64(L.hist + i * 8)),
  };
}

/** struct fp_dest_stats, field by field (all __u64, in order). */
export const DEST_STATS_FIELDS = [
  'opened', 'established', 'closedOk', 'refused', 'reset', 'timeout', 'otherErr', 'bytesSent', 'bytesReceived',
  'retransmits', 'srttSumUs', 'srttSamples', 'udpConnects', 'udpDatagrams',
] as const;
export type DestStats = Record<(typeof DEST_STATS_FIELDS)[number], number>;

/**
 * enum fp_counter, in order, with the metric each becomes. Labels ride in the name
 * (Prometheus text form) so that metrics() stays a flat record.
 */
export const COUNTERS = [
  ['FP_CNT_RX_PACKETS', 'fastpath_rx_packets_total'],
  ['FP_CNT_RX_BYTES', 'fastpath_rx_bytes_total'],
  ['FP_CNT_TX_PACKETS', 'fastpath_tx_packets_total'],
  ['FP_CNT_REDIRECT_PACKETS', 'fastpath_redirect_packets_total'],
  ['FP_CNT_XSK_PACKETS', 'fastpath_xsk_packets_total'],
  ['FP_CNT_PASS_PACKETS', 'fastpath_pass_packets_total'],
  ['FP_CNT_FWD_BYTES', 'fastpath_forwarded_bytes_total'],
  ['FP_CNT_DROP_NO_BACKEND', 'fastpath_drops_total{reason="no_backend"}'],
  ['FP_CNT_DROP_FAMILY', 'fastpath_drops_total{reason="address_family"}'],
  ['FP_CNT_PASS_TRUNCATED', 'fastpath_pass_reason_total{reason="truncated"}'],
  ['FP_CNT_PASS_FRAGMENT', 'fastpath_pass_reason_total{reason="fragment"}'],
  ['FP_CNT_PASS_IP_OPTIONS', 'fastpath_pass_reason_total{reason="ip_options"}'],
  ['FP_CNT_PASS_OTHER_PROTO', 'fastpath_pass_reason_total{reason="other_protocol"}'],
  ['FP_CNT_PASS_NO_SERVICE', 'fastpath_pass_reason_total{reason="no_service"}'],
  ['FP_CNT_PASS_FIB_MISS', 'fastpath_pass_reason_total{reason="fib_miss"}'],
  ['FP_CNT_FLOW_NEW', 'fastpath_flows_created_total'],
  ['FP_CNT_FLOW_HIT', 'fastpath_flow_hits_total'],
  ['FP_CNT_REVERSE_NAT', 'fastpath_reverse_nat_packets_total'],
  ['FP_CNT_CONNECT_REDIRECT', 'fastpath_connect_redirects_total'],
  ['FP_CNT_SOCKMAP_ADD', 'fastpath_sockmap_sockets_total'],
  ['FP_CNT_SOCKMAP_REDIRECT', 'fastpath_sockmap_redirects_total'],
  ['FP_CNT_EVENTS_LOST', 'fastpath_events_lost_total'],
  ['FP_CNT_ORIG_DST_SOCKOPT', 'fastpath_orig_dst_sockopt_total'],
  ['FP_CNT_CONN_EVENTS', 'fastpath_conn_events_total'],
  ['FP_CNT_CONN_EVENTS_LOST', 'fastpath_conn_events_lost_total'],
  ['FP_CNT_CONN_UNTRACKED', 'fastpath_conn_untracked_total'],
] as const;
export const COUNTER_COUNT = COUNTERS.length;

export interface SockAddr {
  readonly address: string;
  readonly port: number;
  readonly proto?: 'TCP' | 'UDP';
}

/** 16 bytes, network order; IPv4 in the first four. Throws on a non-literal address. */
export function encodeAddr(address: string): { bytes: Buffer; family: 4 | 6 } {
  const out = Buffer.alloc(16);
  const kind = isIP(address);
  if (kind === 4) {
    address.split('.').forEach((o, i) => out.writeUInt8(Number(o), i));
    return { bytes: out, family: 4 };
  }
  if (kind !== 6) throw new Error(`not an IP address: ${address}`);
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const o = dotted[1]!.split('.').map(Number);
    text = text.slice(0, -dotted[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return { bytes: out, family: 6 };
}

export function decodeAddr(bytes: Buffer, family: number): string {
  if (family === FAMILY_V4) return [...bytes.subarray(0, 4)].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // compress the longest run of zero groups, as RFC 5952 wants
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function protoNumber(p: 'TCP' | 'UDP' | undefined): number {
  return p === 'UDP' ? IPPROTO_UDP : p === 'TCP' ? IPPROTO_TCP : 0;
}

export function encodeSockAddr(a: SockAddr): Buffer {
  const L = LAYOUT.fp_sockaddr;
  const b = Buffer.alloc(L.size);
  const { bytes, family } = encodeAddr(a.address);
  bytes.copy(b, L.addr);
  b.writeUInt16BE(a.port, L.port);
  b.writeUInt8(family, L.family);
  b.writeUInt8(protoNumber(a.proto), L.proto);
  return b;
}

export function decodeSockAddr(b: Buffer): { address: string; port: number; family: number; proto: number } {
  const L = LAYOUT.fp_sockaddr;
  const family = b.readUInt8(L.family);
  return {
    address: decodeAddr(b.subarray(L.addr, L.addr + 16), family),
    port: b.readUInt16BE(L.port),
    family,
    proto: b.readUInt8(L.proto),
  };
}

export interface ServiceValue {
  readonly id: number;
  readonly tableSize: number;
  readonly flags: number;
  readonly backendCount: number;
}

export function encodeService(v: ServiceValue): Buffer {
  const L = LAYOUT.fp_service;
  const b = Buffer.alloc(L.size);
  b.writeUInt32LE(v.id, L.id);
  b.writeUInt32LE(v.tableSize, L.table_size);
  b.writeUInt32LE(v.flags, L.flags);
  b.writeUInt32LE(v.backendCount, L.backend_count);
  return b;
}

export function encodeU32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** Port keys (skip_ports, sockmap_ports) are __u16 in network order. */
export function encodePortKey(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(port, 0);
  return b;
}

export interface FlowKey {
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
  readonly proto: number;
  readonly family: number;
}

export function encodeFlowKey(k: FlowKey): Buffer {
  const L = LAYOUT.fp_flow_key;
  const b = Buffer.alloc(L.size);
  encodeAddr(k.src).bytes.copy(b, L.src);
  encodeAddr(k.dst).bytes.copy(b, L.dst);
  b.writeUInt16BE(k.sport, L.sport);
  b.writeUInt16BE(k.dport, L.dport);
  b.writeUInt8(k.proto, L.proto);
  b.writeUInt8(k.family, L.family);
  return b;
}

export function decodeFlowKey(b: Buffer): FlowKey {
  const L = LAYOUT.fp_flow_key;
  const family = b.readUInt8(L.family);
  return {
    src: decodeAddr(b.subarray(L.src, L.src + 16), family),
    dst: decodeAddr(b.subarray(L.dst, L.dst + 16), family),
    sport: b.readUInt16BE(L.sport),
    dport: b.readUInt16BE(L.dport),
    proto: b.readUInt8(L.proto),
    family,
  };
}

export interface FlowValue {
  readonly backend: ReturnType<typeof decodeSockAddr>;
  readonly backendId: number;
  readonly serviceId: number;
  readonly createdNs: bigint;
}

export function decodeFlow(b: Buffer): FlowValue {
  const L = LAYOUT.fp_flow;
  return {
    backend: decodeSockAddr(b.subarray(L.backend, L.backend + LAYOUT.fp_sockaddr.size)),
    backendId: b.readUInt32LE(L.backend_id),
    serviceId: b.readUInt32LE(L.service_id),
    createdNs: b.readBigUInt64LE(L.created_ns),
  };
}

export interface ConfigValue {
  readonly flags: number;
  readonly outboundPort: number;
  readonly outboundAddr4: string;
  readonly outboundAddr6: string;
}

export function encodeConfig(c: ConfigValue): Buffer {
  const L = LAYOUT.fp_config;
  const b = Buffer.alloc(L.size);
  b.writeUInt32LE(c.flags, L.flags);
  b.writeUInt16BE(c.outboundPort, L.outbound_port);
  encodeAddr(c.outboundAddr4).bytes.copy(b, L.outbound_addr4, 0, 4);
  encodeAddr(c.outboundAddr6).bytes.copy(b, L.outbound_addr6, 0, 16);
  return b;
}

export interface FlowEvent {
  readonly tsNs: bigint;
  readonly key: FlowKey;
  readonly type: number;
  readonly backendId: number;
  readonly serviceId: number;
}

export function decodeEvent(b: Buffer): FlowEvent {
  const L = LAYOUT.fp_event;
  return {
    tsNs: b.readBigUInt64LE(L.ts_ns),
    key: decodeFlowKey(b.subarray(L.key, L.key + LAYOUT.fp_flow_key.size)),
    type: b.readUInt32LE(L.type),
    backendId: b.readUInt32LE(L.backend_id),
    serviceId: b.readUInt32LE(L.service_id),
  };
}

/** One connection event as the kernel reported it (fp_conn_event). */
export interface ConnEvent {
  readonly tsNs: bigint;
  readonly durationNs: bigint;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly cookie: bigint;
  readonly key: FlowKey;
  /** What connect() asked for (undefined: not seen, e.g. accepted sockets). */
  readonly orig: { address: string; port: number } | undefined;
  readonly tgid: number;
  readonly comm: string;
  readonly srttUs: number;
  readonly retrans: number;
  readonly type: number;
  readonly dir: number;
  readonly outcome: Outcome;
  readonly flags: number;
  readonly oldState: number;
  readonly err: number;
}

export function decodeConnEvent(b: Buffer): ConnEvent {
  const L = LAYOUT.fp_conn_event;
  if (b.length < L.size) throw new Error(`connection event of ${b.length} bytes, want ${L.size}`);
  const orig = decodeSockAddr(b.subarray(L.orig, L.orig + LAYOUT.fp_sockaddr.size));
  const comm = b.subarray(L.comm, L.comm + 16);
  const nul = comm.indexOf(0);
  return {
    tsNs: b.readBigUInt64LE(L.ts_ns),
    durationNs: b.readBigUInt64LE(L.duration_ns),
    bytesSent: Number(b.readBigUInt64LE(L.bytes_sent)),
    bytesReceived: Number(b.readBigUInt64LE(L.bytes_received)),
    cookie: b.readBigUInt64LE(L.cookie),
    key: decodeFlowKey(b.subarray(L.key, L.key + LAYOUT.fp_flow_key.size)),
    orig: orig.family === FAMILY_V4 || orig.family === FAMILY_V6 ? { address: orig.address, port: orig.port } : undefined,
    tgid: b.readUInt32LE(L.tgid),
    comm: comm.subarray(0, nul < 0 ? 16 : nul).toString('latin1'),
    srttUs: b.readUInt32LE(L.srtt_us),
    retrans: b.readUInt32LE(L.retrans),
    type: b.readUInt32LE(L.type),
    dir: b.readUInt8(L.dir),
    outcome: OUTCOMES[b.readUInt8(L.outcome)] ?? 'error',
    flags: b.readUInt8(L.flags),
    oldState: b.readUInt8(L.old_state),
    err: b.readUInt32LE(L.err),
  };
}

/** A dest_stats key: the destination (or, inbound, the local service port) and the direction. */
export function decodeDestKey(b: Buffer): { address: string; port: number; proto: 'TCP' | 'UDP'; dir: number } {
  const a = decodeSockAddr(b.subarray(0, LAYOUT.fp_sockaddr.size));
  return { address: a.address, port: a.port, proto: a.proto === IPPROTO_UDP ? 'UDP' : 'TCP', dir: b.readUInt8(LAYOUT.fp_dest_key.dir) };
}

export function decodeDestStats(b: Buffer): DestStats {
  const out = {} as DestStats;
  DEST_STATS_FIELDS.forEach((f, i) => { out[f] = Number(b.readBigUInt64LE(i * 8)); });
  return out;
}

export function decodeLbStats(b: Buffer): { packets: number; bytes: number; flows: number } {
  const L = LAYOUT.fp_lb_stats;
  return { packets: Number(b.readBigUInt64LE(L.packets)), bytes: Number(b.readBigUInt64LE(L.bytes)), flows: Number(b.readBigUInt64LE(L.flows)) };
}

/** Parses the helper's `M <map>` answer into key/value buffers. */
export function parseDump(answer: string): { key: Buffer; value: Buffer }[] {
  const out: { key: Buffer; value: Buffer }[] = [];
  for (const part of answer.trim().split(' ')) {
    if (!part) continue;
    const i = part.indexOf(':');
    if (i < 0) continue;
    out.push({ key: Buffer.from(part.slice(0, i), 'hex'), value: Buffer.from(part.slice(i + 1), 'hex') });
  }
  return out;
}
