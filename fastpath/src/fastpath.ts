/**
 * The two implementations of FastPath: BpfFastPath (the helper process holding the
 * programs, fed from endpoint diffs) and NoopFastPath (same interface, says why).
 */
import { existsSync } from 'node:fs';
import type { EndpointDiff } from '../../config/src/index.js';
import {
  CFG_F_CONN_EVENTS, CFG_F_EVENTS, CFG_F_FIB, CFG_F_INTERCEPT, CFG_F_OBSERVE, CFG_F_SOCKMAP, COUNTERS, EV_FLOW_NEW,
  decodeConnEvent, decodeDestKey, decodeRuntime, type RuntimeState, decodeDestStats, decodeEvent, decodeFlow, decodeLbStats, decodeSockAddr, encodeConfig,
  encodeFlowKey, encodePortKey, encodeSockAddr, encodeU32, parseDump, type FlowEvent, type FlowKey, type FlowValue,
} from './abi.js';
import { FlowObserver, type FlowRecord, type Resolver } from './observe.js';
import { FlowLog } from '../../telemetry/src/index.js';
import { daemonPath, ensureBuilt } from './build.js';
import type { FastPathConfig } from './config.js';
import { Daemon } from './daemon.js';
import { ServiceRegistry, entryCount, type MapOp } from './services.js';

export interface FastPathStatus {
  active: boolean;
  mode: string;
  reason?: string;
  interface?: string;
  programs: string[];
}

export interface FastPath {
  status(): FastPathStatus;
  /** Cheap; no-op for clusters that are not L4 passthrough services. Map writes follow asynchronously. */
  applyEndpointDiff(diff: EndpointDiff): void;
  /** Counters, names like fastpath_rx_packets_total; kernel counters are refreshed every second and by sync(). */
  metrics(): Record<string, number>;
  /** Resolves when every map write so far has reached the kernel, with fresh counters. */
  sync(): Promise<void>;
  /** SO_ORIGINAL_DST equivalent: the destination an intercepted app socket (its local address:port) asked for. */
  originalDestination(appAddress: string, appPort: number): Promise<{ address: string; port: number } | undefined>;
  /**
   * Live flow records of the observed cgroup (observe in the config); undefined when
   * observation is off. Per-connection events flow from the kernel only while someone
   * is subscribed; call the returned function to stop.
   */
  subscribeFlows(fn: (r: FlowRecord) => void): (() => void) | undefined;
  /** Names destinations the endpoint sets do not know (e.g. the routing table's virtual hosts). */
  setResolver(r: Resolver): void;
  /** detaches and removes everything it created */
  close(): Promise<void>;
}

export class NoopFastPath implements FastPath {
  constructor(private readonly reason: string, private readonly iface?: string) {}
  status(): FastPathStatus {
    return { active: false, mode: 'noop', reason: this.reason, ...(this.iface ? { interface: this.iface } : {}), programs: [] };
  }
  applyEndpointDiff(): void {}
  metrics(): Record<string, number> {
    return { fastpath_active: 0 };
  }
  async sync(): Promise<void> {}
  async originalDestination(): Promise<undefined> {
    return undefined;
  }
  subscribeFlows(): undefined {
    return undefined;
  }
  setResolver(): void {}
  async close(): Promise<void> {}
}

const METRICS_INTERVAL_MS = 1000;
const RECENT_EVENTS = 256;

export class BpfFastPath implements FastPath {
  private readonly registry: ServiceRegistry;
  private counters: bigint[] = [];
  private xskCounters: bigint[] = [];
  private flushScheduled = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private mapWrites = 0;
  private eventsSeen = 0;
  /** Most recent flow events, newest last (for `fastpath status` and tests). */
  readonly recentEvents: FlowEvent[] = [];
  private readonly programs: string[] = [];
  private resolver: Resolver | undefined;
  /** connection telemetry (config.observe) */
  readonly observer: FlowObserver | undefined;
  private lbStats: Record<string, number> = {};
  private runtime: RuntimeState | undefined;
  private gcProbes = false;
  private configFlags = 0;
  private flowLog: FlowLog | undefined;
  private connEventsOn = false;

