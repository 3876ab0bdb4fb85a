import type { ClusterSpecifier, WeightedCluster } from '../../../../config/src/index.js';
import { applyHeaderOptions, firstValue, type HeaderMap } from '../headers.js';

/** weighted_clusters: one draw of `random` in [0, totalWeight); the last cluster absorbs rounding. */
export function pickWeighted(clusters: readonly WeightedCluster[], totalWeight: number, random: () => number): WeightedCluster | undefined {
  let pick = random() * totalWeight;
  for (const c of clusters) {
    pick -= c.weight;
    if (pick < 0) return c;
  }
  return clusters[clusters.length - 1];
}

/**
 * The route's cluster for this request: a name, the value of cluster_header, or a weighted
 * pick, whose own request header mutations are applied to `headers` (Envoy applies them
 * first, before the route's). Undefined: no cluster (the header is absent).
 */
export function chooseCluster(spec: ClusterSpecifier, headers: HeaderMap, random: () => number): string | undefined {
  switch (spec.kind) {
    case 'cluster':
      return spec.name;
    case 'cluster_header':
      return firstValue(headers[spec.header]);
    case 'weighted': {
      const c = pickWeighted(spec.clusters, spec.totalWeight, random);
      if (c === undefined) return undefined;
      if (c.requestHeadersToAdd.length > 0 || c.requestHeadersToRemove.length > 0) applyHeaderOptions(headers, c.requestHeadersToAdd, c.requestHeadersToRemove);
      return c.name;
    }
  }
}
