/**
 * istio.stats remembers each peer's last (principals, destination service) combination and
 * its tag array: whatever order requests arrive in, every request must be counted under
 * its own labels, never under the previous request's.
 */
import t from 'tap';
import fc from 'fast-check';
import { Diagnostics, type HttpFilterConfig } from '../../config/src/index.js';
import { StreamSlot, type FactoryContext, type FilterHost, type StreamInfo } from '../../filters/src/index.js';
import { LabeledRegistry } from '../../proxy/src/stats/labeled.js';
import { statsFactory } from '../src/http-filters.js';

const MESH = 'spiffe://cluster.local/ns/default/sa/';

function proxyWithStats() {
  const registry = new LabeledRegistry();
  const host: FilterHost = { node: { id: 'sidecar~10.0.0.2~reviews-v1.default~default.svc.cluster.local', metadata: { NAMESPACE: 'default' } }, trafficDirection: 'INBOUND', labeledStats: registry };
  let slots = 0;
  const ctx = { host, streamSlot: () => new StreamSlot(slots++) } as unknown as FactoryContext;
  const cfg: HttpFilterConfig = { name: 'istio.stats', typeUrl: statsFactory.typeUrl, config: {}, disabled: false, isOptional: false };
  const diag = new Diagnostics();
  const filter = statsFactory.create(cfg, diag, 'stats', ctx)!;
  if (diag.errors.length > 0) throw new Error(JSON.stringify(diag.errors));
  const request = (authority: string, client: string | undefined, status: number) => {
    const connection = client === undefined ? { localAddress: '127.0.0.1' } : { localAddress: '127.0.0.1', peerPrincipal: MESH + client, localPrincipal: `${MESH}reviews` };
    const info = {
      requestId: 'r', startTime: performance.now(), downstreamAddress: '127.0.0.6', downstreamLocalPort: 9080, peerIdentity: connection.peerPrincipal,
      routeName: 'default', virtualHostName: 'inbound|http|9080', clusterName: 'inbound|9080||', perFilterConfig: undefined, metadata: new Map<string, unknown>(),
      connection, filterState: undefined, responseCode: status, responseFlags: '', bytesReceived: 0, bytesSent: 10,
    } as StreamInfo;
    void filter.decodeHeaders?.({ method: 'GET', path: '/', authority, scheme: 'http', headers: {} }, info, undefined);
    void filter.encodeHeaders?.({ status, headers: {} }, info, undefined);
    filter.streamComplete?.(info);
  };
  /** istio_requests_total's value per "destination_service|source_principal|security_policy|response_code". */
  const counts = () => {
    const out = new Map<string, number>();
    for (const line of registry.render().split('\n')) {
      if (!line.startsWith('istio_requests_total{')) continue;
      const label = (n: string) => new RegExp(`${n}="([^"]*)"`).exec(line)?.[1] ?? '?';
      out.set(`${label('destination_service')}|${label('source_principal')}|${label('security_policy')}|${label('response_code')}`, Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
    return out;
  };
  return { request, counts };
}

t.test('each request is counted under its own service, principal and status, in any order', async (t) => {
  const req = fc.record({
    authority: fc.constantFrom('reviews.default.svc.cluster.local', 'ratings.default.svc.cluster.local', 'details'),
    client: fc.constantFrom(undefined, 'productpage', 'reviews'),
    status: fc.constantFrom(200, 404, 503),
  });
  fc.assert(fc.property(fc.array(req, { minLength: 1, maxLength: 30 }), (reqs) => {
    const { request, counts } = proxyWithStats();
    const expected = new Map<string, number>();
    for (const r of reqs) {
      request(r.authority, r.client, r.status);
      const principal = r.client === undefined ? 'unknown' : MESH + r.client;
      const key = `${r.authority}|${principal}|${r.client === undefined ? 'none' : 'mutual_tls'}|${r.status}`;
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
    const got = counts();
    return JSON.stringify([...got].sort()) === JSON.stringify([...expected].sort());
  }), { numRuns: 200 });
  t.pass('held for 200 generated request sequences');
});
