/**
 * Maglev consistent hashing (Eisenbud et al., NSDI '16), weighted the way Envoy's
 * MaglevLoadBalancer does it: every backend walks its own permutation of the table
 * and claims its next free slot, a backend of weight w taking a turn w/maxWeight as
 * often. The ONE implementation: the fast path pushes this table into the BPF
 * `maglev` map, and the proxy's MAGLEV load balancer (proxy/src/cluster/lb/maglev.ts)
 * builds its table with the same function, so both pick the same backend for a flow.
 *
 * One hash for both jobs: murmur3 (x86, 32-bit). It is what bpf/hash.h computes over
 * the flow key (`flowHash` below reproduces it bit for bit), and it is cheap enough
 * to hash endpoint keys for the permutations (no crypto).
 */
import { isPrime } from '../../config/src/index.js';

export { isPrime };

export interface MaglevBackend {
  /** Stable identity (the endpoint key); the permutation derives from it alone. */
  readonly key: string;
  readonly weight: number;
  /** What the table holds for this backend (the BPF backend id). */
  readonly id: number;
}

/** murmur3_x86_32 over `len` bytes of `b` from `off`; little-endian words as on x86 and BPF. */
export function murmur3(b: Uint8Array, seed: number, off = 0, len = b.length - off): number {
  let h = seed >>> 0;
  const words = len >>> 2;
  for (let i = 0; i < words; i++) {
    const p = off + i * 4;
    let k = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = off + words * 4;
  const rest = len & 3;
  if (rest > 0) {
    let k = b[tail]!;
    if (rest > 1) k ^= b[tail + 1]! << 8;
    if (rest > 2) k ^= b[tail + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Size of `struct fp_flow_key` (bpf/fp_abi.h): src[16] dst[16] sport dport proto family pad. */
export const FLOW_KEY_SIZE = 40;
const FLOW_SEED = 0x9747b28c;

/** bpf/hash.h `flow_hash`: the hash the BPF program takes modulo the table size. */
export function flowHash(key: Uint8Array): number {
  if (key.length !== FLOW_KEY_SIZE) throw new Error(`flow key must be ${FLOW_KEY_SIZE} bytes, got ${key.length}`);
  return murmur3(key, FLOW_SEED);
}

export interface FlowTuple {
  /** IPv4 dotted quad (v4-mapped into the 16-byte field as the BPF program stores it) or IPv6. */
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
  /** IPPROTO_TCP (6) or IPPROTO_UDP (17). */
  readonly proto: number;
}

/**
 * `struct fp_flow_key` as xdp_lb fills it: IPv4 addresses in the first 4 bytes of the
 * 16-byte fields (rest zero), ports in network order, family 4 or 6.
 */
export function encodeFlowKey(t: FlowTuple): Uint8Array {
  const b = new Uint8Array(FLOW_KEY_SIZE);
  const v6 = t.src.includes(':');
  writeAddr(b, 0, t.src, v6);
  writeAddr(b, 16, t.dst, v6);
  b[32] = (t.sport >> 8) & 255;
  b[33] = t.sport & 255;
  b[34] = (t.dport >> 8) & 255;
  b[35] = t.dport & 255;
  b[36] = t.proto;
  b[37] = v6 ? 6 : 4;
  return b;
}

function writeAddr(b: Uint8Array, off: number, addr: string, v6: boolean): void {
  if (!v6) {
    addr.split('.').forEach((o, i) => (b[off + i] = Number(o) & 255));
    return;
  }
  const [head, tail] = addr.split('::') as [string, string | undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    b[off + i * 2] = (v >> 8) & 255;
    b[off + i * 2 + 1] = v & 255;
  });
}

/** The two permutation hashes of a backend key (not yet reduced by a table size; cacheable). */
export interface MaglevKeyHashes {
  readonly offset: number;
  readonly skip: number;
}

const OFFSET_SEED = 0;
const SKIP_SEED = 1;
const utf8 = new TextEncoder();

export function maglevKeyHashes(key: string): MaglevKeyHashes {
  const b = utf8.encode(key);
  return { offset: murmur3(b, OFFSET_SEED), skip: murmur3(b, SKIP_SEED) };
}

/**
 * Fills a table of `size` slots (a prime) with indices 0..n-1 of the backends, -1 where
 * there is none (no backend of positive weight). Backends take turns in the order of
 * their keys, so the table depends on the set of (key, weight), not on the input order.
 * `hashes(i)` lets a caller reuse cached permutation hashes across rebuilds.
 */
export function maglevSlots(
  n: number,
  size: number,
  keyOf: (i: number) => string,
  weightOf: (i: number) => number,
  hashes: (i: number) => MaglevKeyHashes = (i) => maglevKeyHashes(keyOf(i)),
): Int32Array {
  if (!isPrime(size)) throw new Error(`maglev table size ${size} is not prime`);
  const table = new Int32Array(size).fill(-1);
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (weightOf(i) > 0) order.push(i);
  if (order.length === 0) return table;
  const keys = order.map(keyOf);
  const byKey = order.map((_, j) => j).sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  const m = order.length;
  const owner = new Int32Array(m);
  const weight = new Float64Array(m);
  const pos = new Int32Array(m);
  const skip = new Int32Array(m);
  const target = new Float64Array(m);
  let maxW = 0;
  for (let j = 0; j < m; j++) {
    const i = order[byKey[j]!]!;
    owner[j] = i;
    weight[j] = weightOf(i);
    const h = hashes(i);
    pos[j] = h.offset % size;
    skip[j] = (h.skip % (size - 1)) + 1;
    if (weight[j]! > maxW) maxW = weight[j]!;
  }
  let filled = 0;
  for (let iter = 1; filled < size; iter++) {
    for (let j = 0; j < m && filled < size; j++) {
      // Envoy: a backend takes a turn once iter*weight has caught up with its target.
      if (iter * weight[j]! < target[j]!) continue;
      target[j]! += maxW;
      const sk = skip[j]!;
      let c = pos[j]!;
      while (table[c] !== -1) {
        c += sk;
        if (c >= size) c -= size;
      }
      table[c] = owner[j]!;
      c += sk;
      pos[j] = c >= size ? c - size : c;
      filled++;
    }
  }
  return table;
}

// A rebuild after a one-endpoint diff should not re-hash every other endpoint.
const hashCache = new Map<string, MaglevKeyHashes>();
const HASH_CACHE_MAX = 200_000;

function cachedHashes(key: string): MaglevKeyHashes {
  let h = hashCache.get(key);
  if (h === undefined) {
    h = maglevKeyHashes(key);
    if (hashCache.size >= HASH_CACHE_MAX) hashCache.clear();
    hashCache.set(key, h);
  }
  return h;
}

/**
 * The table the BPF `maglev` map holds for one service: backend ids, 0 where there is
 * no backend. Same slots as the proxy's MAGLEV table for the same endpoints.
 */
export function buildMaglevTable(backends: readonly MaglevBackend[], size: number): Uint32Array {
  const slots = maglevSlots(
    backends.length,
    size,
    (i) => backends[i]!.key,
    (i) => backends[i]!.weight,
    (i) => cachedHashes(backends[i]!.key),
  );
  const table = new Uint32Array(size);
  for (let s = 0; s < size; s++) {
    const i = slots[s]!;
    if (i >= 0) table[s] = backends[i]!.id;
  }
  return table;
}

/** What xdp_lb does with a table: the slot `flow_hash(key) % size`. */
export function maglevSlotFor(hash: number, size: number): number {
  return hash % size;
}

/** Slots whose content differs: what an incremental update has to write. */
export function diffTables(before: Uint32Array, after: Uint32Array): number[] {
  const changed: number[] = [];
  for (let i = 0; i < after.length; i++) if (before[i] !== after[i]) changed.push(i);
  return changed;
}
