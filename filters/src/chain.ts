import { channel } from 'node:diagnostics_channel';
import type { HttpFilterConfig, TypedExtension } from '../../config/src/index.js';
import type { Diagnostics, Problem } from '../../config/src/index.js';
import type {
  DataResult, FilterResult, HttpFilter, HttpFilterChain, LocalReply, RequestHeadersView,
  ResponseHeadersView, RouterOptions, StreamInfo,
} from './api.js';
import { FILTER_DISABLED, systemClock, type Clock, type FilterHost, type RandomSource } from './api.js';
import { factoryFor, messageName, perRouteFactoryFor, type FactoryContext } from './registry.js';
import { FilterStats, type FilterCounters } from './stats.js';
import { StreamSlot } from './stream-slot.js';
import { UserFilterManager } from './user/manager.js';
import { ROUTER_TYPE_URL, decodeRouterOptions, DEFAULT_ROUTER_OPTIONS } from './builtin/router.js';
import { isObj, raw, type Obj } from './util/fields.js';

/** Published when a filter throws or rejects; free when nobody subscribes. */
const errorChannel = channel('pilotfish:filters:error');


const FILTER_CONFIG_TYPE = 'envoy.config.route.v3.FilterConfig';

/**
 * What a chain shares with the proxy that builds it. A proxy passes its own user filter
 * manager, whose counters, clock and random source the chain then uses too; a chain built
 * without one (tests, tools) gets a private set.
 */
export interface BuildOptions {
  readonly userFilters?: UserFilterManager;
  readonly stats?: FilterStats;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  /** Where the chain runs (Istio's filters need it); absent outside a proxy. */
  readonly host?: FilterHost;
}

function factoryContext(options: BuildOptions): FactoryContext {
  let userFilters = options.userFilters;
  let nextSlot = 0;
  const clock = options.clock ?? userFilters?.clock ?? systemClock;
  const random = options.random ?? userFilters?.random ?? Math.random;
  const stats = options.stats ?? userFilters?.stats ?? new FilterStats();
  return {
    stats,
    clock,
    random,
    // Created on first use only: most chains have no user filter and need no manager.
    get userFilters(): UserFilterManager {
      return (userFilters ??= new UserFilterManager({ stats, clock, random }));
    },
    streamSlot: <T>() => new StreamSlot<T>(nextSlot++),
    ...(options.host ? { host: options.host } : {}),
  };
}

interface Slot {
  readonly filter: HttpFilter;
  readonly counters: FilterCounters;
}

function isPromise<T>(v: unknown): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function failure(s: Slot, phase: string, err: unknown): FilterResult {
  s.counters.errors++;
  if (errorChannel.hasSubscribers) errorChannel.publish({ filter: s.filter.name, phase, error: err });
  if (s.filter.failurePolicy === 'FAIL_OPEN') return undefined;
  s.counters.rejections++;
  return { status: s.filter.failureStatus, details: `filter_failed{${s.filter.name}}` };
}

const EMPTY = new Uint8Array(0);

class Chain implements HttpFilterChain {
  readonly hasRequestPhase: boolean;
  readonly hasResponsePhase: boolean;
  readonly wantsRequestBody: boolean;
  readonly ready: Promise<readonly Problem[]>;
  private readonly decoders: readonly Slot[];
  private readonly encoders: readonly Slot[]; // already reversed
  private readonly dataFilters: readonly Slot[];
  private readonly completers: readonly Slot[];

  constructor(
    private readonly slots: readonly Slot[],
    readonly router: RouterOptions,
    private readonly skipped: readonly { name: string; reason: string }[],
  ) {
    this.decoders = slots.filter((s) => s.filter.decodeHeaders !== undefined);
    this.encoders = slots.filter((s) => s.filter.encodeHeaders !== undefined).reverse();
    this.dataFilters = slots.filter((s) => s.filter.decodeData !== undefined && s.filter.wantsRequestBody === true);
    this.completers = slots.filter((s) => s.filter.streamComplete !== undefined);
    this.hasRequestPhase = this.decoders.length > 0;
    this.hasResponsePhase = this.encoders.length > 0;
    this.wantsRequestBody = this.dataFilters.length > 0;
    const pending = slots.map((s) => s.filter.ready).filter((p): p is Promise<readonly Problem[]> => p !== undefined);
    this.ready = pending.length === 0 ? Promise.resolve([]) : Promise.all(pending).then((ps) => ps.flat());
  }

  decodeHeaders(req: RequestHeadersView, info: StreamInfo): FilterResult | Promise<FilterResult> {
    return this.runHeaders(this.decoders, 0, req, info, true);
  }

  encodeHeaders(res: ResponseHeadersView, info: StreamInfo): FilterResult | Promise<FilterResult> {
    return this.runHeaders(this.encoders, 0, res, info, false);
  }

