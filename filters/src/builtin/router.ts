import type { Diagnostics } from '../../../config/src/index.js';
import type { RouterOptions } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { bool, type Obj } from '../util/fields.js';

export const ROUTER_TYPE_URL = 'envoy.extensions.filters.http.router.v3.Router';

export const DEFAULT_ROUTER_OPTIONS: RouterOptions = Object.freeze({
  suppressEnvoyHeaders: false,
  dynamicStats: true,
  startChildSpan: false,
});

export function decodeRouterOptions(config: Obj, diag: Diagnostics, path: string): RouterOptions {
  return Object.freeze({
    suppressEnvoyHeaders: bool(config, 'suppress_envoy_headers', diag, path, false),
    dynamicStats: bool(config, 'dynamic_stats', diag, path, true),
    startChildSpan: bool(config, 'start_child_span', diag, path, false),
  });
}

/** Terminal: validated by the chain builder and left out of the chain (the proxy routes). */
registerHttpFilter({
  kind: 'router',
  typeUrl: ROUTER_TYPE_URL,
  terminal: true,
  create: () => undefined,
});
