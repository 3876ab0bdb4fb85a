import t from 'tap';
import { Diagnostics } from '../../config/src/index.js';
import { ConfigAssembler } from '../src/assembler.js';
import { decodeResourceJson } from '../src/protos.js';
import { clusterType, lbEndpointType, listenerType, loadAssignmentType, routeConfigurationType } from '../src/resource-types.js';
import type { ResourceChanges, ResourceType } from '../src/resource-type.js';
import { any, claJson, clusterJson, lbEndpointJson, listenerJson, RecordingSink, routeJson, T } from './helpers.js';

function change<V>(type: ResourceType<V>, upserts: [string, Record<string, unknown>][], removed: string[] = []): ResourceChanges {
  return {
    typeUrl: type.typeUrl,
    upserted: upserts.map(([name, json]) => {
      const a = any(type.typeUrl, json);
      const decoded = decodeResourceJson(type.typeUrl, a.value);
      const diag = new Diagnostics();
      const value = type.decode(decoded, diag, 'r');
      if (value === undefined) throw new Error(JSON.stringify(diag.errors));
      return { name, version: '1', value, json: decoded, bytes: a.value };
    }),
    removed,
  };
}

t.test('cluster waits for its endpoints; listener waits for its routes', async (t) => {
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  a.apply([change(clusterType, [['web', clusterJson('web')]])]);
  a.apply([change(listenerType, [['l', listenerJson('l', 8080, 'r')]])]);
  a.flush();
  t.same(sink.calls, [], 'nothing ready yet');
  t.same([...a.wanted(T.endpoint)], ['web']);
  t.same([...a.wanted(T.route)], ['r']);
  a.apply([change(loadAssignmentType, [['web', claJson('web', [['10.0.0.1', 80]])]])]);
  a.flush();
  t.same(sink.ops(), ['upsertCluster', 'commit']);
  a.apply([change(routeConfigurationType, [['r', routeJson('r', 'web')]])]);
  a.flush();
  t.same(sink.ops().slice(2), ['upsertRouteConfiguration', 'upsertListener', 'commit']);
});

t.test('EDS update of a warm cluster is a diff; a changed cluster is re-upserted with current endpoints', async (t) => {
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  a.apply([change(clusterType, [['web', clusterJson('web')]]), change(loadAssignmentType, [['web', claJson('web', [['10.0.0.1', 80], ['10.0.0.2', 80]])]])]);
  a.flush();
  a.apply([change(loadAssignmentType, [['web', claJson('web', [['10.0.0.2', 80], ['10.0.0.3', 80]])]])]);
  a.flush();
  const d = sink.calls.at(-2);
  t.equal(d?.op, 'applyEndpointDiff');
  if (d?.op === 'applyEndpointDiff') {
    t.same(d.diff.added.map((e) => e.key), ['10.0.0.3:80']);
    t.same(d.diff.removed, ['10.0.0.1:80']);
  }
  a.apply([change(clusterType, [['web', clusterJson('web', { connect_timeout: '2s' })]])]);
  a.flush();
  const up = sink.calls.at(-2);
  t.equal(up?.op === 'upsertCluster' && up.endpoints.map((e) => e.key).join(), '10.0.0.2:80,10.0.0.3:80');
  // an identical EDS update produces no sink call at all
  const n = sink.calls.length;
  a.apply([change(loadAssignmentType, [['web', claJson('web', [['10.0.0.2', 80], ['10.0.0.3', 80]])]])]);
  a.flush();
  t.equal(sink.calls.length, n);
});

t.test('successive EDS updates are each a diff against the endpoints the previous one left', async (t) => {
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  const eds = (...hosts: string[]) => change(loadAssignmentType, [['web', claJson('web', hosts.map((h) => [h, 80] as [string, number]))]]);
  a.apply([change(clusterType, [['web', clusterJson('web')]]), eds('10.0.0.1', '10.0.0.2', '10.0.0.3')]);
  a.flush();
  const steps: [string[], { added: string[]; removed: string[] }][] = [
    [['10.0.0.1', '10.0.0.3', '10.0.0.4'], { added: ['10.0.0.4:80'], removed: ['10.0.0.2:80'] }],
    [['10.0.0.3', '10.0.0.4', '10.0.0.5'], { added: ['10.0.0.5:80'], removed: ['10.0.0.1:80'] }],
    [['10.0.0.5'], { added: [], removed: ['10.0.0.3:80', '10.0.0.4:80'] }],
    [['10.0.0.5', '10.0.0.1'], { added: ['10.0.0.1:80'], removed: [] }],
  ];
  for (const [hosts, want] of steps) {
    a.apply([eds(...hosts)]);
    a.flush();
    const d = sink.calls.at(-2);
    t.equal(d?.op, 'applyEndpointDiff', hosts.join());
    if (d?.op === 'applyEndpointDiff') t.same({ added: d.diff.added.map((e) => e.key), removed: [...d.diff.removed].sort() }, want, hosts.join());
    t.same(sink.endpointKeys('web').sort(), hosts.map((h) => `${h}:80`).sort());
  }
});

