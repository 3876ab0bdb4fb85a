import t from 'tap';
import { ControlPlane, parseMesh, type MeshEndpoint } from '../../controlplane/src/index.js';
import { XdsClient, TYPE_URLS, type ApiType } from '../src/index.js';
import { RecordingSink } from './helpers.js';
import { until } from '../../test-support/wait.js';

const node = { id: 'node-1', cluster: 'test', metadata: {} };

function mesh(eps: Partial<MeshEndpoint>[], leds = false) {
  return parseMesh({
    listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', service: 'web' }] }],
    services: [{ name: 'web', leds, endpoints: eps }],
  });
}

const ep = (i: number, zone = 'a') => ({ address: `10.0.0.${i}`, port: 8080, zone });

async function setup(t: { teardown(fn: () => unknown): void }, apiType: ApiType, leds = false, timeoutMs = 15_000) {
  const cp = new ControlPlane();
  cp.setMesh(mesh([ep(1), ep(2)], leds));
  const port = await cp.listen(0);
  const sink = new RecordingSink();
  const client = new XdsClient({ node, servers: [{ address: '127.0.0.1', port }], apiType, sink, initialFetchTimeoutMs: timeoutMs, backoff: { baseMs: 50, maxMs: 200 } });
  client.start();
  t.teardown(async () => {
    client.stop();
    await cp.close();
  });
  return { cp, port, sink, client };
}


