/**
 * Istio's extensions in their Wasm-era form (istiod up to 1.17, and EnvoyFilters written
 * for it): an `envoy.extensions.filters.http.wasm.v3.Wasm` whose VM is Envoy's built-in
 * "null" runtime running Istio's compiled-in plugin, named by `vm_config.code.local.
 * inline_string` (`envoy.wasm.metadata_exchange`, `envoy.wasm.stats`) and configured by a
 * JSON `configuration` (a google.protobuf.StringValue). Those two map onto the native
 * filters; any other Wasm module is refused with its name (pilotfish runs no Wasm).
 */
import { ObjectReader, type Diagnostics, type HttpFilterConfig } from '../../config/src/index.js';
import type { FactoryContext, HttpFilter, HttpFilterFactory } from '../../filters/src/index.js';
import { peerMetadataFactory, statsFactory } from './http-filters.js';

export const WASM_TYPE = 'envoy.extensions.filters.http.wasm.v3.Wasm';

/** The plugin a Wasm filter config names, and its JSON configuration. */
export function wasmPlugin(config: Readonly<Record<string, unknown>>, diag: Diagnostics, path: string): { code: string; rootId: string; configuration: Record<string, unknown> } | undefined {
  const r = ObjectReader.of(config, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const c = r.object('config');
  r.finish();
  if (!c) {
    diag.error(`${path}.config`, 'is required');
    return undefined;
  }
  const rootId = c.string('root_id', '');
  c.accept('name', 'fail_open', 'allow_on_headers_stop_iteration');
  const vm = c.object('vm_config');
  let code = '';
  if (vm) {
    vm.accept('vm_id', 'runtime', 'allow_precompiled', 'environment_variables', 'nack_on_code_cache_miss');
    const local = vm.object('code')?.object('local');
    code = local?.string('inline_string', '') ?? '';
    if (code === '') code = local?.string('filename', '') ?? '';
    vm.finish();
  } else diag.error(`${c.path}.vm_config`, 'is required');
  let configuration: Record<string, unknown> = {};
  const raw = c.get('configuration');
  if (raw !== undefined) {
    // A StringValue Any (`{"@type": ".../google.protobuf.StringValue", "value": "<json>"}`) or the bare string.
    const text = typeof raw === 'string' ? raw : typeof (raw as { value?: unknown }).value === 'string' ? (raw as { value: string }).value : undefined;
    if (text === undefined) diag.error(`${c.path}.configuration`, 'expected a google.protobuf.StringValue holding JSON');
    else if (text.trim() !== '') {
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
        configuration = parsed as Record<string, unknown>;
      } catch (e) {
        diag.error(`${c.path}.configuration`, `invalid JSON: ${(e as Error).message}`);
      }
    }
  }
  c.finish();
  return diag.errors.length > before ? undefined : { code, rootId, configuration };
}

/** The metadata exchange plugin: Istio's headers in both directions, both ways. */
const MX_BOTH_WAYS = {
  downstream_discovery: [{ istio_headers: {} }],
  downstream_propagation: [{ istio_headers: {} }],
  upstream_discovery: [{ istio_headers: {} }],
  upstream_propagation: [{ istio_headers: {} }],
};

export const wasmFactory: HttpFilterFactory = {
  kind: 'istio_wasm_compat',
  typeUrl: WASM_TYPE,
  create(cfg: HttpFilterConfig, diag: Diagnostics, path: string, ctx: FactoryContext): HttpFilter | undefined {
    const plugin = wasmPlugin(cfg.config, diag, path);
    if (!plugin) return undefined;
    const p = `${path}.config.configuration`;
    if (plugin.code === 'envoy.wasm.metadata_exchange') {
      // The plugin's only setting, max_peer_cache_size, sizes a cache pilotfish bounds itself.
      return peerMetadataFactory.create({ ...cfg, config: MX_BOTH_WAYS }, diag, p, ctx);
    }
    if (plugin.code === 'envoy.wasm.stats') {
      // Wasm-era fields that the native PluginConfig reserved (stat_prefix, debug, ...) are dropped with a warning.
      const { debug, max_peer_cache_size, stat_prefix, field_separator, value_separator, ...rest } = plugin.configuration;
      const dropped = Object.entries({ debug, max_peer_cache_size, stat_prefix, field_separator, value_separator }).filter(([, v]) => v !== undefined).map(([k]) => k);
      if (dropped.length > 0) diag.warn(p, `Wasm-era fields without effect: ${dropped.join(', ')}`);
      return statsFactory.create({ ...cfg, config: rest }, diag, p, ctx);
    }
    diag.error(`${path}.config.vm_config.code`, `Wasm module "${plugin.code || '(none)'}"${plugin.rootId ? ` (root_id ${plugin.rootId})` : ''} is not supported: pilotfish runs no Wasm; Istio's envoy.wasm.metadata_exchange and envoy.wasm.stats are built in`);
    return undefined;
  },
};
