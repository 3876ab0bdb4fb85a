import { ECDS_FILTER_TYPE, type Problem } from '../../../config/src/index.js';
import type { FailurePolicy, HttpFilter, RequestHeadersView, ResponseHeadersView, StreamInfo, FilterResult } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { isObj } from '../util/fields.js';
import { USER_FILTER_TYPE_URL, decodeUserFilterPerRoute, decodeUserFilterSpec, type UserFilterPerRoute, type UserFilterSpec } from './config.js';
import type { Pin, UserFilterSlot } from './manager.js';
import type { StreamSlot } from '../stream-slot.js';

const PER_ROUTE_TYPE_URL = `${USER_FILTER_TYPE_URL}.PerRoute`;

function routeVersion(pr: unknown): string | undefined {
  return isObj(pr) ? (pr as unknown as UserFilterPerRoute).version : undefined;
}

/**
 * The chain's view of a user filter: a thin delegate to the manager's slot, so a chain
 * built once keeps serving whichever version is active, canary or pinned.
 */
class UserHttpFilter implements HttpFilter {
  readonly typeUrl = USER_FILTER_TYPE_URL;
  readonly ready: Promise<readonly Problem[]>;

  /**
   * `spec` is undefined for a filter discovered over ECDS whose config has not arrived:
   * until it does, requests are answered per `pending` (fail closed with 500, like Envoy's
   * missing filter config, or skipped when the filter is optional).
   */
  constructor(
    readonly name: string,
    private readonly slot: UserFilterSlot,
    /** The version each request pinned (its own slot in the request's filter state). */
    private readonly pins: StreamSlot<Pin>,
    private readonly spec: UserFilterSpec | undefined,
    problems: Promise<readonly Problem[]>,
    private readonly pending: FailurePolicy = 'FAIL_CLOSED',
  ) {
    this.ready = problems;
  }

  private get effectiveSpec(): UserFilterSpec | undefined {
    return this.slot.active?.spec ?? this.spec;
  }

  get failurePolicy(): FailurePolicy {
    return this.effectiveSpec?.failurePolicy ?? this.pending;
  }

  get failureStatus(): number {
    return this.effectiveSpec?.failureStatus ?? 500;
  }

  decodeHeaders(req: RequestHeadersView, info: StreamInfo, pr: unknown): FilterResult | Promise<FilterResult> {
    // decodeHeaders twice for one stream keeps the first pin.
    const v = this.pins.get(info)?.version ?? this.pinNew(info, pr);
    if (v.info?.hasRequest !== true) return undefined;
    return this.slot.run(v, 'req', req, info);
  }

  encodeHeaders(res: ResponseHeadersView, info: StreamInfo, pr: unknown): FilterResult | Promise<FilterResult> {
    const v = this.pins.get(info)?.version ?? this.pinNew(info, pr);
    if (v.info?.hasResponse !== true) return undefined;
    return this.slot.run(v, 'res', res, info);
  }

  private pinNew(info: StreamInfo, pr: unknown): NonNullable<Pin['version']> {
    const v = this.slot.pick(routeVersion(pr));
    if (v === undefined) throw new Error(`user filter ${this.name}: no version loaded`);
    this.pins.set(info, this.slot.pin(info, v));
    return v;
  }

  streamComplete(info: StreamInfo): void {
    const pin = this.pins.get(info);
    if (pin === undefined) return;
    this.pins.clear(info);
    this.slot.unpin(pin);
  }

  describe(): Record<string, unknown> {
    return { kind: 'user', ...this.slot.describe() };
  }
}

registerHttpFilter({
  kind: 'user',
  typeUrl: USER_FILTER_TYPE_URL,
  perRouteTypeUrls: [USER_FILTER_TYPE_URL, PER_ROUTE_TYPE_URL],
  create(cfg, diag, path, ctx): HttpFilter | undefined {
    const spec = decodeUserFilterSpec(cfg.config, diag, path);
    if (spec === undefined) return undefined;
    const problems = ctx.userFilters.ensure(cfg.name, spec, path);
    if (spec.manifestPath !== undefined) ctx.userFilters.watchManifest(cfg.name, spec.manifestPath, cfg.config, path);
    return new UserHttpFilter(cfg.name, ctx.userFilters.slot(cfg.name), ctx.streamSlot<Pin>(), spec, problems);
  },
  decodePerRoute(_typeUrl, config, diag, path) {
    return decodeUserFilterPerRoute(config, diag, path);
  },
});

/**
 * A filter whose config is discovered over ECDS (`config_discovery`): the chain holds the
 * manager's slot for the filter's name, and each TypedExtensionConfig the control plane
 * sends for that name is applied to the slot (UserFilterManager.apply), so a new version
 * swaps in without rebuilding any chain. Only pilotfish user filters can be discovered.
 */
registerHttpFilter({
  kind: 'ecds',
  typeUrl: ECDS_FILTER_TYPE,
  create(cfg, diag, path, ctx): HttpFilter | undefined {
    const typeUrls = Array.isArray(cfg.config['type_urls']) ? (cfg.config['type_urls'] as string[]) : [];
    if (!typeUrls.includes(USER_FILTER_TYPE_URL)) {
      diag.error(`${path}.config_discovery.type_urls`, `ECDS is supported for ${USER_FILTER_TYPE_URL} filters; got ${typeUrls.join(', ') || 'none'}`);
      return undefined;
    }
    let spec: UserFilterSpec | undefined;
    let problems: Promise<readonly Problem[]> = Promise.resolve([]);
    const def = cfg.config['default_config'];
    if (isObj(def)) {
      if (def['type_url'] !== USER_FILTER_TYPE_URL) {
        diag.error(`${path}.config_discovery.default_config`, `must be a ${USER_FILTER_TYPE_URL} config`);
        return undefined;
      }
      spec = decodeUserFilterSpec(def['config'] as Record<string, unknown>, diag, `${path}.config_discovery.default_config`);
      if (spec === undefined) return undefined;
      // The default applies only until the control plane has delivered a version.
      if (ctx.userFilters.slot(cfg.name).active === undefined) problems = ctx.userFilters.ensure(cfg.name, spec, path);
    }
    return new UserHttpFilter(cfg.name, ctx.userFilters.slot(cfg.name), ctx.streamSlot<Pin>(), spec, problems, cfg.isOptional ? 'FAIL_OPEN' : 'FAIL_CLOSED');
  },
});
