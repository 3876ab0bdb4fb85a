/**
 * The `pilotfish.fastpath` bootstrap extension (a TypedStruct; we get its `value`):
 *
 *   interface: eth0               ingress interface, where xdp_lb attaches
 *   return_interfaces: [eth1]     more interfaces for xdp_lb (backend replies arrive there)
 *   redirect_peers: [veth-b]      veth devices in this netns that need xdp_pass to accept redirects
 *   mode: native | generic | off  XDP attach mode (default native)
 *   forward: fib | bounce         FIB lookup + redirect, or one-arm XDP_TX back to the sender
 *   flow_events: true             ring buffer of new-flow events
 *   xsk_queues: 2                 rx queues 0..n-1 served by the AF_XDP forwarder (default: all of them)
 *   services:                     L4 passthrough services steered in the kernel
 *     - { cluster: c, address: 198.18.0.10, port: 80, protocol: TCP, userspace: false,
 *         maglev_table_size: 65537 }
 *   interception:                 sidecar mode, no iptables
 *     { cgroup: /sys/fs/cgroup/unified/app, outbound_port: 15001,
 *       outbound_address: 127.0.0.1, outbound_address6: "::1",
 *       skip_ports: [22], sockmap_ports: [15001], connect: true, sockmap: true }
 *   observe:                      connection telemetry of the pod, from the kernel (off when absent)
 *     { cgroup: /sys/fs/cgroup/unified/pod,   cgroup v2 dir holding the workload (and, ideally, pilotfish)
 *       workload: reviews-v1,                 label on metrics and flow records (default: the cgroup's basename)
 *       events: true,                         per-connection events (/flows, flow_log); false: metrics only
 *       flow_log: { path: /dev/stdout, format: "..." } }   flow records, Envoy's format language
 *   runtime_probes:               pilotfish's own event loop and GC seen from outside (off when absent)
 *     { stall_ms: 200,            an iteration busier than this counts as a stall
 *       log_ms: 2000 }            the helper logs (itself, on pilotfish's stderr) a loop blocked this long
 */
import { isIP } from 'node:net';
import type { Diagnostics, TypedExtension } from '../../config/src/index.js';
import { isPrime } from './maglev.js';
import { MAGLEV_MAX, MAX_SERVICES } from './abi.js';
import { parseFlowFormat } from '../../telemetry/src/index.js';

export const FASTPATH_TYPE = 'pilotfish.fastpath';

export interface FastPathService {
  readonly cluster: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP';
  /** Send this service's packets to the AF_XDP forwarder instead of NATing in XDP. */
  readonly userspace: boolean;
  readonly maglevTableSize: number;
}

export interface FastPathInterception {
  readonly cgroup: string;
  readonly outboundPort: number;
  readonly outboundAddress: string;
  readonly outboundAddress6: string;
  readonly skipPorts: readonly number[];
  readonly sockmapPorts: readonly number[];
  readonly connect: boolean;
  readonly sockmap: boolean;
}

export interface FastPathObserve {
  readonly cgroup: string;
  readonly workload: string;
  readonly events: boolean;
  readonly flowLog?: { readonly path: string; readonly format?: string };
}

export interface FastPathRuntimeProbes {
  readonly stallMs: number;
  readonly logMs: number;
  /** Not from YAML: the process to watch (default: this one). */
  readonly pid?: number;
  /** Not from YAML: where the helper writes its stall lines (default: this process's stderr). */
  readonly logFd?: number;
}

export interface FastPathConfig {
  readonly interface?: string;
  readonly returnInterfaces: readonly string[];
  readonly redirectPeers: readonly string[];
  readonly mode: 'native' | 'generic' | 'off';
  readonly forward: 'fib' | 'bounce';
  readonly flowEvents: boolean;
  /** Queues 0..xskQueues-1 of `interface` get an AF_XDP socket when a service is `userspace`; undefined = every rx queue. */
  readonly xskQueues?: number;
  readonly services: readonly FastPathService[];
  readonly interception?: FastPathInterception;
  readonly observe?: FastPathObserve;
  readonly runtimeProbes?: FastPathRuntimeProbes;
  /**
   * Not from YAML: a command prefix for the privileged helper, e.g.
   * ['ip', 'netns', 'exec', 'gw'] in tests; empty means run it directly.
   */
  readonly launcher?: readonly string[];
}

/** Whether a bootstrap extension is ours: by its name or by the TypedStruct's type_url. */
export function isFastPathExtension(ext: TypedExtension): boolean {
  return ext.name === FASTPATH_TYPE || ext.typeUrl === FASTPATH_TYPE || ext.typeUrl.endsWith(`/${FASTPATH_TYPE}`);
}

type Obj = Readonly<Record<string, unknown>>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(diag: Diagnostics, o: Obj, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') {
    diag.error(`${path}.${key}`, 'must be a non-empty string');
    return undefined;
  }
  return v;
}

function bool(diag: Diagnostics, o: Obj, key: string, path: string, dflt: boolean): boolean {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') {
    diag.error(`${path}.${key}`, 'must be a boolean');
    return dflt;
  }
  return v;
}

