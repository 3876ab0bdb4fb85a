/**
 * xDS at scale: what must not grow with the number of resources, and what must be
 * batched. Each test counts something a regression would change.
 */
import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../config/src/index.js';
import { ControlPlane, parseMesh } from '../../controlplane/src/index.js';
import { ConfigAssembler } from '../src/assembler.js';
import { deltaInitial, deltaOnResponse, deltaOnStreamStart } from '../src/delta-state.js';
import { decodeResourceJson, type DeltaDiscoveryRequest, type DiscoveryRequest } from '../src/protos.js';
import { clusterType, loadAssignmentType } from '../src/resource-types.js';
import { nameMatches, subscribedTo, type ResourceChanges, type ResourceType } from '../src/resource-type.js';
import { sotwInitial, sotwOnResponse } from '../src/sotw-state.js';
import { XdsClient, TYPE_URLS } from '../src/index.js';
import { any, claJson, clusterJson, RecordingSink, T } from './helpers.js';
import { until } from '../../test-support/wait.js';

/** The real cluster type, counting protobuf decodes (`name` runs once per decoded resource). */
function counting<V>(type: ResourceType<V>): { type: ResourceType<V>; decodes: () => number } {
  let n = 0;
  return {
    type: { ...type, name: (json) => (n++, type.name(json)), decode: type.decode.bind(type) },
    decodes: () => n,
  };
}

const sotw = (version: string, nonce: string, jsons: Record<string, unknown>[]) => ({
  version_info: version,
  nonce,
  type_url: T.cluster,
  resources: jsons.map((j) => any(T.cluster, j)),
});

t.test('SotW: unchanged resources are not decoded again', async (t) => {
  const { type, decodes } = counting(clusterType);
  const N = 1000;
  const all = Array.from({ length: N }, (_, i) => clusterJson(`c${i}`));
  const o1 = sotwOnResponse(sotwInitial(T.cluster, true), type, sotw('1', 'n1', all));
  if (o1.kind !== 'ack') return t.fail(o1.detail);
  t.equal(decodes(), N, 'first response: every resource decoded');
  t.equal(o1.changes.upserted.length, N);

  const changed = [...all];
  changed[500] = clusterJson('c500', { connect_timeout: '7s' });
  const o2 = sotwOnResponse(o1.state, type, sotw("2", "n2", [...changed].reverse()));
  if (o2.kind !== 'ack') return t.fail(o2.detail);
  t.equal(decodes() - N, 1, 'one changed resource among 1000 (in another order): one decode');
  t.same(o2.changes.upserted.map((e) => e.name), ['c500']);
  t.same(o2.changes.removed, []);
  t.equal(o2.state.resources.get('c7')?.version, '1', 'an unchanged resource keeps the version that last changed it');
  t.equal(o2.state.resources.get('c500')?.version, '2');
  t.equal(o2.state.versionInfo, '2');

  const before = decodes();
  const o3 = sotwOnResponse(o2.state, type, sotw('3', 'n3', changed.slice(1)));
  if (o3.kind !== 'ack') return t.fail(o3.detail);
  t.equal(decodes() - before, 0, 'unchanged resource: zero decodes');
  t.same(o3.changes.removed, ['c0'], 'a missing LDS/CDS resource is still removed');

  // a byte-identical duplicate is still a duplicate, decoded or not
  const dup = sotwOnResponse(o3.state, type, sotw('4', 'n4', [clusterJson('c1'), clusterJson('c1')]));
  t.equal(dup.kind, 'nack');
  t.match(dup.kind === 'nack' ? dup.detail : '', /duplicate resource name "c1"/);
});

t.test('SotW EDS: a partial response does not make the others decode again', async (t) => {
  const { type, decodes } = counting(loadAssignmentType);
  const cla = (n: string) => any(T.endpoint, claJson(n, [['10.0.0.1', 80]]));
  const resp = (v: string, names: string[]) => ({ version_info: v, nonce: v, type_url: T.endpoint, resources: names.map(cla) });
  const o1 = sotwOnResponse(sotwInitial(T.endpoint, false, ['a', 'b']), type, resp('1', ['a', 'b']));
  if (o1.kind !== 'ack') return t.fail();
  const o2 = sotwOnResponse(o1.state, type, resp('2', ['a']));
  if (o2.kind !== 'ack') return t.fail();
  t.same(o2.changes.removed, [], 'EDS: a resource absent from a response is kept');
  const o3 = sotwOnResponse(o2.state, type, resp('3', ['b', 'a']));
  if (o3.kind !== 'ack') return t.fail();
  t.equal(decodes(), 2, 'a and b decoded once each over three responses');
  t.same(o3.changes.upserted, []);
});

t.test('Delta: a name both upserted and removed in one response is NACKed', async (t) => {
  const s = deltaOnStreamStart(deltaInitial(T.cluster, true)).state;
  const o = deltaOnResponse(s, clusterType, {
    system_version_info: '1',
    nonce: 'n1',
    type_url: T.cluster,
    resources: [{ name: 'a', version: '1', resource: any(T.cluster, clusterJson('a')), aliases: [] } as never],
    removed_resources: ['a'],
  });
  t.equal(o.kind, 'nack');
  if (o.kind !== 'nack') return;
  t.equal(o.detail, 'resource "a" is both updated and removed in one response');
  t.equal(o.request.error_detail?.message, o.detail);
  t.equal(o.request.response_nonce, 'n1');
  t.equal(o.state.resources.size, 0, 'neither applied');
});

