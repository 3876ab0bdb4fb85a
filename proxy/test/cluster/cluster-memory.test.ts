/**
 * What a cluster costs a sidecar: Istio sends every sidecar without a Sidecar resource
 * every cluster of the mesh, so the runtime of an idle EDS cluster (10 endpoints, Istio's
 * ~55-character names) is paid thousands of times in every pod. Measured here as V8
 * heap per cluster after a full GC, its config and endpoints excluded (made first), and
 * with every behaviour that the savings could break checked on the same clusters:
 * /stats and Prometheus list every cluster stat, requests are balanced, and a diff
 * applies.
 */
import t from 'tap';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Diagnostics, decodeCluster, type Cluster, type Endpoint } from '../../../config/src/index.js';
import { ClusterRuntime } from '../../src/cluster/cluster.js';
import { StatsStore } from '../../src/stats/stats.js';
import { diff } from './helpers.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const N = 2000;
const E = 10;
const name = (i: number) => `outbound|9080||reviews-v${i}.bookinfo.svc.cluster.local`;

function eds(i: number): Cluster {
  const d = new Diagnostics();
  const c = decodeCluster({ name: name(i), type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {} } } }, d, 'cluster');
  if (!c || d.errors.length > 0) throw new Error(JSON.stringify(d.errors));
  return c;
}

function endpoints(i: number): Endpoint[] {
  return Array.from({ length: E }, (_, k) => {
    const address = `10.${(i >> 8) & 255}.${i & 255}.${k + 1}`;
    return { key: `${address}:8080`, address, port: 8080, hostname: '', weight: 1, priority: 0, locality: 'r/z/', localityWeight: 1, health: 'healthy' };
  });
}

function heap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

t.test(`an idle EDS cluster of ${E} endpoints costs at most 5 KB of heap`, async (t) => {
  const store = new StatsStore();
  const configs = Array.from({ length: N }, (_, i) => eds(i));
  const eps = configs.map((_, i) => endpoints(i));
  const warm = new ClusterRuntime(eds(-1), endpoints(0), store); // module-level structures (stat layouts) are made once
  const before = heap();
  const runtimes = configs.map((c, i) => new ClusterRuntime(c, eps[i]!, store));
  const perCluster = (heap() - before) / N;
  t.ok(perCluster < 5 * 1024, `${(perCluster / 1024).toFixed(2)} KB of V8 heap per cluster (was ~12 KB before stat blocks and lazy LB state)`);

  // Every cluster stat of every cluster is listed, zero where unused.
  const snap = new Map(store.snapshot());
  const last = `cluster.${name(N - 1)}.`;
  for (const s of ['upstream_rq_total', 'upstream_cx_active', 'upstream_rq_pending_overflow', 'lb_healthy_panic', 'update_empty']) t.equal(snap.get(last + s), 0, s);
  t.equal(snap.get(`${last}membership_total`), E);
  t.equal(snap.get(`${last}membership_healthy`), E);
  t.equal(snap.get(`${last}upstream_rq_time.count`), 0);
  const text = store.renderPrometheus();
  t.equal(text.match(/^envoy_cluster_upstream_rq_total\{/gm)?.length, N + 1);
  t.equal(text.match(/^envoy_cluster_upstream_rq_time_count\{/gm)?.length, N + 1);

  // The clusters still balance and take diffs.
  const c = runtimes[N - 1]!;
  const seen = new Set<string>();
  for (let i = 0; i < E; i++) seen.add(c.pick({ hash: NaN, exclude: undefined, connection: undefined, headers: undefined })!.key);
  t.equal(seen.size, E, 'round robin visits every host');
  c.applyDiff(diff({ removed: [eps[N - 1]![0]!.key] }));
  t.equal(c.stats.membership_total.value, E - 1);
  t.equal(c.stats.update_success.value, 1);
  t.equal(new Map(store.snapshot()).get(`${last}update_success`), 1);
  c.stats.upstream_rq_total.inc();
  t.equal(store.clusterScope(name(N - 1)).counter('upstream_rq_total').value, 1);
  await Promise.all([warm, ...runtimes].map((r) => r.close()));
});

t.test('outlier detection and health-check stats appear with their configuration', async (t) => {
  const store = new StatsStore();
  const d = new Diagnostics();
  const config = decodeCluster({
    name: name(1), type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: name(1), endpoints: [] },
    outlier_detection: { consecutive_5xx: 2, interval: '10s' },
  }, d, 'cluster')!;
  t.same(d.errors, []);
  const c = new ClusterRuntime(config, endpoints(1), store);
  const host = c.pick({ hash: NaN, exclude: undefined, connection: undefined, headers: undefined })!;
  c.reportOutcome(host, 503);
  c.reportOutcome(host, 503);
  const snap = new Map(store.snapshot());
  const p = `cluster.${name(1)}.outlier_detection.`;
  t.equal(snap.get(`${p}ejections_active`), 1);
  t.equal(snap.get(`${p}ejections_enforced_consecutive_5xx`), 1);
  t.equal(snap.get(`${p}ejections_detected_success_rate`), 0);
  t.equal(c.healthFlags(host).failedOutlierCheck, true);
  t.equal(c.stats.membership_healthy.value, E - 1);
  await c.close();
});