t.test('does-not-exist: missing routes warm the listener with an empty route configuration', async (t) => {
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  a.apply([change(listenerType, [['l', listenerJson('l', 8080, 'gone')]])]);
  a.markMissing(T.route, 'gone');
  a.flush();
  t.same(sink.ops(), ['upsertRouteConfiguration', 'upsertListener', 'commit']);
  t.same(sink.routes.get('gone')?.virtualHosts, []);
});

t.test('LEDS: collection members become endpoints; changes are diffs by construction', async (t) => {
  const coll = 'xdstp://cp/envoy.config.endpoint.v3.LbEndpoint/web/a/*';
  const m = (k: string) => coll.slice(0, -1) + k;
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  const cla = { cluster_name: 'web', endpoints: [{ locality: { zone: 'a' }, leds_cluster_locality_config: { leds_config: { ads: {} }, leds_collection_name: coll } }] };
  a.apply([change(clusterType, [['web', clusterJson('web')]]), change(loadAssignmentType, [['web', cla]])]);
  a.flush();
  t.same(sink.calls, [], 'waits for the LEDS collection');
  t.same([...a.wanted(T.lbEndpoint)], [coll]);
  a.apply([change(lbEndpointType, [[m('1'), lbEndpointJson('10.0.0.1', 80)], [m('2'), lbEndpointJson('10.0.0.2', 80)]])]);
  a.flush();
  t.same(sink.endpointKeys('web'), ['10.0.0.1:80', '10.0.0.2:80']);
  t.equal(sink.clusters.get('web')?.endpoints.get('10.0.0.1:80')?.locality, '/a/');
  a.apply([change(lbEndpointType, [[m('2'), lbEndpointJson('10.0.0.2', 80, 'DRAINING')], [m('3'), lbEndpointJson('10.0.0.3', 80)]], [m('1')])]);
  a.flush();
  const d = sink.calls.at(-2);
  t.equal(d?.op, 'applyEndpointDiff');
  if (d?.op === 'applyEndpointDiff') {
    t.same(d.diff.added.map((e) => e.key), ['10.0.0.3:80']);
    t.same(d.diff.changed.map((e) => `${e.key} ${e.health}`), ['10.0.0.2:80 draining']);
    t.same(d.diff.removed, ['10.0.0.1:80']);
  }
  t.same(sink.endpointKeys('web'), ['10.0.0.2:80', '10.0.0.3:80']);
});

t.test('SDS: a TLS cluster waits for its secret', async (t) => {
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  const tls = {
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'cert', sds_config: { ads: {} } }] },
      },
    },
  };
  a.apply([change(clusterType, [['web', clusterJson('web', tls)]]), change(loadAssignmentType, [['web', claJson('web', [['10.0.0.1', 80]])]])]);
  a.flush();
  t.same([...a.wanted(T.secret)], ['cert']);
  t.same(sink.calls, []);
  a.apply([{ typeUrl: T.secret, upserted: [{ name: 'cert', version: '1', value: { name: 'cert', typeUrl: T.secret, config: {} }, json: {}, bytes: new Uint8Array() }], removed: [] }]);
  a.flush();
  t.same(sink.ops(), ['upsertSecret', 'upsertCluster', 'commit']);
});

t.test('removals', async (t) => {
  const sink = new RecordingSink();
  const a = new ConfigAssembler(sink);
  a.apply([change(clusterType, [['web', clusterJson('web')]]), change(loadAssignmentType, [['web', claJson('web', [['10.0.0.1', 80]])]])]);
  a.apply([change(listenerType, [['l', listenerJson('l', 8080, 'r')]]), change(routeConfigurationType, [['r', routeJson('r', 'web')]])]);
  a.flush();
  a.apply([change(listenerType, [], ['l']), change(clusterType, [], ['web'])]);
  t.same(a.wanted(T.route).size, 0);
  t.same(a.wanted(T.endpoint).size, 0);
  a.apply([change(routeConfigurationType, [], ['r'])]);
  a.flush();
  t.same(sink.ops().slice(-4), ['removeListener', 'removeCluster', 'removeRouteConfiguration', 'commit']);
});
