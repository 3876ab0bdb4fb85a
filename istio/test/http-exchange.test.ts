/**
 * The HTTP peer metadata filter's rules, as istio/proxy's peer_metadata filter has them:
 * the response carries our metadata only when the request carried the client's; the
 * exchange headers never reach the application; baggage discovery and propagation with
 * Istio's keys; a header that is not a Struct is ignored.
 */
import t from 'tap';
import { Diagnostics } from '../../config/src/index.js';
import type { FactoryContext, FilterHost, HttpFilter, StreamInfo } from '../../filters/src/index.js';
import { LabeledRegistry } from '../../proxy/src/stats/labeled.js';
import { decodePeerHeader, encodePeerHeader, PEER_METADATA_TYPE, type WorkloadMetadata } from '../src/index.js';
import { peerMetadataFactory } from '../src/http-filters.js';
import { nodeId, nodeMetadata } from '../../e2e/fixtures/istio/bootstrap.js';
import { WORKLOADS } from '../../e2e/fixtures/istio/mesh.js';

const reviews = WORKLOADS.find((w) => w.name === 'reviews-v1')!;
const productpage = WORKLOADS.find((w) => w.name === 'productpage-v1')!;
const host: FilterHost = { node: { id: nodeId(reviews), metadata: nodeMetadata(reviews) }, trafficDirection: 'INBOUND', labeledStats: new LabeledRegistry() };

function filter(config: Record<string, unknown>): HttpFilter {
  const d = new Diagnostics();
  const f = peerMetadataFactory.create({ name: 'istio.metadata_exchange', typeUrl: PEER_METADATA_TYPE, config, disabled: false, isOptional: false }, d, 'f', { host } as unknown as FactoryContext);
  if (!f) throw new Error(JSON.stringify(d.errors));
  return f;
}
const info = (): StreamInfo => ({ metadata: new Map<string, unknown>(), clusterName: 'inbound|9080||' }) as unknown as StreamInfo;
const req = (headers: Record<string, string | undefined>) => ({ method: 'GET', path: '/', authority: 'reviews', scheme: 'http' as const, headers });

const inbound = { downstream_discovery: [{ istio_headers: {} }, { workload_discovery: {} }], downstream_propagation: [{ istio_headers: {} }] };

t.test('server side: learns the client, strips the headers, answers only when asked', async (t) => {
  const f = filter(inbound);
  const i = info();
  const headers: Record<string, string | undefined> = { 'x-envoy-peer-metadata': encodePeerHeader(nodeMetadata(productpage)), 'x-envoy-peer-metadata-id': nodeId(productpage), accept: '*/*' };
  await f.decodeHeaders!(req(headers), i, undefined);
  t.same(Object.keys(headers), ['accept'], 'the app never sees the exchange headers');
  t.equal((i.metadata.get('downstream_peer') as WorkloadMetadata).workloadName, 'productpage-v1');
  const res = { status: 200, headers: {} as Record<string, string | undefined> };
  await f.encodeHeaders!(res, i, undefined);
  t.equal(res.headers['x-envoy-peer-metadata-id'], nodeId(reviews));
  t.equal(decodePeerHeader(res.headers['x-envoy-peer-metadata']!)?.workloadName, 'reviews-v1');

  // A client without the exchange (no sidecar) gets nothing of ours back.
  const j = info();
  await f.decodeHeaders!(req({}), j, undefined);
  const res2 = { status: 200, headers: {} as Record<string, string | undefined> };
  await f.encodeHeaders!(res2, j, undefined);
  t.same(res2.headers, {});
  t.equal(j.metadata.get('downstream_peer'), undefined);
});

t.test('a header that is not base64 of a Struct is dropped and teaches nothing', async (t) => {
  const f = filter(inbound);
  const i = info();
  const headers: Record<string, string | undefined> = { 'x-envoy-peer-metadata': 'AAAA/////', 'x-envoy-peer-metadata-id': 'x' };
  await f.decodeHeaders!(req(headers), i, undefined);
  t.same(headers, {});
  const peer = i.metadata.get('downstream_peer') as WorkloadMetadata | undefined;
  t.ok(peer === undefined || peer.workloadName === '', 'no workload learned from garbage');
});

t.test('baggage: propagated with Istio\'s keys, discovered from a client', async (t) => {
  const f = filter({ upstream_propagation: [{ baggage: {} }], downstream_discovery: [{ baggage: {} }] });
  const i = info();
  const headers: Record<string, string | undefined> = { baggage: 'k8s.deployment.name=productpage-v1,k8s.namespace.name=default,service.name=productpage,service.version=v1,app.name=productpage,app.version=v1,k8s.cluster.name=Kubernetes' };
  await f.decodeHeaders!(req(headers), i, undefined);
  const peer = i.metadata.get('downstream_peer') as WorkloadMetadata;
  t.equal(peer.workloadName, 'productpage-v1');
  t.equal(peer.canonicalName, 'productpage');
  t.equal(peer.clusterId, 'Kubernetes');
  t.match(headers.baggage, /k8s\.deployment\.name=reviews-v1/);
  t.match(headers.baggage, /k8s\.namespace\.name=default/);
  t.match(headers.baggage, /service\.name=reviews/);
});
