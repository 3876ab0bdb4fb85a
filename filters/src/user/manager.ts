import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { TypedExtension } from '../../../config/src/index.js';
import { Diagnostics, type Problem, type Validation } from '../../../config/src/index.js';
import type { HeaderMap, LocalReply, RequestHeadersView, ResponseHeadersView, StreamInfo } from '../api.js';
import { FilterStats, type FilterCounters } from '../stats.js';
import { systemClock, type Clock, type RandomSource } from '../api.js';
import { decodeUserFilterSpec, type UserFilterSpec } from './config.js';
import { Sandbox, SandboxError, type LoadInfo } from './sandbox.js';

/**
 * Hot-loaded user filters, by filter name. Each name holds several live versions:
 *
 *   fetched -> verified -> loading -> self_testing -> active | canary | standby -> draining -> released
 *        \-> rejected (reason = NACK text)
 * A rollback (an event, see describe().events) takes the failing version out of rotation:
 * it drains like any retired version.
 *
 * `active` serves by default; a `canary` takes a share of requests; `standby` versions
 * (earlier good ones, up to keep_versions) serve routes that pin them and are the
 * rollback targets. A request pins the version it started with until streamComplete;
 * a retired version drains, then its worker is terminated and nothing refers to it.
 */

export type VersionState =
  | 'loading' | 'self_testing' | 'active' | 'canary' | 'standby'
  | 'draining' | 'released' | 'rejected';

export interface AppliedVersion {
  readonly name: string;
  readonly version: string;
  readonly state: VersionState;
}

const MAX_EVENTS = 32;

export class LoadedVersion {
  state: VersionState = 'loading';
  inflight = 0;
  calls = 0;
  failures = 0;
  loadedAt = 0;
  info: LoadInfo | undefined;

  constructor(readonly spec: UserFilterSpec, readonly sandbox: Sandbox) {}

  get usable(): boolean {
    return this.state === 'active' || this.state === 'canary' || this.state === 'standby' || this.state === 'draining';
  }

  describe(): Record<string, unknown> {
    return {
      version: this.spec.version,
      sha256: this.spec.sha256,
      origin: this.spec.origin,
      state: this.state,
      in_flight: this.inflight,
      calls: this.calls,
      failures: this.failures,
      timeouts: this.sandbox.timeouts,
      sandbox_restarts: this.sandbox.crashes,
      loaded_at: this.loadedAt === 0 ? undefined : new Date(this.loadedAt).toISOString(),
      failure_policy: this.spec.failurePolicy,
      time_budget_ms: this.spec.timeBudgetMs,
    };
  }
}

/** A request's hold on the version it started with (released once). */
export interface Pin {
  version: LoadedVersion | undefined;
}

interface Event {
  readonly at: string;
  readonly version: string;
  readonly event: string;
  readonly reason?: string;
}