  /** One loop for both directions; turns async only from the first filter that returns a Promise. */
  private runHeaders(
    list: readonly Slot[], from: number, view: RequestHeadersView | ResponseHeadersView,
    info: StreamInfo, decode: boolean,
  ): FilterResult | Promise<FilterResult> {
    const prc = info.perFilterConfig;
    for (let i = from; i < list.length; i++) {
      const s = list[i]!;
      const pr = prc === undefined ? undefined : prc[s.filter.name];
      if (pr === FILTER_DISABLED) continue;
      const c = s.counters;
      const t0 = c.startCall();
      let r: FilterResult | Promise<FilterResult>;
      try {
        r = decode
          ? s.filter.decodeHeaders!(view as RequestHeadersView, info, pr)
          : s.filter.encodeHeaders!(view as ResponseHeadersView, info, pr);
      } catch (err) {
        c.endCall(t0);
        r = failure(s, decode ? 'decodeHeaders' : 'encodeHeaders', err);
        if (r !== undefined) return r;
        continue;
      }
      if (r === undefined) {
        c.endCall(t0);
        continue;
      }
      if (isPromise<FilterResult>(r)) return this.awaitHeaders(list, i, r, t0, view, info, decode);
      c.endCall(t0);
      c.rejections++;
      return r;
    }
    return undefined;
  }

  private async awaitHeaders(
    list: readonly Slot[], i: number, pending: Promise<FilterResult>, t0: number,
    view: RequestHeadersView | ResponseHeadersView, info: StreamInfo, decode: boolean,
  ): Promise<FilterResult> {
    const s = list[i]!;
    let r: FilterResult;
    try {
      r = await pending;
      s.counters.endCall(t0);
      if (r !== undefined) {
        s.counters.rejections++;
        return r;
      }
    } catch (err) {
      s.counters.endCall(t0);
      r = failure(s, decode ? 'decodeHeaders' : 'encodeHeaders', err);
      if (r !== undefined) return r;
    }
    return this.runHeaders(list, i + 1, view, info, decode);
  }

  decodeData(chunk: Uint8Array, endStream: boolean, info: StreamInfo): DataResult | Promise<DataResult> {
    return this.runData(0, chunk, false, endStream, info);
  }

  private runData(
    from: number, chunk: Uint8Array | null, replaced: boolean, endStream: boolean, info: StreamInfo,
  ): DataResult | Promise<DataResult> {
    const list = this.dataFilters;
    const prc = info.perFilterConfig;
    let cur = chunk;
    for (let i = from; i < list.length; i++) {
      if (cur === null) {
        // An earlier filter holds the data; later ones only need to hear about the end.
        if (!endStream) return { data: null };
        cur = EMPTY;
      }
      const s = list[i]!;
      const pr = prc === undefined ? undefined : prc[s.filter.name];
      if (pr === FILTER_DISABLED) continue;
      const t0 = s.counters.startCall();
      let r: DataResult | Promise<DataResult>;
      try {
        r = s.filter.decodeData!(cur, endStream, info, pr);
      } catch (err) {
        s.counters.endCall(t0);
        const f = failure(s, 'decodeData', err);
        if (f !== undefined) return f;
        continue;
      }
      if (isPromise<DataResult>(r)) return this.awaitData(i, r, t0, cur, replaced, endStream, info);
      s.counters.endCall(t0);
      if (r === undefined) continue;
      if ('status' in r) {
        s.counters.rejections++;
        return r;
      }
      cur = r.data;
      replaced = true;
    }
    return replaced ? { data: cur } : undefined;
  }

  private async awaitData(
    i: number, pending: Promise<DataResult>, t0: number, cur: Uint8Array, replaced: boolean,
    endStream: boolean, info: StreamInfo,
  ): Promise<DataResult> {
    const s = this.dataFilters[i]!;
    let next: Uint8Array | null = cur;
    try {
      const r = await pending;
      s.counters.endCall(t0);
      if (r !== undefined) {
        if ('status' in r) {
          s.counters.rejections++;
          return r;
        }
        next = r.data;
        replaced = true;
      }
    } catch (err) {
      s.counters.endCall(t0);
      const f = failure(s, 'decodeData', err);
      if (f !== undefined) return f;
    }
    return this.runData(i + 1, next, replaced, endStream, info);
  }

  streamComplete(info: StreamInfo): void {
    for (const s of this.completers) {
      try {
        s.filter.streamComplete!(info);
      } catch (err) {
        s.counters.errors++;
        if (errorChannel.hasSubscribers) errorChannel.publish({ filter: s.filter.name, phase: 'streamComplete', error: err });
      }
    }
  }

