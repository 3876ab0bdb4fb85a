import type { UpgradeConfig } from './model.js';
import type { ObjectReader } from './reader.js';

/** upgrade_configs entry; `route` adds connect_config (route-level only). */
export function decodeUpgradeConfig(r: ObjectReader, route: boolean): UpgradeConfig | undefined {
  const type = r.requiredString('upgrade_type');
  const enabled = r.bool('enabled', true);
  if (!route && r.has('filters')) {
    r.accept('filters');
    r.diag.warn(r.child('filters'), 'per-upgrade filter chains are not supported by pilotfish; ignored (the HCM filters apply)');
  }
  let connectConfig: UpgradeConfig['connectConfig'];
  if (route) {
    const cc = r.object('connect_config');
    if (cc) {
      connectConfig = { allowPost: cc.bool('allow_post', false) };
      // proxy_protocol_config: reported by finish().
      cc.finish();
    }
  }
  r.finish();
  if (type === undefined || type === '') return undefined;
  return { upgradeType: type.toLowerCase(), enabled, ...(connectConfig ? { connectConfig } : {}) };
}
