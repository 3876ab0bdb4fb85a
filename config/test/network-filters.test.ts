import t from 'tap';
import fc from 'fast-check';
import { decodeListener, Diagnostics, NETWORK_FILTER_TYPES, TYPE_PREFIX } from '../src/index.js';

// FilterChain.networkFilters: the non-terminal network filters in order, from the one
// table of accepted types, as plain Any or wrapped in either TypedStruct istiod sends;
// anything else refused by name; the terminal filter still last.

const TCP_PROXY = { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': `${TYPE_PREFIX}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`, stat_prefix: 's', cluster: 'c' } };
const ACCEPTED = [...NETWORK_FILTER_TYPES.keys()];

function listener(filters: unknown[]): unknown {
  return { name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 1 } }, filter_chains: [{ filters }] };
}

type Wrap = 'any' | 'udpa' | 'xds';
function typed(typeUrl: string, config: Record<string, unknown>, wrap: Wrap): Record<string, unknown> {
  if (wrap === 'any') return { '@type': typeUrl, ...config };
  const ts = wrap === 'udpa' ? 'udpa.type.v1.TypedStruct' : 'xds.type.v3.TypedStruct';
  return { '@type': `${TYPE_PREFIX}${ts}`, type_url: typeUrl, value: config };
}

const filterArb = fc.record({
  typeUrl: fc.constantFrom(...ACCEPTED),
  name: fc.stringMatching(/^[a-z][a-z0-9_.]{0,20}$/),
  wrap: fc.constantFrom<Wrap>('any', 'udpa', 'xds'),
  config: fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/).filter((k) => k !== 'type_url' && k !== 'value'), fc.oneof(fc.string(), fc.integer(), fc.boolean()), { maxKeys: 3 }),
});

t.test('accepted network filters come through in order, unwrapped, with their config untouched', async () => {
  fc.assert(fc.property(fc.array(filterArb, { maxLength: 5 }), (fs) => {
    const diag = new Diagnostics();
    const l = decodeListener(listener([...fs.map((f) => ({ name: f.name, typed_config: typed(f.typeUrl, f.config, f.wrap) })), TCP_PROXY]), diag, 'l');
    if (!l || diag.errors.length > 0) return false;
    const got = l.filterChains[0]!.networkFilters;
    return got.length === fs.length && got.every((g, i) =>
      g.name === fs[i]!.name && g.typeUrl === fs[i]!.typeUrl && JSON.stringify(g.config) === JSON.stringify(fs[i]!.config));
  }), { numRuns: 300 });
});

t.test('an unknown network filter anywhere refuses the chain, naming it', async () => {
  fc.assert(fc.property(fc.array(filterArb, { maxLength: 4 }), fc.nat(4), fc.stringMatching(/^[A-Za-z][A-Za-z0-9]{0,12}$/), (fs, at, msg) => {
    const unknown = { name: 'mystery', typed_config: { '@type': `${TYPE_PREFIX}example.filters.${msg}` } };
    const filters: unknown[] = fs.map((f) => ({ name: f.name, typed_config: typed(f.typeUrl, f.config, f.wrap) }));
    filters.splice(Math.min(at, filters.length), 0, unknown);
    const diag = new Diagnostics();
    const l = decodeListener(listener([...filters, TCP_PROXY]), diag, 'l');
    return l === undefined && diag.errors.some((e) => e.message.includes('network filter "mystery"') && e.message.includes(`example.filters.${msg}`) && e.message.includes('is not supported by pilotfish'));
  }), { numRuns: 200 });
});

t.test('a terminal filter before a network filter is refused; filters resolved by well-known name', async (t) => {
  const diag = new Diagnostics();
  t.equal(decodeListener(listener([TCP_PROXY, { name: 'envoy.filters.network.rbac', typed_config: { '@type': ACCEPTED[0], stat_prefix: 'x' } }]), diag, 'l'), undefined);
  t.match(diag.errors.map((e) => e.message).join('\n'), /is terminal and must be the last network filter/);
  const d2 = new Diagnostics();
  const l = decodeListener(listener([{ name: 'envoy.filters.network.set_filter_state' }, TCP_PROXY]), d2, 'l');
  t.same(d2.errors, []);
  t.same(l?.filterChains[0]?.networkFilters, [{ name: 'envoy.filters.network.set_filter_state', typeUrl: `${TYPE_PREFIX}envoy.extensions.filters.network.set_filter_state.v3.Config`, config: {} }]);
});
