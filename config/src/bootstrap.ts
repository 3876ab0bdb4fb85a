import { ENUMS } from './enums.js';
import type { Bootstrap, Cluster, DynamicResources, Listener, NodeInfo, OverloadAction, OverloadManagerConfig, RouteConfiguration, TypedExtension } from './model.js';
import { decodeAddress } from './address.js';
import { decodeCluster } from './cluster.js';
import { decodeListener } from './listener.js';
import { ObjectReader } from './reader.js';
import { decodeConfigSource } from './source.js';
import { checkStaticSds } from './sds.js';
import { decodeAny, decodeTypedExtension } from './typed.js';
import type { Diagnostics } from './validation.js';

export function decodeBootstrap(json: unknown, diag: Diagnostics): Bootstrap | undefined {
  const r = ObjectReader.of(json, '', diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const node = decodeNode(r.object('node'));

  let admin: Bootstrap['admin'];
  const ar = r.object('admin');
  if (ar) {
    const addr = ar.object('address');
    if (!addr) diag.error(ar.child('address'), 'is required');
    const address = addr ? decodeAddress(addr, false) : undefined;
    // Accepted without effect (safe): profile_path is where Envoy's /cpuprofiler writes, an
    // endpoint pilotfish's admin does not have; an admin access log to /dev/null (access_log_path,
    // or file loggers in access_log, Istio's shape) is "no admin log", which is what pilotfish
    // does. Any other admin field is reported by finish().
    ar.accept('profile_path');
    if (isDevNullAccessLog(ar.raw['access_log'] ?? ar.raw['accessLog'])) ar.accept('access_log');
    if (ar.raw['access_log_path'] === '/dev/null' || ar.raw['accessLogPath'] === '/dev/null') ar.accept('access_log_path');
    ar.finish();
    if (address) admin = { address };
  }

  const listeners: Listener[] = [];
  const clusters: Cluster[] = [];
  const secrets: TypedExtension[] = [];
  // Every cluster name written down, decoded or not: references to a refused cluster must not
  // be reported again as "unknown" (the refusal is the root cause).
  const listedClusters = new Set<string>();
  const sr = r.object('static_resources');
  if (sr) {
    for (const { value, path } of sr.array('listeners')) {
      const l = decodeListener(value, diag, path);
      if (l) listeners.push(l);
    }
    for (const { value } of sr.array('clusters')) {
      const n = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)['name'] : undefined;
      if (typeof n === 'string') listedClusters.add(n);
    }
    for (const { value, path } of sr.array('clusters')) {
      const c = decodeCluster(value, diag, path);
      if (c) clusters.push(c);
    }
    for (const { value, path } of sr.array('secrets')) {
      // Secrets are decoded by certs/; here they are kept whole, under their name.
      const o = ObjectReader.of(value, path, diag);
      const name = o?.requiredString('name');
      if (o && name) secrets.push({ name, typeUrl: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', config: o.raw as Record<string, unknown> });
    }
    sr.finish();
    // Names as written: an unnamed listener's generated "<address>_<port>" name can only repeat
    // when its address does, which checkUniqueAddresses reports as the root cause.
    checkUnique(sr.array('listeners').map(({ value }) => {
      const n = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)['name'] : undefined;
      return typeof n === 'string' && n !== '' ? n : undefined;
    }), 'static_resources.listeners', 'listener', diag);
    checkUnique(clusters.map((c) => c.name), 'static_resources.clusters', 'cluster', diag);
    checkUniqueAddresses(listeners, diag);
  }

  let dynamicResources: DynamicResources | undefined;
  const dr = r.object('dynamic_resources');
  if (dr) dynamicResources = decodeDynamicResources(dr, listedClusters);
  checkStaticSds(r.raw['static_resources'] ?? r.raw['staticResources'], {
    listedClusters, staticSecrets: new Set(secrets.map((s) => s.name)), adsConfigured: dynamicResources?.adsConfig !== undefined,
  }, diag);

  const bootstrapExtensions: TypedExtension[] = [];
  for (const e of r.objects('bootstrap_extensions')) {
    const ext = decodeTypedExtension(e, true);
    if (ext) bootstrapExtensions.push(ext);
  }
  const om = r.object('overload_manager');
  const overloadManager = om ? decodeOverloadManager(om) : undefined;
  // stats_config, stats_flush_interval, layered_runtime, cluster_manager, watchdogs: not
  // implemented, so finish() reports each one given (one line each, nothing inside them).
  r.finish();

  // Only on an otherwise valid config: a cluster that failed to decode would show up again as "unknown".
  if (!dynamicResources?.cdsConfig && diag.errors.length === before) checkRouteClusters(listeners, clusters, diag);
  if (diag.errors.length > before) return undefined;
  return {
    node, staticResources: { listeners, clusters, secrets }, bootstrapExtensions,
    ...(admin ? { admin } : {}),
    ...(dynamicResources ? { dynamicResources } : {}),
    ...(overloadManager ? { overloadManager } : {}),
  };
}

const MONITOR_GLOBAL_CX = 'envoy.resource_monitors.global_downstream_max_connections';
const MONITOR_HEAP = 'envoy.resource_monitors.fixed_heap';
const MONITOR_LAG = 'pilotfish.resource_monitors.event_loop_lag';
const OVERLOAD_ACTIONS = ['envoy.overload_actions.stop_accepting_requests', 'envoy.overload_actions.stop_accepting_connections', 'envoy.overload_actions.disable_http_keepalive'];

/**
 * overload_manager: resource monitors global_downstream_max_connections, fixed_heap and
 * pilotfish's event_loop_lag (typed_config `max_lag`, a duration); actions
 * stop_accepting_requests, stop_accepting_connections, disable_http_keepalive with
 * threshold triggers (a scaled trigger fires at its scaling_threshold).
 */
function decodeOverloadManager(r: ObjectReader): OverloadManagerConfig {
  const refreshInterval = r.duration('refresh_interval', 1000) ?? 1000;
  let maxActiveDownstreamConnections: number | undefined;
  let maxHeapSizeBytes: number | undefined;
  let maxEventLoopLag: number | undefined;
  const monitors = new Set<string>();
  for (const m of r.objects('resource_monitors')) {
    const name = m.requiredString('name') ?? '';
    const tc = m.get('typed_config');
    const any = tc === undefined ? undefined : decodeAny(tc, m.diag, m.child('typed_config'));
    m.finish();
    const cr = any ? ObjectReader.of(any.config, m.child('typed_config'), m.diag) : undefined;
    if (!cr) {
      m.diag.error(m.child('typed_config'), 'is required');
      continue;
    }
    monitors.add(name);
    if (name === MONITOR_GLOBAL_CX) maxActiveDownstreamConnections = cr.int('max_active_downstream_connections', 0, 1);
    else if (name === MONITOR_HEAP) maxHeapSizeBytes = cr.int('max_heap_size_bytes', 0, 1);
    else if (name === MONITOR_LAG) maxEventLoopLag = cr.duration('max_lag', 100);
    else {
      m.diag.warn(m.child('name'), `resource monitor ${name} is not supported by pilotfish; ignored`);
      cr.accept(...Object.keys(any!.config));
    }
    cr.finish();
  }
  const actions: OverloadAction[] = [];
  for (const a of r.objects('actions')) {
    const name = a.requiredString('name') ?? '';
    if (!OVERLOAD_ACTIONS.includes(name)) a.diag.warn(a.child('name'), `overload action ${name} is not supported by pilotfish; ignored`);
    const triggers: { monitor: string; threshold: number }[] = [];
    for (const tr of a.objects('triggers')) {
      const monitor = tr.requiredString('name') ?? '';
      if (!monitors.has(monitor)) tr.diag.error(tr.child('name'), `names no configured resource monitor`);
      let threshold = 1;
      const th = tr.object('threshold');
      const sc = tr.object('scaled');
      if (th) {
        threshold = th.number('value', 1, 0, 1);
        th.finish();
      } else if (sc) {
        threshold = sc.number('scaling_threshold', 1, 0, 1);
        if (sc.has('saturation_threshold')) {
          sc.accept('saturation_threshold');
          sc.diag.warn(sc.child('saturation_threshold'), 'not supported by pilotfish; ignored (a scaled trigger fires fully at scaling_threshold)');
        }
        sc.finish();
      } else tr.diag.error(tr.path, 'needs threshold or scaled');
      tr.finish();
      triggers.push({ monitor, threshold });
    }
    // Accepted without effect (safe): the supported actions take no config; an unsupported
    // action was reported above, its typed_config with it.
    a.accept('typed_config');
    a.finish();
    if (OVERLOAD_ACTIONS.includes(name)) actions.push({ name, triggers });
  }
  // buffer_factory_config, loadshed_points: reported by finish().
  r.finish();
  return {
    refreshInterval, actions,
    ...(maxActiveDownstreamConnections ? { maxActiveDownstreamConnections } : {}),
    ...(maxHeapSizeBytes ? { maxHeapSizeBytes } : {}),
    ...(maxEventLoopLag ? { maxEventLoopLag } : {}),
  };
}

function decodeNode(r: ObjectReader | undefined): NodeInfo {
  if (!r) return { id: '', cluster: '', metadata: {} };
  const id = r.string('id', '');
  const cluster = r.string('cluster', '');
  const metadata = (r.get('metadata') ?? {}) as Record<string, unknown>;
  const loc = r.object('locality');
  const locality = loc ? { region: loc.string('region', ''), zone: loc.string('zone', ''), subZone: loc.string('sub_zone', '') } : undefined;
  loc?.finish();
  // Accepted without effect (safe): Envoy itself overwrites these with its own build facts
  // before sending the node to the management server; a bootstrap cannot set them.
  r.accept('user_agent_name', 'user_agent_version', 'user_agent_build_version', 'extensions', 'client_features');
  r.finish();
  return { id, cluster, metadata, ...(locality ? { locality } : {}) };
}

function decodeDynamicResources(r: ObjectReader, listedClusters: ReadonlySet<string>): DynamicResources {
  let adsConfig: DynamicResources['adsConfig'];
  const ads = r.object('ads_config');
  if (ads) {
    const apiType = ads.enumOf('api_type', ENUMS['core.ApiConfigSource.ApiType'], 'GRPC');
    let api: 'GRPC' | 'DELTA_GRPC' = 'GRPC';
    if (apiType === 'DELTA_GRPC' || apiType === 'AGGREGATED_DELTA_GRPC') api = 'DELTA_GRPC';
    else if (apiType !== 'GRPC' && apiType !== 'AGGREGATED_GRPC') ads.diag.error(ads.child('api_type'), `${apiType} is not supported; use GRPC or DELTA_GRPC`);
    const tav = ads.enumOf('transport_api_version', ENUMS['core.ApiVersion'], 'V3');
    if (tav === 'V2') ads.diag.error(ads.child('transport_api_version'), 'only V3 is supported');
    const grpcServices: { clusterName: string; timeout?: number; initialMetadata: { key: string; value: string }[] }[] = [];
    for (const g of ads.objects('grpc_services')) {
      const eg = g.object('envoy_grpc');
      if (!eg) {
        if (g.has('google_grpc')) {
          g.accept('google_grpc');
          g.diag.error(g.child('google_grpc'), 'use envoy_grpc with a static cluster');
        } else g.diag.error(g.child('envoy_grpc'), 'is required');
      }
      const clusterName = eg?.requiredString('cluster_name');
      // authority, retry_policy, max_receive_message_length...: reported by finish().
      eg?.finish();
      const timeout = g.duration('timeout');
      const initialMetadata = decodeInitialMetadata(g);
      g.finish();
      if (clusterName) {
        if (!listedClusters.has(clusterName)) {
          g.diag.error(`${eg?.path}.cluster_name`, `"${clusterName}" is not a static cluster; the xDS server must be reachable without xDS`);
        }
        grpcServices.push({ clusterName, initialMetadata, ...(timeout !== undefined ? { timeout } : {}) });
      }
    }
    if (grpcServices.length === 0) ads.diag.error(ads.child('grpc_services'), 'at least one grpc service is required');
    const setNodeOnFirstMessageOnly = ads.bool('set_node_on_first_message_only', false);
    // Accepted without effect (safe): refresh_delay and request_timeout apply to REST polling
    // only, and api_type is GRPC here. rate_limit_settings, config_validators: reported by finish().
    ads.accept('refresh_delay', 'request_timeout');
    ads.finish();
    adsConfig = { apiType: api, transportApiVersion: 'V3', grpcServices, setNodeOnFirstMessageOnly };
  }
  const lds = r.object('lds_config');
  const cds = r.object('cds_config');
  const ldsConfig = lds ? decodeConfigSource(lds) : undefined;
  const cdsConfig = cds ? decodeConfigSource(cds) : undefined;
  if ((ldsConfig || cdsConfig) && !adsConfig) r.diag.error(r.child('ads_config'), 'lds_config/cds_config use ADS, so ads_config is required');
  for (const f of ['lds_resources_locator', 'cds_resources_locator']) {
    if (!r.has(f)) continue;
    r.accept(f);
    // Ignoring a locator would silently run without the listeners/clusters it names.
    r.diag.error(r.child(f), 'xdstp:// resource locators are not supported by pilotfish; use lds_config/cds_config with ads');
  }
  r.finish();
  return { ...(adsConfig ? { adsConfig } : {}), ...(ldsConfig ? { ldsConfig } : {}), ...(cdsConfig ? { cdsConfig } : {}) };
}

/** Admin access logs that all write to /dev/null (Istio's shape): the same as no admin log. */
function isDevNullAccessLog(v: unknown): boolean {
  if (!Array.isArray(v) || v.length === 0) return false;
  return v.every((e) => {
    const tc = e !== null && typeof e === 'object' ? ((e as Record<string, unknown>)['typed_config'] ?? (e as Record<string, unknown>)['typedConfig']) : undefined;
    if (tc === null || typeof tc !== 'object') return false;
    const o = tc as Record<string, unknown>;
    return typeof o['@type'] === 'string' && o['@type'].endsWith('.FileAccessLog') && o['path'] === '/dev/null'
      && Object.keys(e as object).every((k) => k === 'name' || k === 'typed_config' || k === 'typedConfig');
  });
}

/** GrpcService.initial_metadata: HeaderValues sent with every stream (Consul/Istio put tokens here). */
function decodeInitialMetadata(g: ObjectReader): { key: string; value: string }[] {
  const out: { key: string; value: string }[] = [];
  for (const h of g.objects('initial_metadata')) {
    const key = h.requiredString('key');
    const value = h.has('raw_value') ? Buffer.from(h.string('raw_value', ''), 'base64').toString('utf8') : h.string('value', '');
    h.finish();
    if (key === undefined || key === '') continue;
    // gRPC metadata keys are lower-case HTTP/2 header names; "-bin" keys carry base64 binary values.
    if (!/^[0-9a-z_.-]+$/.test(key.toLowerCase()) || key.startsWith(':') || key.toLowerCase().startsWith('grpc-')) {
      h.diag.error(h.child('key'), `"${key}" is not a valid gRPC metadata key`);
      continue;
    }
    if (/[\r\n\0]/.test(value)) {
      h.diag.error(h.child('value'), 'must not contain CR, LF or NUL');
      continue;
    }
    out.push({ key: key.toLowerCase(), value });
  }
  return out;
}

function checkUnique(names: readonly (string | undefined)[], path: string, what: string, diag: Diagnostics): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (n === undefined) return;
    if (seen.has(n)) diag.error(`${path}[${i}].name`, `duplicate ${what} name "${n}"`);
    seen.add(n);
  });
}