for (const apiType of ['GRPC', 'DELTA_GRPC'] as const) {
  t.test(`${apiType}: warm cluster with endpoints, listener with its routes, one commit per response`, async (t) => {
    const { cp, sink, client } = await setup(t, apiType);
    await sink.until(() => sink.listeners.has('ingress') && sink.clusters.has('web'));
    await client.initialized;
    t.same(sink.endpointKeys('web'), ['10.0.0.1:8080', '10.0.0.2:8080']);
    t.ok(sink.routes.has('ingress'));
    // the cluster is never pushed without endpoints, the listener never before its routes
    const ops = sink.ops();
    t.ok(ops.indexOf('upsertRouteConfiguration') < ops.indexOf('upsertListener'));
    const up = sink.calls.find((c) => c.op === 'upsertCluster');
    t.equal(up?.op === 'upsertCluster' && up.endpoints.length, 2);

    // one endpoint added, one becomes terminating -> one diff
    const before = sink.calls.length;
    const v = cp.setEndpoints('web', [ep(1), { ...ep(2), terminating: true }, ep(3)]);
    await cp.server.waitForAck(node.id, TYPE_URLS.endpoint, v);
    await sink.until(() => sink.endpointKeys('web').length === 3);
    const diffs = sink.calls.slice(before).filter((c) => c.op === 'applyEndpointDiff');
    t.equal(diffs.length, 1);
    const d = diffs[0]!.op === 'applyEndpointDiff' ? diffs[0]!.diff : undefined;
    t.same(d?.added.map((e) => e.key), ['10.0.0.3:8080']);
    t.same(d?.changed.map((e) => `${e.key}:${e.health}`), ['10.0.0.2:8080:draining']);
    t.same(d?.removed, []);
    t.same(sink.ops().slice(before), ['applyEndpointDiff', 'commit']);

    const stats = client.stats();
    t.equal(stats['control_plane.connected_state'], 1);
    t.ok((stats['eds.update_success'] as number) >= 2);
    const dump = client.configDump();
    const cds = dump.find((d) => d.typeUrl === TYPE_URLS.cluster);
    t.equal(cds?.resources[0]?.name, 'web');
    t.ok(cds?.resources[0]?.version);
    t.match(cds?.resources[0]?.resource, { '@type': TYPE_URLS.cluster, name: 'web', type: 'EDS' }, 'the resource as received (decoded again from its bytes)');
  });

  t.test(`${apiType}: NACK keeps last good config, then a fix is accepted`, async (t) => {
    const { cp, sink, client } = await setup(t, apiType);
    await sink.until(() => sink.clusters.has('web'));
    const nack = cp.server.waitForNack(node.id, TYPE_URLS.cluster);
    cp.setResources(TYPE_URLS.cluster, { web: { name: 'web', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, connect_timeout: '-5s' } });
    const ev = await nack;
    t.match(ev.error, /connect_timeout/);
    t.ok(ev.nonce !== '');
    t.equal(sink.clusters.get('web')?.cluster.connectTimeout, 1000, 'old cluster still serving');
    const st = client.stats();
    t.equal(st['cds.update_rejected'], 1);
    t.match(st['cds.last_error'] as string, /connect_timeout/);
    const v = cp.setResources(TYPE_URLS.cluster, { web: { name: 'web', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, connect_timeout: '3s' } });
    await cp.server.waitForAck(node.id, TYPE_URLS.cluster, v);
    await sink.until(() => sink.clusters.get('web')?.cluster.connectTimeout === 3000);
    t.same(sink.endpointKeys('web'), ['10.0.0.1:8080', '10.0.0.2:8080'], 'endpoints carried over');
  });

  t.test(`${apiType}: removal of a cluster and listener`, async (t) => {
    const { cp, sink } = await setup(t, apiType);
    await sink.until(() => sink.listeners.has('ingress') && sink.clusters.has('web'));
    cp.setMesh(parseMesh({ listeners: [], services: [] }));
    await sink.until(() => !sink.listeners.has('ingress') && !sink.clusters.has('web'));
    t.ok(sink.ops().includes('removeCluster'));
    t.ok(sink.ops().includes('removeListener'));
  });

  t.test(`${apiType}: control plane restart: last good config serves, then resync`, async (t) => {
    const { cp, port, sink, client } = await setup(t, apiType);
    await sink.until(() => sink.clusters.has('web') && sink.listeners.has('ingress'));
    await cp.close();
    await until('the client to see the control plane gone', () => client.stats()['control_plane.connected_state'] === 0);
    t.equal(client.stats()['control_plane.connected_state'], 0);
    t.ok(sink.clusters.has('web') && sink.listeners.has('ingress'), 'still serving while the control plane is gone');
    const cp2 = new ControlPlane();
    t.teardown(() => cp2.close());
    cp2.setMesh(mesh([ep(1), ep(2), ep(7)]));
    await cp2.listen(port);
    await sink.until(() => sink.endpointKeys('web').includes('10.0.0.7:8080'), 15_000);
    t.equal(client.stats()['control_plane.connected_state'], 1);
    t.ok((client.stats()['control_plane.reconnects'] as number) >= 1);
    t.ok(sink.listeners.has('ingress'));
  });
}

t.test('failover to the second server', async (t) => {
  const cp = new ControlPlane();
  cp.setMesh(mesh([ep(5)]));
  const port = await cp.listen(0);
  // a port nobody listens on: bind and close a server to get one
  const dead = new ControlPlane();
  const deadPort = await dead.listen(0);
  await dead.close();
  const sink = new RecordingSink();
  const client = new XdsClient({ node, servers: [{ address: '127.0.0.1', port: deadPort }, { address: '127.0.0.1', port }], apiType: 'GRPC', sink, backoff: { baseMs: 20, maxMs: 100 } });
  client.start();
  t.teardown(async () => {
    client.stop();
    await cp.close();
  });
  await sink.until(() => sink.endpointKeys('web').includes('10.0.0.5:8080'));
  t.equal(client.stats()['control_plane.server'], `127.0.0.1:${port}`);
});

