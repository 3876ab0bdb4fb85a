import type { ClusterRuntime } from './cluster/cluster.js';
import type { RouteTable } from './routing/route-table.js';

/**
 * The routing state a request sees: immutable once published. A configuration change
 * builds a new Snapshot and swaps one reference; requests keep the one they started
 * with. Endpoint diffs do not need a new snapshot: they change a cluster's endpoint set
 * in place, in time proportional to the diff.
 */
export interface Snapshot {
  readonly version: number;
  readonly clusters: ReadonlyMap<string, ClusterRuntime>;
  /** RDS route tables by route configuration name. */
  readonly routes: ReadonlyMap<string, RouteTable>;
}