function port(diag: Diagnostics, v: unknown, path: string): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535) return v;
  diag.error(path, 'must be a port number in [1, 65535]');
  return undefined;
}

function strList(diag: Diagnostics, o: Obj, key: string, path: string): string[] {
  const v = o[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) {
    diag.error(`${path}.${key}`, 'must be a list of names');
    return [];
  }
  return v as string[];
}

function portList(diag: Diagnostics, o: Obj, key: string, path: string): number[] {
  const v = o[key];
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    diag.error(`${path}.${key}`, 'must be a list of ports');
    return [];
  }
  return v.map((p, i) => port(diag, p, `${path}.${key}[${i}]`)).filter((p): p is number => p !== undefined);
}

function oneOf<T extends string>(diag: Diagnostics, o: Obj, key: string, path: string, allowed: readonly T[], dflt: T): T {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    diag.error(`${path}.${key}`, `must be one of ${allowed.join(', ')}`);
    return dflt;
  }
  return v as T;
}

const KNOWN = new Set(['interface', 'return_interfaces', 'redirect_peers', 'mode', 'forward', 'flow_events', 'services', 'interception', 'xsk_queues', 'observe', 'runtime_probes']);

function decodeService(diag: Diagnostics, v: unknown, path: string): FastPathService | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be an object');
    return undefined;
  }
  const before = diag.errors.length;
  const cluster = str(diag, v, 'cluster', path);
  if (cluster === undefined && v.cluster === undefined) diag.error(`${path}.cluster`, 'is required');
  const address = str(diag, v, 'address', path);
  if (address === undefined) {
    if (v.address === undefined) diag.error(`${path}.address`, 'is required');
  } else if (isIP(address) === 0) {
    diag.error(`${path}.address`, `"${address}" is not an IP address literal`);
  }
  const p = port(diag, v.port, `${path}.port`);
  const protocol = oneOf(diag, v, 'protocol', path, ['TCP', 'UDP'] as const, 'TCP');
  const userspace = bool(diag, v, 'userspace', path, false);
  let maglevTableSize = MAGLEV_MAX;
  if (v.maglev_table_size !== undefined) {
    const n = v.maglev_table_size;
    if (typeof n !== 'number' || !isPrime(n) || n > MAGLEV_MAX) {
      diag.error(`${path}.maglev_table_size`, `must be a prime no larger than ${MAGLEV_MAX}`);
    } else {
      maglevTableSize = n;
    }
  }
  if (diag.errors.length > before || cluster === undefined || address === undefined || p === undefined) return undefined;
  return { cluster, address, port: p, protocol, userspace, maglevTableSize };
}

function decodeInterception(diag: Diagnostics, v: unknown, path: string): FastPathInterception | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be an object');
    return undefined;
  }
  const before = diag.errors.length;
  const cgroup = str(diag, v, 'cgroup', path);
  if (v.cgroup === undefined) diag.error(`${path}.cgroup`, 'is required (the cgroup v2 directory of the application)');
  const outboundPort = port(diag, v.outbound_port, `${path}.outbound_port`);
  const outboundAddress = str(diag, v, 'outbound_address', path) ?? '127.0.0.1';
  if (isIP(outboundAddress) !== 4) diag.error(`${path}.outbound_address`, 'must be an IPv4 address');
  const outboundAddress6 = str(diag, v, 'outbound_address6', path) ?? '::1';
  if (isIP(outboundAddress6) !== 6) diag.error(`${path}.outbound_address6`, 'must be an IPv6 address');
  const skipPorts = portList(diag, v, 'skip_ports', path);
  const sockmapPorts = portList(diag, v, 'sockmap_ports', path);
  const connect = bool(diag, v, 'connect', path, true);
  const sockmap = bool(diag, v, 'sockmap', path, true);
  if (diag.errors.length > before || cgroup === undefined || outboundPort === undefined) return undefined;
  return {
    cgroup, outboundPort, outboundAddress, outboundAddress6, skipPorts,
    sockmapPorts: sockmapPorts.length > 0 ? sockmapPorts : [outboundPort],
    connect, sockmap,
  };
}

const OBSERVE_KNOWN = new Set(['cgroup', 'workload', 'events', 'flow_log']);

