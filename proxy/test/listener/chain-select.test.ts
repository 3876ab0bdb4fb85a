import t from 'tap';
import type { FilterChain, FilterChainMatch, FilterChainMatcherNode, Listener } from '../../../config/src/index.js';
import { compileChainSelector, DEFAULT_CHAIN, NO_CHAIN, type ChainMatchInput } from '../../src/listener/chain-select.js';

// Filter chain selection against Envoy's documented algorithm (FilterChainMatch in
// listener_components.proto): criteria in order, most specific survivor at each step,
// no backtracking to less specific chains, default_filter_chain when nothing survives.

function m(partial: Partial<FilterChainMatch>): FilterChainMatch {
  return {
    prefixRanges: [], directSourcePrefixRanges: [], sourceType: 'ANY', sourcePrefixRanges: [], sourcePorts: [],
    serverNames: [], applicationProtocols: [], ...partial,
  };
}
const cidr = (s: string) => {
  const [addressPrefix, len] = s.split('/');
  return { addressPrefix: addressPrefix!, prefixLen: Number(len) };
};
function chain(name: string, match?: Partial<FilterChainMatch>): FilterChain {
  return { name, network: { kind: 'tcp', statPrefix: name, cluster: { kind: 'cluster', name }, idleTimeout: 0, maxConnectAttempts: 1 }, networkFilters: [], ...(match ? { match: m(match) } : {}) };
}
function listener(chains: FilterChain[], opts: { defaultChain?: boolean; matcher?: FilterChainMatcherNode } = {}): Listener {
  return {
    name: 'l', address: { address: '0.0.0.0', port: 15006, protocol: 'TCP' }, filterChains: chains,
    perConnectionBufferLimitBytes: 1 << 20, listenerFilters: [], listenerFiltersTimeout: 0, continueOnListenerFiltersTimeout: false,
    useOriginalDst: false, bindToPort: true, trafficDirection: 'INBOUND',
    ...(opts.defaultChain ? { defaultFilterChain: chain('default') } : {}),
    ...(opts.matcher ? { filterChainMatcher: opts.matcher } : {}),
  };
}
const conn = (p: Partial<ChainMatchInput>): ChainMatchInput => ({
  destinationAddress: '198.18.0.10', destinationPort: 8080, sourceAddress: '198.18.0.1', sourcePort: 40000,
  directSourceAddress: p.sourceAddress ?? '198.18.0.1', serverName: undefined, transportProtocol: 'raw_buffer', applicationProtocols: [], ...p,
});
function pick(l: Listener, c: Partial<ChainMatchInput>): string {
  const i = compileChainSelector(l)(conn(c));
  return i === DEFAULT_CHAIN ? 'default' : i === NO_CHAIN ? 'none' : l.filterChains[i]!.name;
}

t.test('destination port: exact beats unset; a chain for another port never matches', async (t) => {
  const l = listener([chain('any'), chain('p8080', { destinationPort: 8080 }), chain('p9090', { destinationPort: 9090 })]);
  t.equal(pick(l, { destinationPort: 8080 }), 'p8080');
  t.equal(pick(l, { destinationPort: 9090 }), 'p9090');
  t.equal(pick(l, { destinationPort: 7000 }), 'any');
});

t.test('no backtracking: a port match that fails a later criterion does not fall back to the port-less chain', async (t) => {
  const l = listener([chain('generic'), chain('p8080-tls', { destinationPort: 8080, transportProtocol: 'tls' })], { defaultChain: true });
  t.equal(pick(l, { destinationPort: 8080, transportProtocol: 'tls' }), 'p8080-tls');
  t.equal(pick(l, { destinationPort: 8080, transportProtocol: 'raw_buffer' }), 'default', 'Envoy picks the port-specific subset, then finds nothing');
  t.equal(pick(listener(l.filterChains as FilterChain[]), { destinationPort: 8080 }), 'none', 'without a default chain the connection is closed');
});

t.test('destination IP: longest prefix wins, then chains without prefix_ranges', async (t) => {
  const l = listener([chain('any'), chain('wide', { prefixRanges: [cidr('198.18.0.0/15')] }), chain('narrow', { prefixRanges: [cidr('198.18.0.0/24'), cidr('10.0.0.0/8')] })]);
  t.equal(pick(l, { destinationAddress: '198.18.0.10' }), 'narrow');
  t.equal(pick(l, { destinationAddress: '198.19.1.1' }), 'wide');
  t.equal(pick(l, { destinationAddress: '10.1.2.3' }), 'narrow');
  t.equal(pick(l, { destinationAddress: '192.0.2.1' }), 'any');
  t.equal(pick(l, { destinationAddress: '::ffff:198.18.0.10' }), 'narrow', 'a v4-mapped address matches v4 ranges');
  const zero = listener([chain('any'), chain('all', { prefixRanges: [cidr('0.0.0.0/0')] })]);
  t.equal(pick(zero, { destinationAddress: '192.0.2.1' }), 'all', '0.0.0.0/0 is more specific than no criterion');
  t.equal(pick(zero, { destinationAddress: '2001:db8::1' }), 'any', 'a v4 range never matches v6');
});