  describe(): unknown {
    return {
      filters: this.slots.map((s) => ({ name: s.filter.name, type_url: s.filter.typeUrl, state: 'active', ...s.filter.describe() })),
      router: this.router,
      skipped: this.skipped,
    };
  }

  dispose(): void {
    for (const s of this.slots) s.filter.dispose?.();
  }
}

/**
 * Builds an immutable chain from HttpConnectionManager.http_filters. The router must be
 * the last filter; it is validated and left out (the proxy routes). Returns undefined
 * when `diag` got errors from this list.
 */
export function buildHttpFilterChain(
  configs: readonly HttpFilterConfig[], diag: Diagnostics, path: string, options: BuildOptions = {},
): HttpFilterChain | undefined {
  const errorsBefore = diag.errors.length;
  const ctx = factoryContext(options);
  const slots: Slot[] = [];
  const skipped: { name: string; reason: string }[] = [];
  let router: RouterOptions | undefined;

  if (configs.length === 0) {
    diag.warn(path, `no http_filters: assuming a lone ${ROUTER_TYPE_URL}`);
    router = DEFAULT_ROUTER_OPTIONS;
  }
  configs.forEach((cfg, i) => {
    const p = `${path}[${i}]`;
    const last = i === configs.length - 1;
    // Envoy allows a name twice (istiod sends envoy.filters.http.rbac once for CUSTOM/DENY
    // and once for ALLOW policies): both run, in order; a route's typed_per_filter_config
    // for that name applies to each, and they share the name's counters.
    const factory = factoryFor(cfg.typeUrl);
    if (factory === undefined) {
      if (cfg.isOptional) {
        diag.warn(`${p}.typed_config`, `unknown filter type ${cfg.typeUrl}: optional, skipped`);
        skipped.push({ name: cfg.name, reason: 'unknown optional type' });
      } else {
        diag.error(`${p}.typed_config`, `unknown filter type ${cfg.typeUrl}`);
      }
      if (last) diag.error(p, `the last http filter must be the terminal ${ROUTER_TYPE_URL}`);
      return;
    }
    if (factory.terminal) {
      if (!last) diag.error(p, `terminal filter ${cfg.name} must be the last in the chain`);
      else router = decodeRouterOptions(cfg.config, diag, `${p}.typed_config`);
      return;
    }
    if (last) diag.error(p, `the last http filter must be the terminal ${ROUTER_TYPE_URL}, not ${cfg.name}`);
    if (cfg.disabled) {
      skipped.push({ name: cfg.name, reason: 'disabled' });
      return;
    }
    const filter = factory.create(cfg, diag, `${p}.typed_config`, ctx);
    if (filter !== undefined) slots.push({ filter, counters: ctx.stats.countersFor(cfg.name) });
  });

  if (diag.errors.length > errorsBefore || router === undefined) {
    for (const s of slots) s.filter.dispose?.();
    return undefined;
  }
  return new Chain(slots, router, skipped);
}

/**
 * Decodes one typed_per_filter_config entry (route, virtual host or route configuration)
 * for the filter named `filterName`. Returns FILTER_DISABLED for an
 * envoy.config.route.v3.FilterConfig with `disabled: true`, undefined on errors or for an
 * optional unknown type.
 */
export function decodePerFilterConfig(
  filterName: string, ext: TypedExtension, diag: Diagnostics, path: string,
): unknown {
  let typeUrl = messageName(ext.typeUrl);
  let config: Obj = ext.config;
  let optional = false;
  let p = path;
  if (typeUrl === FILTER_CONFIG_TYPE) {
    if (raw(config, 'disabled') === true) return FILTER_DISABLED;
    optional = raw(config, 'is_optional') === true;
    const inner = raw(config, 'config');
    if (!isObj(inner) || typeof inner['@type'] !== 'string') {
      diag.error(`${path}.config`, 'FilterConfig.config must be a typed Any with @type');
      return undefined;
    }
    p = `${path}.config`;
    typeUrl = messageName(inner['@type']);
    const { ['@type']: _t, ...rest } = inner;
    config = rest;
  }
  const factory = perRouteFactoryFor(typeUrl);
  if (factory?.decodePerRoute === undefined) {
    if (optional) {
      diag.warn(p, `unknown per-route config type ${typeUrl} for filter ${filterName}: optional, ignored`);
    } else {
      diag.error(p, `unknown per-route config type ${typeUrl} for filter ${filterName}`);
    }
    return undefined;
  }
  const before = diag.errors.length;
  const v = factory.decodePerRoute(typeUrl, config, diag, p);
  return diag.errors.length > before ? undefined : v;
}

/** A LocalReply with the status and details the chain uses when a filter fails closed. */
export function isLocalReply(r: unknown): r is LocalReply {
  return isObj(r) && typeof r.status === 'number';
}