function decodeObserve(diag: Diagnostics, v: unknown, path: string): FastPathObserve | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be an object');
    return undefined;
  }
  const before = diag.errors.length;
  for (const k of Object.keys(v)) if (!OBSERVE_KNOWN.has(k)) diag.warn(`${path}.${k}`, 'unknown field, ignored');
  const cgroup = str(diag, v, 'cgroup', path);
  if (v.cgroup === undefined) diag.error(`${path}.cgroup`, 'is required (the cgroup v2 directory of the pod)');
  const workload = str(diag, v, 'workload', path);
  if (workload !== undefined && !/^[A-Za-z0-9_.:\-/]{1,128}$/.test(workload)) {
    diag.error(`${path}.workload`, 'must be 1-128 characters of [A-Za-z0-9_.:/-]');
  }
  const events = bool(diag, v, 'events', path, true);
  let flowLog: FastPathObserve['flowLog'];
  if (v.flow_log !== undefined) {
    const fl = v.flow_log;
    if (!isObj(fl)) diag.error(`${path}.flow_log`, 'must be an object');
    else {
      const p = str(diag, fl, 'path', `${path}.flow_log`);
      if (fl.path === undefined) diag.error(`${path}.flow_log.path`, 'is required');
      const format = str(diag, fl, 'format', `${path}.flow_log`);
      if (format !== undefined) {
        const f = parseFlowFormat(format);
        if (!f.ok) diag.error(`${path}.flow_log.format`, f.error);
      }
      if (p !== undefined) flowLog = format === undefined ? { path: p } : { path: p, format };
      if (!events) diag.error(`${path}.flow_log`, 'needs events: true (flow records are per-connection events)');
    }
  }
  if (diag.errors.length > before || cgroup === undefined) return undefined;
  const base = cgroup.replace(/\/+$/, '').split('/').pop() || 'pod';
  return { cgroup, workload: workload ?? base, events, ...(flowLog ? { flowLog } : {}) };
}

/**
 * Decodes the extension's TypedStruct value. Problems go to `diag` under `path`
 * (e.g. `bootstrap_extensions[0].typed_config.value`); returns undefined when any
 * error was found, so a half-valid fast path is never started.
 */
export function decodeFastPathConfig(ext: TypedExtension, diag: Diagnostics, path: string): FastPathConfig | undefined {
  const before = diag.errors.length;
  const c = ext.config;
  if (!isObj(c)) {
    diag.error(path, 'must be an object');
    return undefined;
  }
  for (const k of Object.keys(c)) if (!KNOWN.has(k)) diag.warn(`${path}.${k}`, 'unknown field, ignored');
  const iface = str(diag, c, 'interface', path);
  const mode = oneOf(diag, c, 'mode', path, ['native', 'generic', 'off'] as const, 'native');
  const forward = oneOf(diag, c, 'forward', path, ['fib', 'bounce'] as const, 'fib');
  const flowEvents = bool(diag, c, 'flow_events', path, true);
  const returnInterfaces = strList(diag, c, 'return_interfaces', path);
  const redirectPeers = strList(diag, c, 'redirect_peers', path);

  const services: FastPathService[] = [];
  if (c.services !== undefined) {
    if (!Array.isArray(c.services)) diag.error(`${path}.services`, 'must be a list');
    else c.services.forEach((s, i) => {
      const svc = decodeService(diag, s, `${path}.services[${i}]`);
      if (svc) services.push(svc);
    });
  }
  if (services.length > MAX_SERVICES) diag.error(`${path}.services`, `at most ${MAX_SERVICES} services`);
  const seen = new Set<string>();
  services.forEach((s, i) => {
    const id = `${s.address}|${s.port}|${s.protocol}`;
    if (seen.has(id)) diag.error(`${path}.services[${i}]`, `duplicate service ${s.address}:${s.port}/${s.protocol}`);
    seen.add(id);
  });
  if (services.length > 0 && iface === undefined && mode !== 'off') {
    diag.error(`${path}.interface`, 'is required when services are configured');
  }
  let xskQueues: number | undefined;
  if (c.xsk_queues !== undefined) {
    if (typeof c.xsk_queues !== 'number' || !Number.isInteger(c.xsk_queues) || c.xsk_queues < 1 || c.xsk_queues > 8) {
      diag.error(`${path}.xsk_queues`, 'must be an integer in [1, 8]');
    } else {
      xskQueues = c.xsk_queues;
    }
  }
  const interception = c.interception === undefined ? undefined : decodeInterception(diag, c.interception, `${path}.interception`);
  const observe = c.observe === undefined ? undefined : decodeObserve(diag, c.observe, `${path}.observe`);
  let runtimeProbes: FastPathRuntimeProbes | undefined;
  if (c.runtime_probes !== undefined) {
    const r = c.runtime_probes;
    const ms = (k: string, dflt: number): number => {
      const v = isObj(r) ? r[k] : undefined;
      if (v === undefined) return dflt;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 1 || v > 600_000) {
        diag.error(`${path}.runtime_probes.${k}`, 'must be a number of milliseconds in [1, 600000]');
        return dflt;
      }
      return v;
    };
    if (!isObj(r)) diag.error(`${path}.runtime_probes`, 'must be an object');
    else {
      for (const k of Object.keys(r)) if (k !== 'stall_ms' && k !== 'log_ms') diag.warn(`${path}.runtime_probes.${k}`, 'unknown field, ignored');
      runtimeProbes = { stallMs: ms('stall_ms', 200), logMs: ms('log_ms', 2000) };
    }
  }
  if (diag.errors.length > before) return undefined;
  return {
    interface: iface, returnInterfaces, redirectPeers, mode, forward, flowEvents, xskQueues, services, interception,
    ...(observe ? { observe } : {}), ...(runtimeProbes ? { runtimeProbes } : {}),
  };
}