/** All versions of one user filter name. */
export class UserFilterSlot {
  readonly versions = new Map<string, LoadedVersion>();
  active: LoadedVersion | undefined;
  canary: { readonly version: LoadedVersion; readonly fraction: number } | undefined;
  /** Good versions, most recent first (active or canary's base first). */
  private good: LoadedVersion[] = [];
  private readonly events: Event[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly loading = new Map<string, Promise<Validation<AppliedVersion>>>();
  readonly counters: FilterCounters;
  /** Backstop for a proxy that forgets streamComplete: unpin when the StreamInfo is collected. */
  private readonly finalizer = new FinalizationRegistry<Pin>((pin) => this.unpinToken(pin));
  /** Last spec applied, for failure policy before any version is loaded. */
  lastSpec: UserFilterSpec | undefined;
  /**
   * Versions rolled back automatically ("version@sha256"). A chain rebuilt from unchanged
   * config must not bring one back; only an explicit apply() does.
   */
  readonly rolledBack = new Set<string>();

  constructor(readonly name: string, private readonly manager: UserFilterManager) {
    this.counters = manager.stats.countersFor(name);
  }

  // ------------------------------------------------------------ request path

  /** The version a new request should use. */
  pick(pinned: string | undefined): LoadedVersion | undefined {
    if (pinned !== undefined) {
      const v = this.versions.get(pinned);
      if (v !== undefined && (v.state === 'active' || v.state === 'canary' || v.state === 'standby')) return v;
      this.counters.inc('route_version_missing');
    }
    const c = this.canary;
    if (c !== undefined && this.manager.random() < c.fraction) return c.version;
    return this.active;
  }

  /** Holds `v` for the request `info` until unpin; the caller keeps the pin in its stream slot. */
  pin(info: StreamInfo, v: LoadedVersion): Pin {
    const pin: Pin = { version: v };
    v.inflight++;
    this.finalizer.register(info, pin, pin);
    return pin;
  }

  unpin(pin: Pin): void {
    this.finalizer.unregister(pin);
    this.unpinToken(pin);
  }

  private unpinToken(pin: Pin): void {
    const v = pin.version;
    if (v === undefined) return;
    pin.version = undefined;
    v.inflight--;
    if (v.inflight === 0 && v.state === 'draining') this.release(v);
  }

  async run(v: LoadedVersion, phase: 'req', view: RequestHeadersView, info: StreamInfo): Promise<LocalReply | undefined>;
  async run(v: LoadedVersion, phase: 'res', view: ResponseHeadersView, info: StreamInfo): Promise<LocalReply | undefined>;
  async run(
    v: LoadedVersion, phase: 'req' | 'res', view: RequestHeadersView | ResponseHeadersView, info: StreamInfo,
  ): Promise<LocalReply | undefined> {
    v.calls++;
    const ctx = {
      requestId: info.requestId,
      routeName: info.routeName,
      virtualHostName: info.virtualHostName,
      clusterName: info.clusterName,
      peerIdentity: info.peerIdentity,
      downstreamAddress: info.downstreamAddress,
      filterVersion: v.spec.version,
    };
    try {
      const out = await v.sandbox.call(phase, view, ctx);
      applyView(phase, view, out.view);
      return toLocalReply(out.reply, this.name);
    } catch (err) {
      this.failed(v, err instanceof Error ? err.message : String(err), err);
      throw err;
    }
  }

  private failed(v: LoadedVersion, reason: string, err: unknown): void {
    v.failures++;
    if (err instanceof SandboxError && err.code === 'timeout') this.counters.inc('timeouts');
    const limit = v.spec.rollbackAfterFailures;
    if (limit > 0 && v.failures >= limit && (v.state === 'active' || v.state === 'canary')) {
      this.rollback(v, `${v.failures} runtime failures (last: ${reason})`);
    }
  }

  // ------------------------------------------------------------ lifecycle

  /** Loads, self-tests and activates `spec`; the current version keeps serving meanwhile. */
  apply(spec: UserFilterSpec, diag: Diagnostics, path: string): Promise<Validation<AppliedVersion>> {
    this.lastSpec = spec;
    const existing = this.versions.get(spec.version);
    if (existing !== undefined) {
      if (existing.spec.sha256 !== spec.sha256) {
        diag.error(`${path}.sha256`, `version ${spec.version} is already loaded with sha256 ${existing.spec.sha256}; bump the version`);
        return Promise.resolve(diag.result(this.applied(existing)));
      }
      if (existing.usable) {
        this.promote(existing, spec);
        return Promise.resolve(diag.result(this.applied(existing)));
      }
    }
    const inProgress = this.loading.get(spec.version);
    if (inProgress !== undefined) return inProgress;
    const p = this.queue.then(() => this.load(spec, diag, path));
    this.loading.set(spec.version, p);
    this.queue = p.finally(() => this.loading.delete(spec.version));
    return p;
  }

  private applied(v: LoadedVersion): AppliedVersion {
    return { name: this.name, version: v.spec.version, state: v.state };
  }

  private async load(spec: UserFilterSpec, diag: Diagnostics, path: string): Promise<Validation<AppliedVersion>> {
    const sandbox = new Sandbox({
      source: spec.source,
      filename: spec.origin,
      moduleConfig: spec.moduleConfig,
      timeBudgetMs: spec.timeBudgetMs,
      memoryLimitMb: spec.memoryLimitMb,
      loadTimeoutMs: spec.loadTimeoutMs,
      maxRestarts: 3,
    });
    const v = new LoadedVersion(spec, sandbox);
    sandbox.onLog = (level, line, dropped) => this.manager.onLog?.(this.name, spec.version, level, line, dropped);
    const reject = (reason: string): Validation<AppliedVersion> => {
      sandbox.close();
      v.state = 'rejected';
      this.counters.inc('loads_rejected');
      this.event(spec.version, 'rejected', reason);
      diag.error(path, `user filter ${this.name} version ${spec.version} rejected: ${reason}`);
      return diag.result(this.applied(v));
    };
    try {
      v.info = await sandbox.start();
    } catch (err) {
      return reject((err as Error).message);
    }
    v.state = 'self_testing';
    const probeFailure = await this.selfTest(v);
    if (probeFailure !== undefined) return reject(`self-test failed: ${probeFailure}`);
    v.loadedAt = this.manager.clock.wallMs();
    sandbox.onTrouble = (reason) => this.event(spec.version, 'sandbox_restart', reason);
    // A version whose worker keeps dying cannot serve: roll back now, whatever the threshold.
    sandbox.onDead = () => this.rollback(v, 'sandbox restarts exhausted');
    this.versions.set(spec.version, v);
    this.counters.inc('loads_ok');
    this.promote(v, spec);
    return diag.result(this.applied(v));
  }

  private async selfTest(v: LoadedVersion): Promise<string | undefined> {
    const probes = v.info?.probes ?? [];
    for (let i = 0; i < probes.length; i++) {
      const pr = probes[i] as { request?: Record<string, unknown>; expect?: Record<string, unknown> } | null;
      if (pr === null || typeof pr !== 'object') return `probe[${i}] is not an object`;
      const rq = pr.request ?? {};
      const req: RequestHeadersView = {
        method: typeof rq.method === 'string' ? rq.method : 'GET',
        path: typeof rq.path === 'string' ? rq.path : '/',
        authority: typeof rq.authority === 'string' ? rq.authority : 'probe.local',
        scheme: rq.scheme === 'https' ? 'https' : 'http',
        headers: typeof rq.headers === 'object' && rq.headers !== null ? { ...(rq.headers as HeaderMap) } : {},
      };
      const info: StreamInfo = {
        requestId: `probe-${i}`, startTime: this.manager.clock.monotonicMs(), downstreamAddress: '127.0.0.1', downstreamLocalPort: 0,
        peerIdentity: undefined, routeName: undefined, virtualHostName: undefined, clusterName: undefined,
        perFilterConfig: undefined, metadata: new Map(),
      };
      let reply: LocalReply | undefined;
      try {
        if (!v.info?.hasRequest) return `probe[${i}]: module has no onRequest`;
        const out = await v.sandbox.call('req', req, { requestId: info.requestId, filterVersion: v.spec.version, probe: true });
        applyView('req', req, out.view);
        reply = toLocalReply(out.reply, this.name);
      } catch (err) {
        return `probe[${i}]: ${(err as Error).message}`;
      }
      const ex = pr.expect ?? {};
      const wantStatus = typeof ex.status === 'number' ? ex.status : undefined;
      if (wantStatus !== undefined && reply?.status !== wantStatus) {
        return `probe[${i}]: expected status ${wantStatus}, got ${reply === undefined ? 'continue' : reply.status}`;
      }
      if (wantStatus === undefined && reply !== undefined) return `probe[${i}]: expected continue, got status ${reply.status}`;
      const wantHeaders = typeof ex.headers === 'object' && ex.headers !== null ? ex.headers as Record<string, unknown> : {};
      for (const [k, want] of Object.entries(wantHeaders)) {
        const got = req.headers[k.toLowerCase()];
        if ((want ?? undefined) !== (got ?? undefined)) {
          return `probe[${i}]: expected header ${k}=${JSON.stringify(want)}, got ${JSON.stringify(got)}`;
        }
      }
    }
    return undefined;
  }

  /** Makes `v` the default (or the canary, if the spec asks for a share). */
  private promote(v: LoadedVersion, spec: UserFilterSpec): void {
    const pct = spec.canaryPercent;
    if (pct !== undefined && pct < 100 && this.active !== undefined && this.active !== v) {
      const old = this.canary?.version;
      if (old !== undefined && old !== v) this.demote(old);
      this.canary = { version: v, fraction: pct / 100 };
      v.state = 'canary';
      this.event(v.spec.version, 'canary', `${pct}% of requests`);
      return;
    }
    if (this.canary?.version === v) this.canary = undefined;
    else if (this.canary !== undefined) {
      this.demote(this.canary.version);
      this.canary = undefined;
    }
    if (this.active === v) return;
    if (this.active !== undefined) this.active.state = 'standby';
    this.active = v;
    v.state = 'active';
    this.good = [v, ...this.good.filter((g) => g !== v)];
    this.event(v.spec.version, 'active');
    this.trim(spec.keepVersions);
  }

  private demote(v: LoadedVersion): void {
    v.state = 'standby';
    if (!this.good.includes(v)) this.good.push(v);
  }

  /** Keeps the `keep` most recent good versions loaded; older ones drain. */
  private trim(keep: number): void {
    const extra = this.good.slice(keep);
    this.good = this.good.slice(0, keep);
    for (const v of extra) if (v !== this.active && v !== this.canary?.version) this.retire(v);
  }

  /** Rolls `v` back to the most recent good version before it. */
  rollback(v: LoadedVersion, reason: string): boolean {
    if (this.canary?.version === v) {
      this.canary = undefined;
      this.counters.inc('rollbacks');
      this.remember(v);
      this.event(v.spec.version, 'rolled_back', reason);
      this.good = this.good.filter((g) => g !== v);
      this.retire(v);
      return true;
    }
    if (this.active !== v) return false;
    const target = this.good.find((g) => g !== v && g.state === 'standby' && g.sandbox.alive);
    if (target === undefined) {
      if (v.failures === v.spec.rollbackAfterFailures) this.event(v.spec.version, 'rollback_unavailable', reason);
      return false;
    }
    this.active = target;
    target.state = 'active';
    this.good = this.good.filter((g) => g !== v);
    this.counters.inc('rollbacks');
    this.remember(v);
    this.event(v.spec.version, 'rolled_back', `${reason}; now serving ${target.spec.version}`);
    this.retire(v);
    return true;
  }

  private remember(v: LoadedVersion): void {
    this.rolledBack.add(`${v.spec.version}@${v.spec.sha256}`);
    if (this.rolledBack.size > 32) this.rolledBack.delete(this.rolledBack.values().next().value!);
  }

  /** Out of rotation: released now, or when its last pinned request completes. */
  private retire(v: LoadedVersion): void {
    if (v.inflight === 0) this.release(v);
    else v.state = 'draining';
  }

  private release(v: LoadedVersion): void {
    v.state = 'released';
    v.sandbox.close();
    if (this.versions.get(v.spec.version) === v) this.versions.delete(v.spec.version);
    this.good = this.good.filter((g) => g !== v);
    this.event(v.spec.version, 'released');
  }

  private event(version: string, event: string, reason?: string): void {
    this.events.push({ at: new Date().toISOString(), version, event, ...(reason === undefined ? {} : { reason }) });
    if (this.events.length > MAX_EVENTS) this.events.shift();
    this.manager.onEvent?.(this.name, version, event, reason);
  }

  close(): void {
    for (const v of [...this.versions.values()]) {
      v.state = 'released';
      v.sandbox.close();
    }
    this.versions.clear();
    this.good = [];
    this.active = undefined;
    this.canary = undefined;
  }

  describe(): Record<string, unknown> {
    return {
      name: this.name,
      active_version: this.active?.spec.version,
      canary: this.canary && { version: this.canary.version.spec.version, percent: this.canary.fraction * 100 },
      versions: [...this.versions.values()].map((v) => v.describe()),
      events: [...this.events],
    };
  }
}

function applyView(phase: 'req' | 'res', view: RequestHeadersView | ResponseHeadersView, out: unknown): void {
  if (typeof out !== 'object' || out === null) return;
  const o = out as Record<string, unknown>;
  if (phase === 'req') {
    const req = view as RequestHeadersView;
    if (typeof o.path === 'string' && o.path.startsWith('/')) req.path = o.path;
    if (typeof o.authority === 'string' && o.authority !== '') req.authority = o.authority;
  }
  const h = o.headers;
  if (typeof h !== 'object' || h === null) return;
  const next = h as Record<string, unknown>;
  const headers = view.headers;
  for (const k of Object.keys(headers)) if (!(k in next)) delete headers[k];
  for (const [k0, val] of Object.entries(next)) {
    const k = k0.toLowerCase();
    if (typeof val === 'string') headers[k] = val;
    else if (Array.isArray(val)) headers[k] = val.map(String);
    else if (typeof val === 'number') headers[k] = String(val);
    else delete headers[k];
  }
}

function toLocalReply(r: unknown, name: string): LocalReply | undefined {
  if (r === null || r === undefined) return undefined;
  if (typeof r !== 'object') throw new Error(`user filter ${name} returned ${typeof r}, expected a reply object or nothing`);
  const o = r as Record<string, unknown>;
  const status = o.status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw new Error(`user filter ${name} returned a reply with invalid status ${JSON.stringify(status)}`);
  }
  const reply: LocalReply = { status, details: typeof o.details === 'string' ? o.details : `user_filter{${name}}` };
  if (typeof o.body === 'string') reply.body = o.body;
  if (typeof o.headers === 'object' && o.headers !== null) {
    const hs: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.headers as Record<string, unknown>)) if (typeof v === 'string') hs[k.toLowerCase()] = v;
    reply.headers = hs;
  }
  return reply;
}