  private constructor(private readonly config: FastPathConfig, readonly daemon: Daemon, private readonly log: (l: string) => void) {
    this.registry = new ServiceRegistry(config.services);
    if (config.observe) {
      this.observer = new FlowObserver(config.observe.workload, (a, p, proto) => this.resolver?.(a, p, proto));
      for (const s of config.services) this.observer.index.addVip(s.cluster, s.address, s.port);
    }
  }

  /** Loads, configures and attaches; throws with a one-line reason if any step fails. */
  static async start(config: FastPathConfig, log: (l: string) => void): Promise<BpfFastPath> {
    let fp: BpfFastPath | undefined;
    const daemon = await Daemon.start({
      binary: daemonPath(),
      launcher: config.launcher,
      onEvent: (hex) => fp?.onEvent(hex),
      onConnEvent: (hex) => fp?.onConnEvent(hex),
      ...(config.runtimeProbes?.logFd !== undefined ? { logFd: config.runtimeProbes.logFd } : {}),
    });
    fp = new BpfFastPath(config, daemon, log);
    try {
      await fp.configure();
    } catch (e) {
      await daemon.close();
      throw e;
    }
    const fl = config.observe?.flowLog;
    if (fl) {
      try {
        fp.flowLog = FlowLog.open(fl.path, fl.format);
        await fp.subscribeFlowsReady(fp.flowLog.write);
      } catch (e) {
        await daemon.close();
        throw e;
      }
    }
    fp.timer = setInterval(() => void fp!.refresh().catch(() => {}), METRICS_INTERVAL_MS);
    fp.timer.unref();
    return fp;
  }

  private async configure(): Promise<void> {
    const c = this.config;
    const ic = c.interception;
    let flags = 0;
    if (c.forward === 'fib') flags |= CFG_F_FIB;
    if (c.flowEvents) flags |= CFG_F_EVENTS;
    if (ic?.connect) flags |= CFG_F_INTERCEPT;
    if (ic?.sockmap) flags |= CFG_F_SOCKMAP;
    if (c.observe) flags |= CFG_F_OBSERVE;
    this.configFlags = flags;
    await this.writeConfig();
    // never intercept the proxy itself (its upstream connections would loop back to it)
    await this.daemon.request(`U proxy_pids ${encodeU32(process.pid).toString('hex')} ${encodeU32(1).toString('hex')}`);
    for (const p of ic?.skipPorts ?? []) await this.daemon.request(`U skip_ports ${encodePortKey(p).toString('hex')} ${encodeU32(1).toString('hex')}`);
    for (const p of ic?.sockmapPorts ?? []) await this.daemon.request(`U sockmap_ports ${encodePortKey(p).toString('hex')} ${encodeU32(1).toString('hex')}`);
    this.send(this.registry.plan());
    await this.sync();

    const xdpMode = c.mode === 'generic' ? 'generic' : 'native';
    if (c.interface) {
      for (const ifname of new Set([c.interface, ...c.returnInterfaces])) {
        await this.daemon.request(`A xdp ${ifname} ${xdpMode}`);
      }
      if (!this.programs.includes('xdp_lb')) this.programs.push('xdp_lb');
      for (const peer of c.redirectPeers) await this.daemon.request(`A peer ${peer} ${xdpMode}`);
      if (c.redirectPeers.length > 0) this.programs.push('xdp_pass');
      if (c.services.some((s) => s.userspace)) {
        if (c.xskQueues === undefined) await this.daemon.request(`A xsk ${c.interface} all`);
        else for (let q = 0; q < c.xskQueues; q++) await this.daemon.request(`A xsk ${c.interface} ${q}`);
        this.programs.push('af_xdp_forwarder');
      }
    }
    if (ic) {
      if (!existsSync(ic.cgroup)) throw new Error(`interception cgroup ${ic.cgroup} does not exist`);
      const what = ic.connect && ic.sockmap ? 'all' : ic.connect ? 'connect' : 'sockmap';
      await this.daemon.request(`A cgroup ${ic.cgroup} ${what}`);
      if (ic.connect) this.programs.push('connect4', 'connect6', 'getsockopt');
      this.programs.push('sockops');
      if (ic.sockmap) this.programs.push('sk_msg');
    }
    const ob = c.observe;
    if (ob) {
      if (!existsSync(ob.cgroup)) throw new Error(`observe cgroup ${ob.cgroup} does not exist`);
      // connect4/6 and sockops are shared with interception; the helper links each to a cgroup once
      await this.daemon.request(`A cgroup ${ob.cgroup} observe`);
      this.programs.push('observe');
    }
    const rp = c.runtimeProbes;
    if (rp) {
      const pid = rp.pid ?? process.pid;
      this.gcProbes = (await this.daemon.request(`A runtime ${pid} ${rp.stallMs} ${rp.logMs}`)).trim() === '1';
      this.programs.push('runtime_loop', ...(this.gcProbes ? ['runtime_gc'] : []));
    }
  }

