import type { ProxyServer } from '../server.js';
import { VERSION } from '../version.js';

const T = 'type.googleapis.com/envoy.admin.v3.';

export function renderServerInfo(proxy: ProxyServer, extra: Record<string, unknown>): Record<string, unknown> {
  const uptime = Math.floor((Date.now() - proxy.startTime) / 1000);
  return {
    version: `pilotfish/${VERSION}`,
    state: proxy.serverState,
    hot_restart_version: 'disabled',
    uptime_current_epoch: `${uptime}s`,
    uptime_all_epochs: `${uptime}s`,
    node: proxy.bootstrap.node,
    command_line_options: { concurrency: 1, mode: 'Serve' },
    runtime: { node: process.version, pid: process.pid, rss_bytes: process.memoryUsage.rss() },
    ...extra,
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Envoy's /config_dump shape (BootstrapConfigDump, ListenersConfigDump, ...). Resources
 * are shown in pilotfish's decoded form (the config model), which uses Envoy's field
 * meanings with camelCase names.
 */
export function renderConfigDump(proxy: ProxyServer, extra: unknown[], url: URL): unknown {
  const b = proxy.bootstrap;
  const staticNames = new Set(b.staticResources.clusters.map((c) => c.name));
  const staticListeners = new Set(b.staticResources.listeners.map((l) => l.name));
  const configs: Record<string, unknown>[] = [
    { '@type': T + 'BootstrapConfigDump', bootstrap: { node: b.node, admin: b.admin, dynamic_resources: b.dynamicResources }, last_updated: iso(proxy.startTime) },
    {
      '@type': T + 'ClustersConfigDump',
      version_info: String(proxy.snapshot.version),
      static_clusters: [...proxy.clusterRuntimes()].filter(([n]) => staticNames.has(n)).map(([, c]) => ({ cluster: c.config, last_updated: iso(c.lastUpdated) })),
      dynamic_active_clusters: [...proxy.clusterRuntimes()].filter(([n]) => !staticNames.has(n)).map(([, c]) => ({ cluster: c.config, last_updated: iso(c.lastUpdated) })),
    },
    {
      '@type': T + 'ListenersConfigDump',
      static_listeners: [...proxy.listenerRuntimes()].filter(([n]) => staticListeners.has(n)).map(([, l]) => ({ listener: l.impl.config, last_updated: iso(l.lastUpdated) })),
      dynamic_listeners: [...proxy.listenerRuntimes()].filter(([n]) => !staticListeners.has(n)).map(([name, l]) => ({ name, active_state: { listener: l.impl.config, last_updated: iso(l.lastUpdated) } })),
    },
    {
      '@type': T + 'RoutesConfigDump',
      dynamic_route_configs: [...proxy.routeTableList()].map(([, t]) => ({ route_config: t.config })),
    },
    { '@type': T + 'SecretsConfigDump', dynamic_active_secrets: proxy.secrets.names().map((name) => ({ name, secret: '[redacted]' })) },
  ];
  const all = [...configs, ...(extra as Record<string, unknown>[])];
  const resource = url.searchParams.get('resource');
  if (resource) return { configs: all.filter((c) => Object.hasOwn(c, resource)).map((c) => ({ '@type': c['@type'], [resource]: c[resource] })) };
  return { configs: all };
}

export function renderClusters(proxy: ProxyServer, json: boolean): string | Record<string, unknown> {
  if (json) {
    return {
      cluster_statuses: [...proxy.clusterRuntimes()].map(([name, c]) => ({
        name,
        added_via_api: !proxy.bootstrap.staticResources.clusters.some((s) => s.name === name),
        host_statuses: c.allHosts().map((h) => ({
          address: { socket_address: { address: h.endpoint.address, port_value: h.endpoint.port } },
          health_status: { eds_health_status: h.endpoint.health.toUpperCase(), failed_outlier_check: c.healthFlags(h).failedOutlierCheck, failed_active_health_check: c.healthFlags(h).failedActiveHc },
          weight: h.endpoint.weight,
          priority: h.endpoint.priority,
          locality: h.endpoint.locality,
          stats: [{ name: 'rq_active', value: h.activeRequests }],
        })),
      })),
    };
  }
  const lines: string[] = [];
  for (const [name, c] of proxy.clusterRuntimes()) {
    lines.push(`${name}::observability_name::${name}`);
    for (const t of c.config.circuitBreakers) {
      const p = t.priority.toLowerCase();
      lines.push(`${name}::${p}_priority::max_connections::${t.maxConnections}`, `${name}::${p}_priority::max_pending_requests::${t.maxPendingRequests}`,
        `${name}::${p}_priority::max_requests::${t.maxRequests}`, `${name}::${p}_priority::max_retries::${t.maxRetries}`);
    }
    for (const h of c.allHosts()) {
      const k = `${name}::${h.key}`;
      const hf = c.healthFlags(h);
      const parts = [hf.failedActiveHc ? '/failed_active_hc' : '', hf.failedOutlierCheck ? '/failed_outlier_check' : '', h.endpoint.health === 'healthy' ? '' : `/eds_${h.endpoint.health}`].filter(Boolean);
      const flags = parts.length === 0 ? 'healthy' : parts.join('');
      lines.push(`${k}::rq_active::${h.activeRequests}`, `${k}::health_flags::${flags}`, `${k}::weight::${h.endpoint.weight}`,
        `${k}::region::${h.endpoint.locality.split('/')[0] ?? ''}`, `${k}::zone::${h.endpoint.locality.split('/')[1] ?? ''}`,
        `${k}::priority::${h.endpoint.priority}`, `${k}::hostname::${h.endpoint.hostname}`);
    }
  }
  return lines.join('\n') + '\n';
}