/**
 * Owns every user filter name and version. The proxy (ECDS, admin endpoint, or a chain
 * build) applies versions by name; the answer is a Validation whose errors become NACK
 * text while the previous version keeps serving.
 */
export interface UserFilterManagerOptions {
  readonly stats?: FilterStats;
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

export class UserFilterManager {
  /** The owning proxy's filter counters; chains built with this manager count here too. */
  readonly stats: FilterStats;
  readonly clock: Clock;
  /** Canary splits. */
  readonly random: RandomSource;

  constructor(opts: UserFilterManagerOptions = {}) {
    this.stats = opts.stats ?? new FilterStats();
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
  }

  private readonly slots = new Map<string, UserFilterSlot>();
  private readonly watchers = new Map<string, { file: string; base: Readonly<Record<string, unknown>>; stop: () => void }>();
  /** Observability hook: every lifecycle event (active, canary, rejected, rolled_back, released...). */
  onEvent: ((name: string, version: string, event: string, reason?: string) => void) | undefined;
  /** A module's console output (level: log, info, warn, error, debug), rate-limited per version; `dropped` lines were suppressed before this one. */
  onLog: ((name: string, version: string, level: string, line: string, dropped: number) => void) | undefined;

  slot(name: string): UserFilterSlot {
    let s = this.slots.get(name);
    if (s === undefined) {
      s = new UserFilterSlot(name, this);
      this.slots.set(name, s);
    }
    return s;
  }

