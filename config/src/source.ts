import { ENUMS } from './enums.js';
import type { ConfigSource } from './model.js';
import type { ObjectReader } from './reader.js';

/** envoy.config.core.v3.ConfigSource: pilotfish takes dynamic resources over ADS only. */
export function decodeConfigSource(r: ObjectReader): ConfigSource | undefined {
  const which = r.oneof(['ads', 'api_config_source', 'path_config_source', 'self', 'path'], true, 'a config source,');
  const initialFetchTimeout = r.duration('initial_fetch_timeout', 15_000);
  const version = r.enumOf('resource_api_version', ENUMS['core.ApiVersion'], 'V3');
  if (version === 'V2') r.diag.error(r.child('resource_api_version'), 'only V3 is supported');
  // authorities (xdstp federation): reported by finish().
  if (which !== undefined && which !== 'ads') {
    r.accept(which);
    r.diag.error(r.child(which), 'pilotfish takes dynamic resources over ADS only; use "ads: {}"');
    r.finish();
    return undefined;
  }
  r.accept('ads');
  r.finish();
  return which === 'ads' ? { ads: true, initialFetchTimeout, resourceApiVersion: 'V3' } : undefined;
}