  private writeConfig(): Promise<string> {
    const ic = this.config.interception;
    const flags = this.configFlags | (this.connEventsOn ? CFG_F_CONN_EVENTS : 0);
    return this.daemon.request(`U config ${encodeU32(0).toString('hex')} ${encodeConfig({
      flags,
      outboundPort: ic?.outboundPort ?? 0,
      outboundAddr4: ic?.outboundAddress ?? '127.0.0.1',
      outboundAddr6: ic?.outboundAddress6 ?? '::1',
    }).toString('hex')}`);
  }

  /**
   * Per-connection events cost a ring-buffer record and a line each: the kernel writes
   * them only while someone reads them (/flows, a flow log). Resolves once the kernel
   * has the new setting.
   */
  private async setConnEvents(on: boolean): Promise<void> {
    if (this.connEventsOn === on || this.closed || !this.daemon.alive) return;
    this.connEventsOn = on;
    await this.writeConfig().catch((e: Error) => this.log(`fastpath: ${e.message}`));
  }

  subscribeFlows(fn: (r: FlowRecord) => void): (() => void) | undefined {
    const ob = this.observer;
    if (!ob || !this.config.observe?.events) return undefined;
    const off = ob.subscribe(fn);
    void this.setConnEvents(true);
    return () => {
      off();
      if (ob.subscriberCount === 0) void this.setConnEvents(false);
    };
  }

  /** Like subscribeFlows, resolving once the kernel emits events (tests, the flow log at start). */
  async subscribeFlowsReady(fn: (r: FlowRecord) => void): Promise<(() => void) | undefined> {
    const off = this.subscribeFlows(fn);
    if (off) await this.writeConfig();
    return off;
  }

  setResolver(r: Resolver): void {
    this.resolver = r;
  }

  private onConnEvent(hex: string): void {
    const ob = this.observer;
    if (!ob || ob.subscriberCount === 0) return;
    try {
      ob.onEvent(decodeConnEvent(Buffer.from(hex, 'hex')));
    } catch (e) {
      this.log(`fastpath: bad connection event: ${(e as Error).message}`);
    }
  }

  /** Ships ops in order (the order is what keeps the kernel's view consistent). */
  private send(ops: readonly MapOp[]): void {
    for (const o of ops) {
      if (o.op === 'U') this.daemon.update(o.map, o.key, o.value);
      else if (o.op === 'D') this.daemon.delete(o.map, o.key);
      else if (o.op === 'Z') this.daemon.fire(`Z ${o.map} ${o.key.toString('hex')}`);
      else this.daemon.updatePacked(o.map, o.entries, o.entries.length / o.count);
    }
    this.mapWrites += entryCount(ops);
  }

  private onEvent(hex: string): void {
    this.eventsSeen++;
    const b = Buffer.from(hex, 'hex');
    if (b.length < 64) return;
    const ev = decodeEvent(b);
    if (ev.type !== EV_FLOW_NEW) return;
    this.recentEvents.push(ev);
    if (this.recentEvents.length > RECENT_EVENTS) this.recentEvents.shift();
  }

  status(): FastPathStatus {
    return {
      active: !this.closed && this.daemon.alive,
      mode: [this.config.interface ? `xdp-${this.config.mode}` : '', this.config.interception ? 'cgroup' : ''].filter(Boolean).join('+') || 'loaded',
      ...(this.closed ? { reason: 'closed' } : !this.daemon.alive ? { reason: 'helper process exited' } : {}),
      ...(this.config.interface ? { interface: this.config.interface } : {}),
      programs: [...this.programs],
    };
  }

