/** Builds the subset implementation for a cluster's lb_policy. */
import type { LbPolicy } from '../../../../config/src/index.js';
import type { RebuildScheduler } from './hashed.js';
import { LeastRequestSubset } from './least-request.js';
import { MaglevSubset } from './maglev.js';
import { RandomSubset } from './random.js';
import { RingHashSubset } from './ring-hash.js';
import { RoundRobinSubset } from './round-robin.js';
import type { LbHost, Random, Subset } from './subset.js';

export interface LbParams {
  readonly lbPolicy: LbPolicy;
  readonly ringHash: { readonly minimumRingSize: number; readonly maximumRingSize: number };
  readonly maglev: { readonly tableSize: number };
  readonly leastRequest: { readonly choiceCount: number };
}

export function createSubset<H extends LbHost>(
  p: LbParams,
  rand: Random,
  scheduler: RebuildScheduler,
): Subset<H> {
  switch (p.lbPolicy) {
    case 'ROUND_ROBIN':
    case 'CLUSTER_PROVIDED': // ORIGINAL_DST picks by the original destination before the LB is asked
      return new RoundRobinSubset<H>(rand);
    case 'LEAST_REQUEST':
      return new LeastRequestSubset<H>(rand, Math.max(2, p.leastRequest.choiceCount | 0));
    case 'RANDOM':
      return new RandomSubset<H>(rand);
    case 'RING_HASH':
      return new RingHashSubset<H>(
        rand,
        scheduler,
        Math.max(1, p.ringHash.minimumRingSize),
        Math.max(1, p.ringHash.maximumRingSize, p.ringHash.minimumRingSize),
      );
    case 'MAGLEV':
      return new MaglevSubset<H>(rand, scheduler, p.maglev.tableSize);
  }
}

export { HashedSubset, type RebuildScheduler } from './hashed.js';
export { Entry, HASH, HashCache, Subset, type LbHost, type PickScratch, type Random } from './subset.js';
export { hash53, mix53 } from '../hash.js';
