import t from 'tap';
import { deltaInitial, deltaOnResponse, deltaOnStreamStart, deltaSetNames } from '../src/delta-state.js';
import { clusterType, lbEndpointType, loadAssignmentType } from '../src/resource-types.js';
import { any, claJson, clusterJson, lbEndpointJson, T } from './helpers.js';

const res = (name: string, version: string, typeUrl: string, json: Record<string, unknown>) => ({ name, version, resource: any(typeUrl, json) });
const resp = (nonce: string, resources: ReturnType<typeof res>[], removed: string[] = [], type_url: string = T.cluster) => ({ system_version_info: 'sv-' + nonce, nonce, type_url, resources, removed_resources: removed });

t.test('wildcard: legacy empty subscribe, per-resource versions, removed_resources', async (t) => {
  const start = deltaOnStreamStart(deltaInitial(T.cluster, true));
  t.same(start.request?.resource_names_subscribe, []);
  t.same(start.request?.initial_resource_versions, {});
  const o1 = deltaOnResponse(start.state, clusterType, resp('n1', [res('a', '1', T.cluster, clusterJson('a')), res('b', '1', T.cluster, clusterJson('b'))]));
  if (o1.kind !== 'ack') return t.fail();
  t.same(o1.request, { type_url: T.cluster, resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: 'n1' });
  t.equal(o1.systemVersion, 'sv-n1');
  const o2 = deltaOnResponse(o1.state, clusterType, resp('n2', [res('b', '2', T.cluster, clusterJson('b', { connect_timeout: '2s' }))], ['a', 'never-had']));
  if (o2.kind !== 'ack') return t.fail();
  t.same(o2.changes.upserted.map((e) => `${e.name}@${e.version}`), ['b@2']);
  t.same(o2.changes.removed, ['a']);
  t.same([...o2.state.resources.keys()], ['b']);
});

t.test('reconnect sends initial_resource_versions; wildcard with names uses "*"', async (t) => {
  let s = deltaOnStreamStart(deltaInitial(T.cluster, true)).state;
  const o = deltaOnResponse(s, clusterType, resp('n1', [res('a', 'va', T.cluster, clusterJson('a'))]));
  if (o.kind !== 'ack') return t.fail();
  s = o.state;
  const again = deltaOnStreamStart(s);
  t.same(again.request?.initial_resource_versions, { a: 'va' });
  t.same(again.request?.resource_names_subscribe, []);
  const withNames = deltaOnStreamStart({ ...s, names: new Set(['x']) });
  t.same(withNames.request?.resource_names_subscribe, ['*', 'x']);
});

t.test('NACK: nonce echoed, error_detail set, versions unchanged', async (t) => {
  const s0 = deltaOnStreamStart(deltaInitial(T.cluster, true)).state;
  const ok = deltaOnResponse(s0, clusterType, resp('n1', [res('a', '1', T.cluster, clusterJson('a'))]));
  if (ok.kind !== 'ack') return t.fail();
  const bad = deltaOnResponse(ok.state, clusterType, resp('n2', [res('a', '2', T.cluster, clusterJson('a', { connect_timeout: '-1s' }))], []));
  t.equal(bad.kind, 'nack');
  if (bad.kind !== 'nack') return;
  t.equal(bad.request.response_nonce, 'n2');
  t.match(bad.request.error_detail?.message, /connect_timeout/);
  t.equal(bad.state.resources.get('a')?.version, '1');
  t.same(bad.request.resource_names_subscribe, []);
});

t.test('subscribe/unsubscribe are deltas; unsubscribed resources dropped', async (t) => {
  let s = deltaInitial(T.endpoint, false);
  const off = deltaSetNames(s, ['a'], false);
  t.notOk(off.request, 'not connected: state only');
  s = deltaOnStreamStart(off.state).state;
  const add = deltaSetNames(s, ['a', 'b', 'c'], true);
  t.same(add.request?.resource_names_subscribe, ['b', 'c']);
  t.same(add.request?.resource_names_unsubscribe, []);
  const o = deltaOnResponse(add.state, loadAssignmentType, resp('n1', ['a', 'b', 'c'].map((n) => res(n, '1', T.endpoint, claJson(n, [['10.0.0.1', 80]]))), [], T.endpoint));
  if (o.kind !== 'ack') return t.fail();
  const drop = deltaSetNames(o.state, ['a'], true);
  t.same(drop.request?.resource_names_subscribe, []);
  t.same(drop.request?.resource_names_unsubscribe, ['b', 'c']);
  t.same([...drop.changes.removed].sort(), ['b', 'c']);
  t.same(deltaOnStreamStart(drop.state).request?.initial_resource_versions, { a: '1' });
});

t.test('LEDS collections: glob subscription matches its members', async (t) => {
  const coll = 'xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/web/*';
  const member = (k: string) => coll.slice(0, -1) + k;
  const s = deltaOnStreamStart(deltaSetNames(deltaInitial(T.lbEndpoint, false), [coll], false).state);
  t.same(s.request?.resource_names_subscribe, [coll]);
  const o = deltaOnResponse(s.state, lbEndpointType, resp('n1', [res(member('e1'), '1', T.lbEndpoint, lbEndpointJson('10.0.0.1', 80)), res('xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/other/e9', '1', T.lbEndpoint, lbEndpointJson('10.0.0.9', 80))], [], T.lbEndpoint));
  if (o.kind !== 'ack') return t.fail();
  t.same(o.changes.upserted.map((e) => e.name), [member('e1')], 'non-member ignored');
  const o2 = deltaOnResponse(o.state, lbEndpointType, resp('n2', [], [member('e1')], T.lbEndpoint));
  if (o2.kind !== 'ack') return t.fail();
  t.same(o2.changes.removed, [member('e1')]);
  const un = deltaSetNames(o.state, [], true);
  t.same(un.changes.removed, [member('e1')]);
  t.same(un.request?.resource_names_unsubscribe, [coll]);
});
