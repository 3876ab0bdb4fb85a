import type { Endpoint, EndpointDiff, LbPolicy } from '../../../config/src/index.js';
import type { EndpointSetOptions } from '../../src/cluster/endpoint-set.js';

/** Deterministic [0,1) generator so distribution tests cannot flake. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function ep(i: number, o: Partial<Endpoint> = {}): Endpoint {
  const address = o.address ?? `10.0.${(i >> 8) & 255}.${i & 255}`;
  const port = o.port ?? 8080 + (i >> 16);
  return {
    key: `${address}:${port}`,
    address,
    port,
    hostname: '',
    weight: 1,
    priority: 0,
    locality: 'r/z/s',
    localityWeight: 1,
    health: 'healthy',
    ...o,
  };
}

export function opts(lbPolicy: LbPolicy, o: Partial<EndpointSetOptions> = {}): EndpointSetOptions {
  return {
    lbPolicy,
    healthyPanicThreshold: 50,
    overprovisioningFactor: 140,
    localityWeightedLb: false,
    ringHash: { minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024 },
    maglev: { tableSize: 65537 },
    leastRequest: { choiceCount: 2 },
    random: mulberry32(42),
    ...o,
  };
}

export function diff(o: Partial<EndpointDiff>): EndpointDiff {
  return { cluster: 'c', added: [], removed: [], changed: [], ...o };
}

export const POLICIES: readonly LbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV'];

/** Picks n times and counts by endpoint key. */
export function count(pick: () => { endpoint: Endpoint } | undefined, n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = pick();
    const k = h === undefined ? '<none>' : h.endpoint.key;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}
