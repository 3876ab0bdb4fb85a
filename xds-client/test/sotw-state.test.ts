import t from 'tap';
import { sotwInitial, sotwOnResponse, sotwOnStreamStart, sotwSetNames } from '../src/sotw-state.js';
import { clusterType, loadAssignmentType } from '../src/resource-types.js';
import { any, claJson, clusterJson, T } from './helpers.js';

const resp = (version: string, nonce: string, resources: ReturnType<typeof any>[], type_url: string = T.cluster) => ({ version_info: version, nonce, type_url, resources });

t.test('wildcard CDS: first request, ACK carries version and nonce, absent resource is removed', async (t) => {
  let s = sotwInitial(T.cluster, true);
  const start = sotwOnStreamStart(s);
  t.same(start.request, { type_url: T.cluster, version_info: '', resource_names: [], response_nonce: '' });
  s = start.state;
  const o1 = sotwOnResponse(s, clusterType, resp('v1', 'n1', [any(T.cluster, clusterJson('a')), any(T.cluster, clusterJson('b'))]));
  t.equal(o1.kind, 'ack');
  t.same(o1.request, { type_url: T.cluster, version_info: 'v1', resource_names: [], response_nonce: 'n1' });
  if (o1.kind !== 'ack') return;
  t.same(o1.changes.upserted.map((e) => e.name), ['a', 'b']);
  const o2 = sotwOnResponse(o1.state, clusterType, resp('v2', 'n2', [any(T.cluster, clusterJson('b'))]));
  if (o2.kind !== 'ack') return t.fail('expected ack');
  t.same(o2.changes.upserted, [], 'unchanged b is not re-reported');
  t.same(o2.changes.removed, ['a']);
  t.same([...o2.state.resources.keys()], ['b']);
});

t.test('NACK echoes the nonce, repeats the last good version, keeps resources', async (t) => {
  const s0 = sotwOnStreamStart(sotwInitial(T.cluster, true)).state;
  const ok = sotwOnResponse(s0, clusterType, resp('v1', 'n1', [any(T.cluster, clusterJson('a'))]));
  if (ok.kind !== 'ack') return t.fail();
  const bad = sotwOnResponse(ok.state, clusterType, resp('v2', 'n2', [any(T.cluster, clusterJson('a', { connect_timeout: '-1s' })), any(T.cluster, clusterJson('c'))]));
  t.equal(bad.kind, 'nack');
  if (bad.kind !== 'nack') return;
  t.equal(bad.request.response_nonce, 'n2');
  t.equal(bad.request.version_info, 'v1');
  t.match(bad.request.error_detail?.message, /resources\[0\]/);
  t.same([...bad.state.resources.keys()], ['a']);
  t.equal(bad.state.versionInfo, 'v1');
});

t.test('undecodable bytes and wrong type URL are NACKed, not thrown', async (t) => {
  const s0 = sotwOnStreamStart(sotwInitial(T.cluster, true)).state;
  const o = sotwOnResponse(s0, clusterType, resp('v1', 'n1', [{ type_url: T.cluster, value: new Uint8Array([0xff, 0xff, 0xff]) }]));
  t.equal(o.kind, 'nack');
  const o2 = sotwOnResponse(s0, clusterType, resp('v1', 'n1', [any(T.endpoint, claJson('x', []))]));
  t.equal(o2.kind, 'nack');
  if (o2.kind === 'nack') t.match(o2.detail, /ClusterLoadAssignment/);
});

t.test('EDS by name: subset responses do not remove, unsubscribe drops, names sorted', async (t) => {
  let s = sotwInitial(T.endpoint, false);
  t.notOk(sotwOnStreamStart(s).request, 'nothing to ask for yet');
  const sub = sotwSetNames(s, ['b', 'a']);
  t.same(sub.request?.resource_names, ['a', 'b']);
  s = sub.state;
  const o1 = sotwOnResponse(s, loadAssignmentType, resp('1', 'n1', [any(T.endpoint, claJson('a', [['10.0.0.1', 80]])), any(T.endpoint, claJson('b', [['10.0.0.2', 80]]))], T.endpoint));
  if (o1.kind !== 'ack') return t.fail();
  const o2 = sotwOnResponse(o1.state, loadAssignmentType, resp('2', 'n2', [any(T.endpoint, claJson('a', [['10.0.0.3', 80]]))], T.endpoint));
  if (o2.kind !== 'ack') return t.fail();
  t.same(o2.changes.removed, []);
  t.same([...o2.state.resources.keys()].sort(), ['a', 'b']);
  const un = sotwSetNames(o2.state, ['a']);
  t.same(un.changes.removed, ['b']);
  t.same(un.request, { type_url: T.endpoint, version_info: '2', resource_names: ['a'], response_nonce: 'n2' });
  // a late response naming an unsubscribed resource is ignored
  const o3 = sotwOnResponse(un.state, loadAssignmentType, resp('3', 'n3', [any(T.endpoint, claJson('b', [['10.0.0.9', 80]]))], T.endpoint));
  if (o3.kind !== 'ack') return t.fail();
  t.same(o3.changes.upserted, []);
});

t.test('reconnect: nonce reset, version and names kept', async (t) => {
  const s0 = sotwSetNames(sotwInitial(T.endpoint, false), ['a']).state;
  const o = sotwOnResponse(s0, loadAssignmentType, resp('7', 'n9', [any(T.endpoint, claJson('a', [['10.0.0.1', 80]]))], T.endpoint));
  if (o.kind !== 'ack') return t.fail();
  const r = sotwOnStreamStart(o.state);
  t.same(r.request, { type_url: T.endpoint, version_info: '7', resource_names: ['a'], response_nonce: '' });
  t.equal(r.state.resources.size, 1);
});
