/**
 * Per-request cost of Istio's HTTP filters on an inbound sidecar chain, against a
 * baseline in the same run:
 *   node --import tsx bench/istio-stats.ts [--rounds 7] [--ops 100000]
 *
 *   baseline     what every request pays without them: the request/stream objects the
 *                filters see, allocated and dropped
 *   mx           + istio.metadata_exchange (io.istio.http.peer_metadata): decode the
 *                client's x-envoy-peer-metadata (base64 Struct), strip it, answer with ours
 *   mx+stats     + istio.stats: Istio's 25 labels and four series lookups/records
 *                (istio_requests_total, duration, request and response bytes)
 * Medians of ns/op over rounds. One label set (one client workload), as in steady traffic.
 */
import { Diagnostics, type HttpFilterConfig } from '../config/src/index.js';
import { StreamSlot, type FactoryContext, type FilterHost, type HttpFilter, type StreamInfo } from '../filters/src/index.js';
import { LabeledRegistry } from '../proxy/src/stats/labeled.js';
import { encodePeerHeader } from '../istio/src/index.js';
import { peerMetadataFactory, statsFactory } from '../istio/src/http-filters.js';
import { nodeMetadata, nodeId } from '../e2e/fixtures/istio/bootstrap.js';
import { WORKLOADS } from '../e2e/fixtures/istio/mesh.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt('rounds', 7);
const OPS = opt('ops', 100_000);

const reviews = WORKLOADS.find((w) => w.name === 'reviews-v1')!;
const productpage = WORKLOADS.find((w) => w.name === 'productpage-v1')!;
const registry = new LabeledRegistry();
// As the proxy hands it over: the cluster config's own (long-lived) object.
const CLUSTER_METADATA = { istio: { services: [{ host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' }] } };
const host: FilterHost = {
  node: { id: nodeId(reviews), metadata: nodeMetadata(reviews) },
  trafficDirection: 'INBOUND',
  labeledStats: registry,
  clusterMetadata: () => CLUSTER_METADATA,
};
let slots = 0;
const ctx = { host, streamSlot: () => new StreamSlot(slots++) } as unknown as FactoryContext;
const cfg = (name: string, typeUrl: string, config: Record<string, unknown>): HttpFilterConfig => ({ name, typeUrl, config, disabled: false, isOptional: false });
const diag = new Diagnostics();
const mx = peerMetadataFactory.create(cfg('istio.metadata_exchange', peerMetadataFactory.typeUrl, { downstream_discovery: [{ istio_headers: {} }], downstream_propagation: [{ istio_headers: {} }] }), diag, 'mx', ctx)!;
const stats = statsFactory.create(cfg('istio.stats', statsFactory.typeUrl, { disable_host_header_fallback: true }), diag, 'stats', ctx)!;
if (diag.errors.length > 0) throw new Error(JSON.stringify(diag.errors));

const peerHeader = encodePeerHeader(nodeMetadata(productpage));
const peerId = nodeId(productpage);
const connection = { localAddress: '127.0.0.1', peerPrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage', localPrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews' };

function once(filters: readonly HttpFilter[]): void {
  const headers: Record<string, string | undefined> = { 'x-envoy-peer-metadata': peerHeader, 'x-envoy-peer-metadata-id': peerId, 'content-type': 'application/json' };
  const info = {
    requestId: 'r', startTime: performance.now(), downstreamAddress: '127.0.0.6', downstreamLocalPort: 9080, peerIdentity: connection.peerPrincipal,
    routeName: 'default', virtualHostName: 'inbound|http|9080', clusterName: 'inbound|9080||', perFilterConfig: undefined, metadata: new Map<string, unknown>(),
    connection, filterState: undefined, responseCode: 200, responseFlags: '', bytesReceived: 0, bytesSent: 120,
  } as StreamInfo;
  const req = { method: 'GET', path: '/reviews/0', authority: 'reviews:9080', scheme: 'http' as const, headers };
  for (const f of filters) void f.decodeHeaders?.(req, info, undefined);
  const res = { status: 200, headers: { 'content-type': 'application/json' } as Record<string, string | undefined> };
  for (let i = filters.length - 1; i >= 0; i--) void filters[i]!.encodeHeaders?.(res, info, undefined);
  for (const f of filters) f.streamComplete?.(info);
}

function measure(filters: readonly HttpFilter[]): number {
  for (let i = 0; i < 2000; i++) once(filters);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < OPS; i++) once(filters);
  return Number(process.hrtime.bigint() - t0) / OPS;
}

const cases: [string, HttpFilter[]][] = [['baseline', []], ['mx', [mx]], ['mx+stats', [mx, stats]]];
const results = new Map<string, number[]>(cases.map(([n]) => [n, []]));
for (let r = 0; r < ROUNDS; r++) for (const [name, filters] of cases) results.get(name)!.push(measure(filters));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(results.get('baseline')!);
for (const [name] of cases) {
  const m = median(results.get(name)!);
  console.log(`${name.padEnd(10)} ${m.toFixed(0).padStart(7)} ns/op   +${(m - base).toFixed(0)} ns over baseline   x${(m / base).toFixed(1)}`);
}
const series = registry.render().split('\n').filter((l) => l.startsWith('istio_requests_total{'));
if (series.length !== 1 || !series[0]!.includes('source_workload="productpage-v1"')) throw new Error(`unexpected series: ${series.join('\n')}`);