t.test('DELTA_GRPC + LEDS: endpoint changes arrive as per-endpoint diffs', async (t) => {
  const { cp, sink } = await setup(t, 'DELTA_GRPC', true);
  await sink.until(() => sink.endpointKeys('web').length === 2);
  const before = sink.calls.length;
  const v = cp.setEndpoints('web', [ep(1), ep(3)]);
  await cp.server.waitForAck(node.id, TYPE_URLS.lbEndpoint, v);
  await sink.until(() => sink.endpointKeys('web').includes('10.0.0.3:8080'));
  t.same(sink.endpointKeys('web'), ['10.0.0.1:8080', '10.0.0.3:8080']);
  const calls = sink.calls.slice(before);
  t.notOk(calls.some((c) => c.op === 'upsertCluster'), 'no full rebuild');
  const diff = calls.find((c) => c.op === 'applyEndpointDiff');
  t.same(diff?.op === 'applyEndpointDiff' && diff.diff.added.map((e) => e.key), ['10.0.0.3:8080']);
  t.same(diff?.op === 'applyEndpointDiff' && diff.diff.removed, ['10.0.0.2:8080']);
  // a second zone is a new collection
  cp.setEndpoints('web', [ep(1), ep(3), ep(9, 'b')]);
  await sink.until(() => sink.endpointKeys('web').includes('10.0.0.9:8080'));
  t.equal(sink.clusters.get('web')?.endpoints.get('10.0.0.9:8080')?.locality, '/b/');
});

t.test('does-not-exist: an EDS cluster without a ClusterLoadAssignment warms empty after the timeout', async (t) => {
  const cp = new ControlPlane();
  cp.setMesh(mesh([ep(1)]));
  cp.setResources(TYPE_URLS.cluster, { web: { name: 'web', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} }, service_name: 'nowhere' }, connect_timeout: '1s' } });
  const port = await cp.listen(0);
  const sink = new RecordingSink();
  const client = new XdsClient({ node, servers: [{ address: '127.0.0.1', port }], apiType: 'DELTA_GRPC', sink, initialFetchTimeoutMs: 300 });
  client.start();
  t.teardown(async () => {
    client.stop();
    await cp.close();
  });
  await sink.until(() => sink.clusters.has('web'));
  t.same(sink.endpointKeys('web'), []);
  t.equal(client.stats()['eds.init_fetch_timeout'], 1);
});

t.test('a sink that refuses a resource turns the ACK into a NACK; the rest keeps serving', async (t) => {
  class PickySink extends RecordingSink {
    override upsertRouteConfiguration(config: Parameters<RecordingSink['upsertRouteConfiguration']>[0]): void {
      if (config.virtualHosts.some((v) => v.domains.includes('refuse.me'))) throw new Error('regex does not compile');
      super.upsertRouteConfiguration(config);
    }
  }
  const cp = new ControlPlane();
  cp.setMesh(mesh([ep(1)]));
  const port = await cp.listen(0);
  const sink = new PickySink();
  const client = new XdsClient({ node, servers: [{ address: '127.0.0.1', port }], apiType: 'GRPC', sink });
  client.start();
  t.teardown(async () => {
    client.stop();
    await cp.close();
  });
  await sink.until(() => sink.listeners.has('ingress'));
  const nack = cp.server.waitForNack(node.id, TYPE_URLS.route);
  cp.setMesh(parseMesh({
    listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10000, domains: ['refuse.me'], routes: [{ prefix: '/', service: 'web' }] }],
    services: [{ name: 'web', endpoints: [ep(1)] }],
  }));
  const ev = await nack;
  t.match(ev.error, /route configuration "ingress": regex does not compile/);
  t.equal(ev.version, '1', 'NACK repeats the last accepted version');
  t.same(sink.routes.get('ingress')?.virtualHosts[0]?.domains, ['*'], 'old routes still serving');
  t.equal(client.stats()['rds.update_rejected'], 1);
  cp.setMesh(mesh([ep(1)]));
  await cp.server.waitForAck(node.id, TYPE_URLS.route, cp.server.version(TYPE_URLS.route));
  t.equal(client.stats()['rds.update_rejected'], 1);
});
