/**
 * Istio's Wasm-era filter configs (istiod <= 1.17): the built-in plugins map onto the
 * native filters, with their JSON configuration; any other Wasm module is refused by name.
 */
import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../config/src/index.js';
import { StreamSlot, type FactoryContext, type FilterHost } from '../../filters/src/index.js';
import { LabeledRegistry } from '../../proxy/src/stats/labeled.js';
import { WASM_TYPE, wasmPlugin } from '../src/index.js';
import { wasmFactory } from '../src/wasm-compat.js';

const host: FilterHost = { node: { id: 'sidecar~1.2.3.4~a.default~default.svc.cluster.local', metadata: { NAMESPACE: 'default' } }, trafficDirection: 'OUTBOUND', labeledStats: new LabeledRegistry() };
let slots = 0;
const ctx = { host, streamSlot: () => new StreamSlot(slots++) } as unknown as FactoryContext;
const wasm = (code: string, rootId: string, configuration?: string) => ({
  config: {
    root_id: rootId,
    vm_config: { vm_id: rootId, runtime: 'envoy.wasm.runtime.null', code: { local: { inline_string: code } } },
    ...(configuration === undefined ? {} : { configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: configuration } }),
  },
});
const build = (config: Record<string, unknown>, d: Diagnostics) => wasmFactory.create({ name: 'istio.x', typeUrl: `type.googleapis.com/${WASM_TYPE}`, config, disabled: false, isOptional: false }, d, 'f', ctx);

t.test('envoy.wasm.metadata_exchange becomes the native exchange (Istio headers both ways)', async (t) => {
  const d = new Diagnostics();
  const f = build(wasm('envoy.wasm.metadata_exchange', 'istio.metadata_exchange', '{"max_peer_cache_size": 10000}'), d);
  t.same(d.errors, []);
  t.equal(f?.describe().kind, 'istio_peer_metadata');
  const headers: Record<string, string | string[] | undefined> = {};
  const info = { metadata: new Map<string, unknown>(), clusterName: 'outbound|9080||reviews.default.svc.cluster.local' };
  await f!.decodeHeaders!({ method: 'GET', path: '/', authority: 'reviews', scheme: 'http', headers }, info as never, undefined);
  t.equal(headers['x-envoy-peer-metadata-id'], host.node.id, 'propagated upstream');
  t.type(headers['x-envoy-peer-metadata'], 'string');
});

t.test('envoy.wasm.stats becomes istio.stats with its JSON configuration', async (t) => {
  const d = new Diagnostics();
  const f = build(wasm('envoy.wasm.stats', 'stats_outbound', JSON.stringify({ debug: 'false', stat_prefix: 'istio', disable_host_header_fallback: true, metrics: [{ name: 'request_bytes', drop: true }] })), d);
  t.same(d.errors, []);
  t.match(d.warnings.map((w) => w.message).join('\n'), /debug, stat_prefix/);
  t.same(f?.describe(), { kind: 'istio_stats', reporter: 'source', disable_host_header_fallback: true });
});

t.test('other Wasm modules and bad configuration are refused with the reason', async (t) => {
  const d = new Diagnostics();
  t.equal(build(wasm('my-plugin.wasm', 'my_root'), d), undefined);
  t.match(d.errors[0]!.message, /Wasm module "my-plugin.wasm" \(root_id my_root\) is not supported/);
  const d2 = new Diagnostics();
  t.equal(build(wasm('envoy.wasm.stats', 'stats_inbound', '{not json'), d2), undefined);
  t.match(d2.errors[0]!.path, 'f.config.configuration');
});

t.test('wasmPlugin never throws', async () => {
  fc.assert(
    fc.property(fc.anything({ maxDepth: 4 }), (config) => {
      const d = new Diagnostics();
      const r = wasmPlugin(config as Record<string, unknown>, d, 'f');
      if (r === undefined && d.errors.length === 0) throw new Error('undefined without an error');
    }),
    { numRuns: 1000 },
  );
});