  applyEndpointDiff(diff: EndpointDiff): void {
    if (this.closed) return;
    this.observer?.index.apply(diff);
    if (!this.registry.apply(diff)) return;
    // a burst of diffs (one EDS push) costs one table rebuild per service
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (!this.closed && this.daemon.alive) this.send(this.registry.plan());
  }

  metrics(): Record<string, number> {
    const m: Record<string, number> = {};
    COUNTERS.forEach(([, name], i) => { m[name] = Number(this.counters[i] ?? 0n); });
    if (this.programs.includes('af_xdp_forwarder')) {
      m.fastpath_xsk_rx_packets_total = Number(this.xskCounters[0] ?? 0n);
      m.fastpath_xsk_tx_packets_total = Number(this.xskCounters[1] ?? 0n);
      m['fastpath_xsk_drops_total{reason="unparsed"}'] = Number(this.xskCounters[2] ?? 0n);
      m['fastpath_xsk_drops_total{reason="no_backend"}'] = Number(this.xskCounters[3] ?? 0n);
    }
    m.fastpath_active = this.status().active ? 1 : 0;
    m.fastpath_services = this.config.services.length;
    m.fastpath_backends = this.registry.backendCount;
    m.fastpath_map_writes_total = this.mapWrites;
    m.fastpath_map_errors_total = this.daemon.errors;
    m.fastpath_events_total = this.eventsSeen;
    Object.assign(m, this.lbStats);
    if (this.observer) Object.assign(m, this.observer.metrics());
    if (this.runtime) Object.assign(m, runtimeMetrics(this.runtime, this.gcProbes));
    if (this.flowLog) {
      m.fastpath_flow_log_written_total = this.flowLog.stats.written;
      m.fastpath_flow_log_dropped_total = this.flowLog.stats.dropped;
    }
    return m;
  }

  private async refresh(): Promise<void> {
    if (!this.daemon.alive) return;
    this.counters = await this.daemon.counters();
    if (this.observer) {
      const rows = parseDump(await this.daemon.request('M dest_stats'));
      this.observer.updateDestStats(rows.map((r) => ({ key: r.key.toString('hex'), dest: decodeDestKey(r.key), stats: decodeDestStats(r.value) })));
    }
    if (this.config.services.length > 0) await this.refreshLbStats();
    if (this.config.runtimeProbes) {
      const v = await this.daemon.lookup('rt_state', encodeU32(0));
      if (v) this.runtime = decodeRuntime(v);
    }
    if (this.programs.includes('af_xdp_forwarder')) {
      this.xskCounters = (await this.daemon.request('X')).trim().split(' ').map((n) => BigInt(n));
    }
  }

  /** Per-service and per-backend steering counters, labelled by cluster, VIP and endpoint. */
  private async refreshLbStats(): Promise<void> {
    const m: Record<string, number> = {};
    const q = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    const svcLabel = new Map<number, string>();
    const beLabel = new Map<number, string>();
    for (const st of this.registry.all) {
      const sl = `service="${q(st.spec.cluster)}",vip="${q(`${st.spec.address}:${st.spec.port}/${st.spec.protocol}`)}"`;
      svcLabel.set(st.id, sl);
      for (const [key, id] of st.ids) beLabel.set(id, `${sl},backend="${q(key)}"`);
    }
    for (const { key, value } of parseDump(await this.daemon.request('M svc_stats'))) {
      const l = svcLabel.get(key.readUInt32LE(0));
      if (!l) continue;
      const s = decodeLbStats(value);
      m[`fastpath_service_packets_total{${l}}`] = s.packets;
      m[`fastpath_service_bytes_total{${l}}`] = s.bytes;
      m[`fastpath_service_flows_total{${l}}`] = s.flows;
    }
    for (const { key, value } of parseDump(await this.daemon.request('M be_stats'))) {
      const l = beLabel.get(key.readUInt32LE(0));
      if (!l) continue; // a backend no longer in any table: its series ends
      const s = decodeLbStats(value);
      m[`fastpath_backend_packets_total{${l}}`] = s.packets;
      m[`fastpath_backend_bytes_total{${l}}`] = s.bytes;
      m[`fastpath_backend_flows_total{${l}}`] = s.flows;
    }
    this.lbStats = m;
  }

