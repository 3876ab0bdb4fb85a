import type { ConfigSink, Cluster, Endpoint, EndpointDiff, Listener, RouteConfiguration, TypedExtension } from '../../config/src/index.js';
import { encodeJson } from '../src/protos.js';
import { TYPE_URLS } from '../src/resource-type.js';
import { DEFAULT_WAIT_MS } from '../../test-support/wait.js';

export const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

export function clusterJson(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } }, ...extra };
}

export function claJson(name: string, eps: readonly [string, number][], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cluster_name: name,
    endpoints: [
      {
        locality: { zone: 'z1' },
        lb_endpoints: eps.map(([a, p]) => ({ endpoint: { address: { socket_address: { address: a, port_value: p } } }, health_status: 'HEALTHY' })),
      },
    ],
    ...extra,
  };
}

export function lbEndpointJson(a: string, p: number, health = 'HEALTHY'): Record<string, unknown> {
  return { endpoint: { address: { socket_address: { address: a, port_value: p } } }, health_status: health };
}

export function listenerJson(name: string, port: number, route: string): Record<string, unknown> {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: name,
              rds: { route_config_name: route, config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
            },
          },
        ],
      },
    ],
  };
}

export function routeJson(name: string, cluster: string): Record<string, unknown> {
  return {
    name,
    virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }],
  };
}

export function any(typeUrl: string, json: Record<string, unknown>) {
  return { type_url: typeUrl, value: encodeJson(typeUrl, json) };
}

export const T = TYPE_URLS;

export type SinkCall =
  | { op: 'upsertCluster'; cluster: Cluster; endpoints: readonly Endpoint[] }
  | { op: 'removeCluster'; name: string }
  | { op: 'applyEndpointDiff'; diff: EndpointDiff }
  | { op: 'upsertRouteConfiguration'; config: RouteConfiguration }
  | { op: 'removeRouteConfiguration'; name: string }
  | { op: 'upsertListener'; listener: Listener }
  | { op: 'removeListener'; name: string }
  | { op: 'upsertSecret'; name: string; secret: TypedExtension }
  | { op: 'removeSecret'; name: string }
  | { op: 'commit' };

/** A ConfigSink that records every call, and keeps the resulting state. */
export class RecordingSink implements ConfigSink {
  readonly calls: SinkCall[] = [];
  readonly clusters = new Map<string, { cluster: Cluster; endpoints: Map<string, Endpoint> }>();
  readonly listeners = new Map<string, Listener>();
  readonly routes = new Map<string, RouteConfiguration>();
  readonly secrets = new Map<string, TypedExtension>();
  commits = 0;
  private waiters: (() => void)[] = [];

  upsertCluster(cluster: Cluster, endpoints: readonly Endpoint[]): void {
    this.calls.push({ op: 'upsertCluster', cluster, endpoints });
    this.clusters.set(cluster.name, { cluster, endpoints: new Map(endpoints.map((e) => [e.key, e])) });
  }
  removeCluster(name: string): void {
    this.calls.push({ op: 'removeCluster', name });
    this.clusters.delete(name);
  }
  applyEndpointDiff(diff: EndpointDiff): void {
    this.calls.push({ op: 'applyEndpointDiff', diff });
    const c = this.clusters.get(diff.cluster);
    if (!c) throw new Error(`diff for unknown cluster ${diff.cluster}`);
    for (const k of diff.removed) c.endpoints.delete(k);
    for (const e of [...diff.added, ...diff.changed]) c.endpoints.set(e.key, e);
  }
  upsertRouteConfiguration(config: RouteConfiguration): void {
    this.calls.push({ op: 'upsertRouteConfiguration', config });
    this.routes.set(config.name, config);
  }
  removeRouteConfiguration(name: string): void {
    this.calls.push({ op: 'removeRouteConfiguration', name });
    this.routes.delete(name);
  }
  upsertListener(listener: Listener): void {
    this.calls.push({ op: 'upsertListener', listener });
    this.listeners.set(listener.name, listener);
  }
  removeListener(name: string): void {
    this.calls.push({ op: 'removeListener', name });
    this.listeners.delete(name);
  }
  upsertSecret(name: string, secret: TypedExtension): void {
    this.calls.push({ op: 'upsertSecret', name, secret });
    this.secrets.set(name, secret);
  }
  removeSecret(name: string): void {
    this.calls.push({ op: 'removeSecret', name });
    this.secrets.delete(name);
  }
  commit(): void {
    this.calls.push({ op: 'commit' });
    this.commits++;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  ops(): string[] {
    return this.calls.map((c) => c.op);
  }
  endpointKeys(cluster: string): string[] {
    return [...(this.clusters.get(cluster)?.endpoints.keys() ?? [])].sort();
  }
  /**
   * Resolves when `pred` holds after some commit (bounded by `timeoutMs`, generous for a
   * loaded machine: it only bounds how long a real failure takes to report).
   */
  async until(pred: () => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for sink state (ops so far: ${this.ops().slice(-8).join(', ')}; clusters: ${[...this.clusters.keys()].join(', ')})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