t.test('server names: exact, then the longest wildcard, then chains without names', async (t) => {
  const l = listener([
    chain('none'), chain('com', { serverNames: ['*.com'] }), chain('example', { serverNames: ['*.example.com'] }),
    chain('www', { serverNames: ['www.example.com'] }),
  ]);
  t.equal(pick(l, { serverName: 'www.example.com' }), 'www');
  t.equal(pick(l, { serverName: 'api.example.com' }), 'example');
  t.equal(pick(l, { serverName: 'a.b.example.com' }), 'example');
  t.equal(pick(l, { serverName: 'other.com' }), 'com');
  t.equal(pick(l, { serverName: 'example.org' }), 'none');
  t.equal(pick(l, { serverName: undefined }), 'none', 'no SNI: only chains without server_names');
  t.equal(pick(l, { serverName: 'example.com' }), 'com', '*.example.com does not match the bare domain');
});

t.test('transport protocol and ALPN after server names (Istio inbound: tls + istio-peer-exchange vs raw_buffer)', async (t) => {
  const l = listener([
    chain('mtls', { destinationPort: 8080, transportProtocol: 'tls', applicationProtocols: ['istio-peer-exchange', 'istio'] }),
    chain('tls-app', { destinationPort: 8080, transportProtocol: 'tls' }),
    chain('plain-http', { destinationPort: 8080, transportProtocol: 'raw_buffer', applicationProtocols: ['http/1.1', 'h2c'] }),
    chain('plain-tcp', { destinationPort: 8080, transportProtocol: 'raw_buffer' }),
  ]);
  t.equal(pick(l, { transportProtocol: 'tls', applicationProtocols: ['istio-peer-exchange', 'h2'] }), 'mtls');
  t.equal(pick(l, { transportProtocol: 'tls', applicationProtocols: ['h2'] }), 'tls-app');
  t.equal(pick(l, { transportProtocol: 'raw_buffer', applicationProtocols: ['http/1.1'] }), 'plain-http');
  t.equal(pick(l, { transportProtocol: 'raw_buffer', applicationProtocols: [] }), 'plain-tcp');
});

t.test('direct source, source type, source IP, source port, in that order', async (t) => {
  const l = listener([
    chain('any'),
    chain('local', { sourceType: 'SAME_IP_OR_LOOPBACK' }),
    chain('external', { sourceType: 'EXTERNAL' }),
  ]);
  t.equal(pick(l, { sourceAddress: '127.0.0.1' }), 'local');
  t.equal(pick(l, { sourceAddress: '198.18.0.10', destinationAddress: '198.18.0.10' }), 'local', 'same IP as the destination is local');
  t.equal(pick(l, { sourceAddress: '198.18.0.1' }), 'external');
  const src = listener([chain('any'), chain('net', { sourcePrefixRanges: [cidr('198.18.0.0/16')] }), chain('port', { sourcePrefixRanges: [cidr('198.18.0.0/16')], sourcePorts: [40000] })]);
  t.equal(pick(src, { sourcePort: 40000 }), 'port');
  t.equal(pick(src, { sourcePort: 40001 }), 'net');
  t.equal(pick(src, { sourceAddress: '192.0.2.1' }), 'any');
  const direct = listener([chain('any'), chain('lb', { directSourcePrefixRanges: [cidr('198.18.0.1/32')] })]);
  t.equal(pick(direct, { sourceAddress: '192.0.2.9', directSourceAddress: '198.18.0.1' }), 'lb');
});

t.test('earlier criteria dominate later ones', async (t) => {
  // A chain more specific in source port but less in destination IP loses.
  const l = listener([chain('ip', { prefixRanges: [cidr('198.18.0.10/32')] }), chain('port', { sourcePorts: [40000] })]);
  t.equal(pick(l, { destinationAddress: '198.18.0.10', sourcePort: 40000 }), 'ip');
});

t.test('a single catch-all chain, and the default chain', async (t) => {
  t.equal(pick(listener([chain('only')]), {}), 'only');
  t.equal(pick(listener([], { defaultChain: true }), {}), 'default');
  t.equal(pick(listener([chain('p1', { destinationPort: 1 })], { defaultChain: true }), { destinationPort: 2 }), 'default');
});

t.test('filter_chain_matcher: destination port then SNI, with on_no_match', async (t) => {
  const tree: FilterChainMatcherNode = {
    kind: 'tree', input: 'destination_port',
    exact: new Map<string, FilterChainMatcherNode>([
      ['8443', { kind: 'tree', input: 'server_name', exact: new Map([['api.example.com', { kind: 'chain', name: 'api' }]]), prefix: new Map(), onNoMatch: { kind: 'chain', name: 'tls-other' } }],
      ['8080', { kind: 'chain', name: 'http' }],
    ]),
    prefix: new Map(),
  };
  const l = listener([chain('api'), chain('tls-other'), chain('http')], { defaultChain: true, matcher: tree });
  t.equal(pick(l, { destinationPort: 8443, serverName: 'api.example.com' }), 'api');
  t.equal(pick(l, { destinationPort: 8443, serverName: 'x.example.com' }), 'tls-other');
  t.equal(pick(l, { destinationPort: 8080 }), 'http');
  t.equal(pick(l, { destinationPort: 9 }), 'default');
  const ipTree: FilterChainMatcherNode = {
    kind: 'tree', input: 'destination_ip', exact: new Map(),
    prefix: new Map<string, FilterChainMatcherNode>([['198.18.0.0/15', { kind: 'chain', name: 'api' }], ['198.18.0.0/24', { kind: 'chain', name: 'http' }]]),
  };
  const l2 = listener([chain('api'), chain('http')], { matcher: ipTree });
  t.equal(pick(l2, { destinationAddress: '198.18.0.7' }), 'http', 'longest CIDR wins');
  t.equal(pick(l2, { destinationAddress: '198.19.0.7' }), 'api');
  t.equal(pick(l2, { destinationAddress: '192.0.2.1' }), 'none');
});