function checkUniqueAddresses(listeners: readonly Listener[], diag: Diagnostics): void {
  const seen = new Map<string, string>();
  listeners.forEach((l, i) => {
    if (l.address.port === 0 && !l.address.pipe) return;
    if (!l.bindToPort) return; // not bound: reached only by use_original_dst hand-off
    const key = l.address.pipe ? l.address.pipe.path : `${l.address.address}:${l.address.port}`;
    const prev = seen.get(key);
    if (prev !== undefined) diag.error(`static_resources.listeners[${i}].address`, `${key} is already used by listener "${prev}"`);
    seen.set(key, l.name);
  });
}

/** Like Envoy's validate_clusters (default on for static route tables): a route to an unknown cluster is a config error. */
function checkRouteClusters(listeners: readonly Listener[], clusters: readonly Cluster[], diag: Diagnostics): void {
  const known = new Set(clusters.map((c) => c.name));
  listeners.forEach((l, li) => {
    l.filterChains.forEach((fc, fi) => {
      const base = `static_resources.listeners[${li}].filter_chains[${fi}]`;
      const net = fc.network;
      if (net.kind === 'tcp') {
        const names = net.cluster.kind === 'cluster' ? [net.cluster.name] : net.cluster.kind === 'weighted' ? net.cluster.clusters.map((c) => c.name) : [];
        for (const n of names) if (!known.has(n)) diag.error(`${base}.filters[0].typed_config.cluster`, `unknown cluster "${n}"`);
        return;
      }
      if (net.routeSource.kind !== 'inline') return;
      checkRouteTable(net.routeSource.config, known, `${base}.filters[0].typed_config.route_config`, diag);
    });
  });
}

function checkRouteTable(rc: RouteConfiguration, known: ReadonlySet<string>, path: string, diag: Diagnostics): void {
  rc.virtualHosts.forEach((vh, vi) => {
    vh.routes.forEach((route, ri) => {
      if (route.action.kind !== 'route') return;
      const spec = route.action.cluster;
      const names = spec.kind === 'cluster' ? [spec.name] : spec.kind === 'weighted' ? spec.clusters.map((c) => c.name) : [];
      for (const n of names) {
        if (!known.has(n)) diag.error(`${path}.virtual_hosts[${vi}].routes[${ri}].route`, `unknown cluster "${n}"`);
      }
    });
  });
}

export { decodeAny };