  /** ECDS-style: apply a `pilotfish.filters.http.module` config under a filter name. */
  apply(name: string, ext: Pick<TypedExtension, 'config'>, path = name): Promise<Validation<AppliedVersion>> {
    const diag = new Diagnostics();
    const spec = decodeUserFilterSpec(ext.config, diag, path);
    if (spec === undefined) {
      this.stats.countersFor(name).inc('loads_rejected');
      return Promise.resolve(diag.result({ name, version: '', state: 'rejected' as VersionState }));
    }
    return this.slot(name).apply(spec, diag, path);
  }

  /** Used by chain builds: config already verified; returns the problems of the async part. */
  ensure(name: string, spec: UserFilterSpec, path: string): Promise<readonly Problem[]> {
    const diag = new Diagnostics();
    const slot = this.slot(name);
    if (slot.rolledBack.has(`${spec.version}@${spec.sha256}`) && slot.active !== undefined) {
      // Sticky rollback: the config still names the bad version; keep serving the good one.
      return Promise.resolve([]);
    }
    return slot.apply(spec, diag, path).then((r) => (r.ok ? [] : r.errors));
  }

  /**
   * Hot swap by file: re-applies `name` whenever its manifest changes (polled stat, so an
   * atomic rename is seen). A manifest that does not verify is rejected like any bad
   * version: logged as an event, the current version keeps serving.
   */
  watchManifest(name: string, file: string, base: Readonly<Record<string, unknown>>, path: string, intervalMs = 100): void {
    const cur = this.watchers.get(name);
    if (cur !== undefined && cur.file === file) {
      cur.base = base;
      return;
    }
    cur?.stop();
    const entry = {
      file,
      base,
      stop: () => unwatchFile(file, onChange),
    };
    const onChange = (now: Stats, prev: Stats): void => {
      if (now.mtimeMs === prev.mtimeMs && now.ino === prev.ino && now.size === prev.size) return;
      if (now.nlink === 0) return; // removed: keep serving what we have
      const diag = new Diagnostics();
      const spec = decodeUserFilterSpec(entry.base, diag, path);
      if (spec === undefined) {
        this.stats.countersFor(name).inc('loads_rejected');
        this.onEvent?.(name, '', 'manifest_rejected', diag.errors.map((e) => `${e.path}: ${e.message}`).join('; '));
        return;
      }
      void this.slot(name).apply(spec, diag, path);
    };
    watchFile(file, { interval: intervalMs, persistent: false }, onChange);
    this.watchers.set(name, entry);
  }

  /** Operator action: go back to the previous good version now. */
  rollback(name: string, reason = 'operator request'): boolean {
    const s = this.slots.get(name);
    return s?.active !== undefined ? s.rollback(s.active, reason) : false;
  }

  /** Unloads every version of `name` (a removed ECDS resource). */
  remove(name: string): void {
    this.watchers.get(name)?.stop();
    this.watchers.delete(name);
    this.slots.get(name)?.close();
    this.slots.delete(name);
  }

  describe(): unknown[] {
    return [...this.slots.values()].map((s) => s.describe());
  }

  /** Terminates every worker (shutdown, tests). */
  close(): void {
    for (const w of this.watchers.values()) w.stop();
    this.watchers.clear();
    for (const s of this.slots.values()) s.close();
    this.slots.clear();
  }
}
