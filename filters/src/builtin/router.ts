import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import type { RouterOptions } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import type { Obj } from '../util/fields.js';

export const ROUTER_TYPE_URL = 'envoy.extensions.filters.http.router.v3.Router';

export const DEFAULT_ROUTER_OPTIONS: RouterOptions = Object.freeze({
  suppressEnvoyHeaders: false,
  dynamicStats: true,
  startChildSpan: false,
});

export function decodeRouterOptions(config: Obj, diag: Diagnostics, path: string): RouterOptions {
  const r = ObjectReader.of(config, path, diag);
  if (!r) return DEFAULT_ROUTER_OPTIONS;
  const opts = Object.freeze({
    suppressEnvoyHeaders: r.bool('suppress_envoy_headers', false),
    dynamicStats: r.bool('dynamic_stats', true),
    startChildSpan: r.bool('start_child_span', false),
  });
  r.finish();
  return opts;
}

/** Terminal: validated by the chain builder and left out of the chain (the proxy routes). */
registerHttpFilter({
  kind: 'router',
  typeUrl: ROUTER_TYPE_URL,
  terminal: true,
  create: () => undefined,
});
