/**
 * Memory: an accepted load assignment (EDS) does not keep its decoded value: once nothing
 * else holds it, a GC frees it, and reading `value` again decodes the same endpoints from
 * the wire bytes. Other types (clusters here) keep theirs.
 */
import t from 'tap';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setImmediate as tick } from 'node:timers/promises';
import { decodeResources } from '../src/decode-response.js';
import { clusterType, loadAssignmentType } from '../src/resource-types.js';
import { any, claJson, clusterJson, T } from './helpers.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** A WeakRef to what `read` returns; true if a full GC collected it (nothing kept it). */
async function collected(read: () => object): Promise<boolean> {
  const ref = new WeakRef(read());
  await tick(); // a WeakRef keeps its target alive until the current job ends
  gc();
  return ref.deref() === undefined;
}

t.test('a load assignment is decoded again from its bytes after a GC; a cluster stays decoded', async (t) => {
  const eds = decodeResources(loadAssignmentType, [{ version: '1', any: any(T.endpoint, claJson('c1', [['10.0.0.1', 8080], ['10.0.0.2', 8081]])) }]);
  const cds = decodeResources(clusterType, [{ version: '1', any: any(T.cluster, clusterJson('c1')) }]);
  if (!eds.ok || !cds.ok) throw new Error('fixtures do not decode');
  const cla = eds.entries[0]!;
  const expected = JSON.parse(JSON.stringify(cla.value)) as unknown;
  t.match(expected, { clusterName: 'c1' }, 'the fixture decodes to a load assignment');

  t.ok(await collected(() => cla.value as object), 'the decoded load assignment is collected once unreferenced');
  t.same(JSON.parse(JSON.stringify(cla.value)), expected, 'read again: the same endpoints, decoded from the bytes');
  const addresses = cla.value.endpoints.flatMap((g) => g.lbEndpoints.map((e) => `${e.address.address}:${e.address.port}`));
  t.same(addresses, ['10.0.0.1:8080', '10.0.0.2:8081'], 'the endpoints as sent');

  t.notOk(await collected(() => cds.entries[0]!.value as object), 'a decoded cluster is kept');
});
