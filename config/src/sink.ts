import type { Cluster, Endpoint, EndpointDiff, Listener, RouteConfiguration, TypedExtension } from './model.js';

/**
 * What a configuration source (the xDS client, a file watcher) drives, and what the
 * proxy implements. Sources decode and warm resources; the sink only ever receives
 * resources that are valid and complete:
 *  - a cluster is upserted together with its first endpoints (EDS warming done);
 *  - a listener is upserted only once every RDS route configuration it names is known.
 * Upserts replace by name; the proxy swaps its routing snapshot atomically after each call
 * (or after `commit()` when a source batches several changes from one response).
 */
export interface ConfigSink {
  upsertCluster(cluster: Cluster, endpoints: readonly Endpoint[]): void;
  removeCluster(name: string): void;
  /** Incremental endpoint change; cost proportional to the diff. */
  applyEndpointDiff(diff: EndpointDiff): void;
  upsertRouteConfiguration(config: RouteConfiguration): void;
  removeRouteConfiguration(name: string): void;
  upsertListener(listener: Listener): void;
  removeListener(name: string): void;
  /** SDS: a decoded-as-JSON `envoy.extensions.transport_sockets.tls.v3.Secret`, by name. */
  upsertSecret(name: string, secret: TypedExtension): void;
  removeSecret(name: string): void;
  /** Apply everything upserted since the last commit as one snapshot. */
  commit(): void;
}
