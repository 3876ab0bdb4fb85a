/**
 * Per-connection cost of the listener's decisions, against a baseline in the same run:
 *   node --import tsx bench/listener-select.ts [--rounds 9] [--ops 200000]
 *
 *   baseline        the one-chain, no-listener-filter case every front proxy has (the
 *                   selector returns 0 without looking at the connection)
 *   inbound-8       Istio's virtualInbound shape: 8 chains by destination port, transport
 *                   protocol and ALPN, selected in Envoy's order
 *   outbound-sni-50 50 TLS chains by server name (exact and wildcard), the last one wins
 *   matcher-tree    filter_chain_matcher: destination port -> server name
 *   client-hello    tls_inspector: parse a real 500-byte ClientHello (SNI + ALPN)
 *   http-sniff      http_inspector: classify an HTTP/1.1 request line
 * Medians of ns/op over rounds.
 */
import type { FilterChain, FilterChainMatch, FilterChainMatcherNode, Listener } from '../config/src/index.js';
import { compileChainSelector, type ChainMatchInput } from '../proxy/src/listener/chain-select.js';
import { parseClientHello } from '../proxy/src/listener/client-hello.js';
import { sniffHttp } from '../proxy/src/listener/http-sniff.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt('rounds', 9);
const OPS = opt('ops', 200_000);

const match = (m: Partial<FilterChainMatch>): FilterChainMatch => ({
  prefixRanges: [], directSourcePrefixRanges: [], sourceType: 'ANY', sourcePrefixRanges: [], sourcePorts: [], serverNames: [], applicationProtocols: [], ...m,
});
const chain = (name: string, m?: Partial<FilterChainMatch>): FilterChain => ({
  name, network: { kind: 'tcp', statPrefix: name, cluster: { kind: 'cluster', name }, idleTimeout: 0, maxConnectAttempts: 1 }, networkFilters: [], ...(m ? { match: match(m) } : {}),
});
const listener = (chains: FilterChain[], matcher?: FilterChainMatcherNode): Listener => ({
  name: 'l', address: { address: '0.0.0.0', port: 15006, protocol: 'TCP' }, filterChains: chains, perConnectionBufferLimitBytes: 1 << 20,
  listenerFilters: [], listenerFiltersTimeout: 0, continueOnListenerFiltersTimeout: false, useOriginalDst: false, bindToPort: true, trafficDirection: 'INBOUND',
  ...(matcher ? { filterChainMatcher: matcher } : {}),
});
const conn: ChainMatchInput = {
  destinationAddress: '10.1.2.3', destinationPort: 9080, sourceAddress: '10.1.9.9', sourcePort: 40000, directSourceAddress: '10.1.9.9',
  serverName: 'svc49.ns.svc.cluster.local', transportProtocol: 'tls', applicationProtocols: ['istio-peer-exchange', 'istio', 'h2'],
};

const inbound = compileChainSelector(listener([
  chain('blackhole', { destinationPort: 15006 }),
  chain('catchall-tls', { prefixRanges: [{ addressPrefix: '0.0.0.0', prefixLen: 0 }], transportProtocol: 'tls' }),
  chain('catchall-raw', { prefixRanges: [{ addressPrefix: '0.0.0.0', prefixLen: 0 }], transportProtocol: 'raw_buffer' }),
  chain('9080-mtls-http', { destinationPort: 9080, transportProtocol: 'tls', applicationProtocols: ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'] }),
  chain('9080-mtls-tcp', { destinationPort: 9080, transportProtocol: 'tls', applicationProtocols: ['istio-peer-exchange', 'istio'] }),
  chain('9080-plain-http', { destinationPort: 9080, transportProtocol: 'raw_buffer', applicationProtocols: ['http/1.1', 'h2c'] }),
  chain('9080-plain-tcp', { destinationPort: 9080, transportProtocol: 'raw_buffer' }),
  chain('9090-mtls', { destinationPort: 9090, transportProtocol: 'tls' }),
]));
const sni = compileChainSelector(listener(Array.from({ length: 50 }, (_, i) => chain(`s${i}`, { serverNames: i % 2 ? [`svc${i}.ns.svc.cluster.local`] : [`*.zone${i}.example.com`], transportProtocol: 'tls' }))));
const tree = compileChainSelector(listener([chain('a'), chain('b')], {
  kind: 'tree', input: 'destination_port', prefix: new Map(),
  exact: new Map<string, FilterChainMatcherNode>([['9080', { kind: 'tree', input: 'server_name', prefix: new Map(), exact: new Map([['svc49.ns.svc.cluster.local', { kind: 'chain', name: 'b' }]]), onNoMatch: { kind: 'chain', name: 'a' } }]]),
}));
const single = compileChainSelector(listener([chain('only')]));

// A ClientHello as OpenSSL sends one: built by hand (record + handshake + SNI + ALPN + padding to ~500 bytes).
function clientHello(): Buffer {
  const name = Buffer.from('reviews.default.svc.cluster.local');
  const sniExt = Buffer.concat([Buffer.from([0, 0]), u16(name.length + 5), u16(name.length + 3), Buffer.from([0]), u16(name.length), name]);
  const protos = ['istio-peer-exchange', 'istio', 'h2', 'http/1.1'].map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)]));
  const alpnList = Buffer.concat(protos);
  const alpnExt = Buffer.concat([Buffer.from([0, 16]), u16(alpnList.length + 2), u16(alpnList.length), alpnList]);
  const pad = Buffer.concat([Buffer.from([0, 21]), u16(300), Buffer.alloc(300)]);
  const exts = Buffer.concat([sniExt, alpnExt, pad]);
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32), Buffer.from([32]), Buffer.alloc(32), u16(6), Buffer.from([0x13, 1, 0x13, 2, 0x13, 3]), Buffer.from([1, 0]), u16(exts.length), exts]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
}
function u16(n: number): Buffer {
  return Buffer.from([n >> 8, n & 0xff]);
}
const hello = clientHello();
if (parseClientHello(hello).kind !== 'tls') throw new Error('bench ClientHello does not parse');
const requestLine = Buffer.from('GET /productpage HTTP/1.1\r\nhost: productpage:9080\r\n\r\n');

let sink = 0;
const scenarios: [string, () => void][] = [
  ['baseline', () => { sink += single(conn); }],
  ['inbound-8', () => { sink += inbound(conn); }],
  ['outbound-sni-50', () => { sink += sni(conn); }],
  ['matcher-tree', () => { sink += tree(conn); }],
  ['client-hello', () => { sink += parseClientHello(hello).kind.length; }],
  ['http-sniff', () => { sink += sniffHttp(requestLine).kind.length; }],
];
const results = new Map<string, number[]>(scenarios.map(([n]) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of scenarios) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < OPS; i++) fn();
    results.get(name)!.push(Number(process.hrtime.bigint() - t0) / OPS);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const base = median(results.get('baseline')!);
console.log(`scenario         median ns/op  vs baseline   (${ROUNDS} rounds x ${OPS} ops, node ${process.version})`);
for (const [name] of scenarios) {
  const m = median(results.get(name)!);
  console.log(`${name.padEnd(16)} ${m.toFixed(1).padStart(12)}  ${(m / base).toFixed(1).padStart(10)}x`);
}
if (sink === -1) console.log(sink);