t.test('subscription matching agrees with nameMatches (Set + globs, no scan)', async () => {
  const seg = fc.constantFrom('a', 'b', 'c');
  const name = fc.array(seg, { minLength: 1, maxLength: 4 }).map((p) => `xdstp://cp/T/${p.join('/')}`);
  const sub = fc.oneof(name, name.map((n) => n.slice(0, n.lastIndexOf('/') + 1) + '*'));
  fc.assert(
    fc.property(fc.array(sub, { maxLength: 6 }), name, (subs, n) => {
      const set = new Set(subs);
      if (subscribedTo(set, n) !== subs.some((s) => nameMatches(s, n))) throw new Error(`${JSON.stringify(subs)} ${n}`);
    }),
    { numRuns: 500 },
  );
});

function change<V>(type: ResourceType<V>, upserts: [string, Record<string, unknown>][], removed: string[] = []): ResourceChanges {
  return {
    typeUrl: type.typeUrl,
    upserted: upserts.map(([name, json]) => {
      const a = any(type.typeUrl, json);
      const decoded = decodeResourceJson(type.typeUrl, a.value);
      const value = type.decode(decoded, new Diagnostics(), 'r')!;
      return { name, version: '1', value, json: decoded, bytes: a.value };
    }),
    removed,
  };
}

t.test('assembler: dependent names follow the users index; an EDS update touches its users only', async (t) => {
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  a.apply([change(clusterType, [['x', clusterJson('x')], ['y', clusterJson('y', { eds_cluster_config: { eds_config: { ads: {} }, service_name: 'shared' } })], ['z', clusterJson('z', { eds_cluster_config: { eds_config: { ads: {} }, service_name: 'shared' } })]])]);
  t.same([...a.wanted(T.endpoint)].sort(), ['shared', 'x']);
  const g = a.wantedGeneration(T.endpoint);
  a.apply([change(clusterType, [['x', clusterJson('x', { connect_timeout: '3s' })]])]);
  t.equal(a.wantedGeneration(T.endpoint), g, 'same EDS names: generation unchanged');
  a.apply([change(clusterType, [['z', clusterJson('z')]])]);
  t.same([...a.wanted(T.endpoint)].sort(), ['shared', 'x', 'z']);
  t.not(a.wantedGeneration(T.endpoint), g);
  a.apply([change(clusterType, [], ['y'])]);
  t.same([...a.wanted(T.endpoint)].sort(), ['x', 'z'], 'shared left with its last user');
  const before = sink.calls.length;
  a.apply([change(loadAssignmentType, [['z', claJson('z', [['10.0.0.1', 80]])]])]);
  a.flush();
  t.same(sink.calls.slice(before).map((c) => (c.op === 'upsertCluster' ? `upsert ${c.cluster.name}` : c.op)), ['upsert z', 'commit']);
});

for (const apiType of ['GRPC', 'DELTA_GRPC'] as const) {
  t.test(`${apiType}: subscription changes in one tick make one DiscoveryRequest`, async (t) => {
    const cp = new ControlPlane();
    cp.setMesh(parseMesh({ listeners: [], services: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080 }] }] }));
    const port = await cp.listen(0);
    const sink = new RecordingSink();
    const node = { id: `batch-${apiType}`, cluster: 'test', metadata: {} };
    const client = new XdsClient({ node, servers: [{ address: '127.0.0.1', port }], apiType, sink, initialFetchTimeoutMs: 0 });
    const secretReqs: (DiscoveryRequest | DeltaDiscoveryRequest)[] = [];
    cp.server.on('request', (_node: string, req: DiscoveryRequest | DeltaDiscoveryRequest) => {
      if (req.type_url !== TYPE_URLS.secret) return;
      // Delta ACKs of the server's answers carry no subscription change: not counted.
      const d = req as DeltaDiscoveryRequest;
      if (apiType === 'DELTA_GRPC' && d.resource_names_subscribe.length === 0 && d.resource_names_unsubscribe.length === 0) return;
      secretReqs.push(req);
    });
    client.start();
    t.teardown(async () => {
      client.stop();
      await cp.close();
    });
    await sink.until(() => sink.clusters.has('web'));
    await client.initialized;
    // settle: whatever the start-up sent is not counted
    await new Promise((r) => setTimeout(r, 100));
    const base = secretReqs.length;
    client.subscribe(TYPE_URLS.secret, ['a']);
    client.subscribe(TYPE_URLS.secret, ['a', 'b']);
    client.subscribe(TYPE_URLS.secret, ['b', 'c']);
    await until('a secret request', () => secretReqs.length > base);
    await new Promise((r) => setTimeout(r, 200));
    const sent = secretReqs.slice(base);
    t.equal(sent.length, 1, 'three subscribe calls, one request changing the subscription');
    if (apiType === 'GRPC') t.same((sent[0] as DiscoveryRequest).resource_names, ['b', 'c']);
    else {
      t.same((sent[0] as DeltaDiscoveryRequest).resource_names_subscribe, ['b', 'c'], 'net change: "a" never reaches the server');
      t.same((sent[0] as DeltaDiscoveryRequest).resource_names_unsubscribe, []);
    }
  });
}