  async sync(): Promise<void> {
    if (this.flushScheduled) this.flush();
    await this.refresh();
    if (this.daemon.errors > 0 && this.daemon.lastError) this.log(`fastpath: map write failed: ${this.daemon.lastError}`);
  }

  async originalDestination(appAddress: string, appPort: number) {
    if (!this.daemon.alive) return undefined;
    const v = await this.daemon.lookup('orig_dst', encodeSockAddr({ address: appAddress.replace(/^::ffff:/, ''), port: appPort, proto: 'TCP' }));
    if (!v) return undefined;
    const d = decodeSockAddr(v);
    return { address: d.address, port: d.port };
  }

  /** Never intercept this process's connections (pilotfish workers, helpers). */
  async excludeProcess(pid: number): Promise<void> {
    await this.daemon.request(`U proxy_pids ${encodeU32(pid).toString('hex')} ${encodeU32(1).toString('hex')}`);
  }

  /** The flow entry a client 5-tuple is pinned to (tests, diagnostics). */
  async lookupFlow(key: FlowKey): Promise<FlowValue | undefined> {
    const v = await this.daemon.lookup('flows', encodeFlowKey(key));
    return v ? decodeFlow(v) : undefined;
  }

  tableOf(cluster: string): Uint32Array | undefined {
    return this.registry.byCluster.get(cluster)?.[0]?.tableSnapshot();
  }

  backendIdOf(cluster: string, endpointKey: string): number | undefined {
    return this.registry.byCluster.get(cluster)?.[0]?.ids.get(endpointKey);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.daemon.close();
    await this.flowLog?.close();
    this.log('fastpath: detached');
  }
}

/**
 * The watched event loop as metrics. Read by the proxy itself, these are only as fresh as
 * its last scrape; the live "blocked now" signal is the helper's own log line.
 */
export function runtimeMetrics(r: RuntimeState, gc: boolean): Record<string, number> {
  const m: Record<string, number> = {
    fastpath_runtime_loop_iterations_total: r.iterations,
    fastpath_runtime_loop_busy_seconds_total: r.busyNs / 1e9,
    fastpath_runtime_loop_busy_max_seconds: r.busyMaxNs / 1e9,
    fastpath_runtime_loop_stalls_total: r.stalls,
  };
  let cum = 0;
  r.hist.forEach((n, i) => {
    cum += n;
    const le = i === r.hist.length - 1 ? '+Inf' : String((64e-6 * 2 ** i).toPrecision(3));
    m[`fastpath_runtime_loop_busy_seconds_bucket{le="${le}"}`] = cum;
  });
  if (gc) {
    m.fastpath_runtime_gc_total = r.gcs;
    m.fastpath_runtime_gc_seconds_total = r.gcNs / 1e9;
    m.fastpath_runtime_gc_max_seconds = r.gcMaxNs / 1e9;
  }
  return m;
}

/** Why BPF cannot run here, or undefined when it is worth trying. */
export function preflight(config: FastPathConfig | undefined): string | undefined {
  if (!config) return 'no pilotfish.fastpath bootstrap extension';
  if (config.mode === 'off') return 'disabled by config (mode: off)';
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0 && !config.launcher) {
    return 'needs root (CAP_BPF + CAP_NET_ADMIN) to load BPF programs';
  }
  if (!config.interface && !config.interception && !config.observe && !config.runtimeProbes) return 'nothing to do: no interface, interception, observe or runtime_probes configured';
  return undefined;
}

export async function startFastPath(config: FastPathConfig | undefined, log: (line: string) => void): Promise<FastPath> {
  const noop = (reason: string): FastPath => {
    log(`fastpath: inactive: ${reason}`);
    return new NoopFastPath(reason, config?.interface);
  };
  const why = preflight(config);
  if (why) return noop(why);
  const built = await ensureBuilt();
  if (!built.ok) return noop(built.reason);
  try {
    const fp = await BpfFastPath.start(config!, log);
    const st = fp.status();
    log(`fastpath: active: ${st.mode}${st.interface ? ` on ${st.interface}` : ''}, ${config!.services.length} service(s), programs ${st.programs.join(',')}`);
    return fp;
  } catch (e) {
    return noop(`BPF unavailable: ${(e as Error).message}`);
  }
}
