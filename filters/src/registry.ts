import type { HttpFilterConfig } from '../../config/src/index.js';
import type { Diagnostics } from '../../config/src/index.js';
import type { Clock, FilterHost, HttpFilter, RandomSource } from './api.js';
import type { FilterStats } from './stats.js';
import type { StreamSlot } from './stream-slot.js';
import type { Obj } from './util/fields.js';
import type { UserFilterManager } from './user/manager.js';

/** What a factory may use besides its own config. */
export interface FactoryContext {
  readonly userFilters: UserFilterManager;
  /** The proxy's filter counters (per proxy, never process-wide). */
  readonly stats: FilterStats;
  /** The proxy's clock: token buckets and anything else time decides. */
  readonly clock: Clock;
  /** The proxy's random source: percentages, canary splits. */
  readonly random: RandomSource;
  /** A per-request state slot for the filter being created (call once per filter). */
  streamSlot<T>(): StreamSlot<T>;
  /** Node, listener direction, labeled metrics, cluster metadata: set when a proxy builds the chain. */
  readonly host?: FilterHost;
}

/**
 * Parses config once and builds the filter that serves every request (Envoy's
 * NamedHttpFilterConfigFactory). Factories report problems through `diag` and return
 * undefined instead of throwing.
 */
export interface HttpFilterFactory {
  /** Short name used in describe() output, e.g. "rbac". */
  readonly kind: string;
  /** Fully-qualified message name without the type.googleapis.com/ prefix. */
  readonly typeUrl: string;
  /** Message names accepted in typed_per_filter_config. */
  readonly perRouteTypeUrls?: readonly string[];
  /** Terminal filters end the chain (the router). */
  readonly terminal?: boolean;
  create(cfg: HttpFilterConfig, diag: Diagnostics, path: string, ctx: FactoryContext): HttpFilter | undefined;
  decodePerRoute?(typeUrl: string, config: Obj, diag: Diagnostics, path: string): unknown;
}

const byType = new Map<string, HttpFilterFactory>();
const byPerRouteType = new Map<string, HttpFilterFactory>();

/** "type.googleapis.com/envoy.x.y.Z" and "envoy.x.y.Z" name the same message. */
export function messageName(typeUrl: string): string {
  const i = typeUrl.lastIndexOf('/');
  return i < 0 ? typeUrl : typeUrl.slice(i + 1);
}

export function registerHttpFilter(factory: HttpFilterFactory): void {
  byType.set(factory.typeUrl, factory);
  for (const t of factory.perRouteTypeUrls ?? []) byPerRouteType.set(t, factory);
}

export function factoryFor(typeUrl: string): HttpFilterFactory | undefined {
  return byType.get(messageName(typeUrl));
}

export function perRouteFactoryFor(typeUrl: string): HttpFilterFactory | undefined {
  return byPerRouteType.get(messageName(typeUrl));
}

export function registeredTypeUrls(): string[] {
  return [...byType.keys()];
}
