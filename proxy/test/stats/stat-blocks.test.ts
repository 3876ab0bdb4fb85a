import t from 'tap';
import { defineStatBlock, StatsStore, type Counter, type Gauge, type TimeHistogram } from '../../src/stats/stats.js';

// A stat block's metrics are made on first use, but every stat of the block is in the
// scope from the start: /stats and Prometheus read it as zero until then, as before.

interface DemoStats {
  readonly rq_total: Counter;
  readonly active: Gauge;
  readonly rq_time: TimeHistogram;
}
const demo = defineStatBlock<DemoStats>({ rq_total: 'counter', active: 'gauge', rq_time: 'histogram' });
const hc = defineStatBlock<{ readonly attempt: Counter; readonly healthy: Gauge }>({ attempt: 'counter', healthy: 'gauge' }, 'health_check.');
const NAME = 'outbound|9080||reviews.bookinfo.svc.cluster.local';

const stats = (s: StatsStore) => new Map(s.snapshot());

t.test('unused block stats read as zero in /stats and Prometheus, then count', async (t) => {
  const s = new StatsStore();
  const b = demo(s.clusterScope(NAME));
  let snap = stats(s);
  t.equal(snap.get(`cluster.${NAME}.rq_total`), 0);
  t.equal(snap.get(`cluster.${NAME}.active`), 0);
  t.equal(snap.get(`cluster.${NAME}.rq_time.count`), 0);
  t.equal(snap.get(`cluster.${NAME}.rq_time.sum`), 0);
  let text = s.renderPrometheus();
  t.match(text, /^# TYPE envoy_cluster_rq_total counter\nenvoy_cluster_rq_total\{envoy_cluster_name="outbound\|9080\|\|reviews\.bookinfo\.svc\.cluster\.local"\} 0$/m);
  t.match(text, /^# TYPE envoy_cluster_active gauge\nenvoy_cluster_active\{[^}]+\} 0$/m);
  t.match(text, /^envoy_cluster_rq_time_bucket\{envoy_cluster_name="[^"]+",le="0\.5"\} 0$/m);
  t.match(text, /^envoy_cluster_rq_time_count\{envoy_cluster_name="[^"]+"\} 0$/m);

  b.rq_total.inc();
  b.rq_total.inc(2);
  b.active.set(4);
  b.rq_time.record(3);
  snap = stats(s);
  t.equal(snap.get(`cluster.${NAME}.rq_total`), 3);
  t.equal(snap.get(`cluster.${NAME}.active`), 4);
  t.equal(snap.get(`cluster.${NAME}.rq_time.count`), 1);
  t.equal(snap.get(`cluster.${NAME}.rq_time.sum`), 3);
  text = s.renderPrometheus();
  t.match(text, /^envoy_cluster_rq_total\{[^}]+\} 3$/m);
  t.match(text, /^envoy_cluster_active\{[^}]+\} 4$/m);
  t.match(text, /^envoy_cluster_rq_time_bucket\{envoy_cluster_name="[^"]+",le="1"\} 0$/m);
  t.match(text, /^envoy_cluster_rq_time_bucket\{envoy_cluster_name="[^"]+",le="5"\} 1$/m);
  t.match(text, /^envoy_cluster_rq_time_sum\{[^}]+\} 3$/m);
});

t.test('a block, the scope API and a second block of one scope share their metrics', async (t) => {
  const s = new StatsStore();
  const a = demo(s.clusterScope('c1'));
  a.rq_total.inc(5);
  t.equal(s.clusterScope('c1').counter('rq_total'), a.rq_total, 'scope.counter returns the block counter');
  const again = demo(s.clusterScope('c1')); // a cluster's runtime replaced: same stats
  t.equal(again.rq_total.value, 5);
  t.equal(again.active, a.active);
  // A gauge made through the scope before the block's first use of it is the block's.
  const g = s.clusterScope('c1').gauge('active');
  g.set(9);
  t.equal(a.active.value, 9);
  t.equal(stats(s).get('cluster.c1.rq_total'), 5);
});

t.test('a block over a scope whose stats came first, and blocks with a name prefix', async (t) => {
  const s = new StatsStore();
  const scope = s.clusterScope('c2');
  scope.counter('active'); // a counter named like the block's gauge: a different stat
  scope.counter('rq_total').inc(7);
  const b = demo(scope); // rq_total exists, active (gauge) and rq_time are appended
  t.equal(b.rq_total.value, 7);
  b.active.set(2);
  const h = hc(scope);
  h.attempt.inc();
  h.healthy.set(1);
  const snap = stats(s);
  t.equal(snap.get('cluster.c2.rq_total'), 7);
  t.equal(snap.get('cluster.c2.health_check.attempt'), 1);
  t.equal(snap.get('cluster.c2.health_check.healthy'), 1);
  t.equal(scope.counter('health_check.attempt'), h.attempt);
  t.equal(scope.gauge('active'), b.active);
  t.not(scope.counter('active') as unknown, b.active as unknown);
  t.match(s.renderPrometheus(), /^envoy_cluster_health_check_attempt\{envoy_cluster_name="c2"\} 1$/m);
});

t.test('many scopes with the same stats: every series rendered once, in one family each', async (t) => {
  const s = new StatsStore();
  const blocks = Array.from({ length: 50 }, (_, i) => demo(s.clusterScope(`outbound|80||svc${i}.ns.svc.cluster.local`)));
  blocks.forEach((b, i) => b.rq_total.inc(i));
  s.clusterScope('outbound|80||svc7.ns.svc.cluster.local').counter('extra').inc(); // one scope grows apart
  const text = s.renderPrometheus();
  t.equal(text.match(/^# TYPE envoy_cluster_rq_total counter$/gm)?.length, 1);
  t.equal(text.match(/^envoy_cluster_rq_total\{/gm)?.length, 50);
  t.equal(text.match(/^# TYPE envoy_cluster_rq_time histogram$/gm)?.length, 1);
  t.equal(text.match(/^envoy_cluster_rq_time_count\{/gm)?.length, 50);
  t.match(text, /^envoy_cluster_rq_total\{envoy_cluster_name="outbound\|80\|\|svc49\.ns\.svc\.cluster\.local"\} 49$/m);
  t.match(text, /^envoy_cluster_extra\{envoy_cluster_name="outbound\|80\|\|svc7\.ns\.svc\.cluster\.local"\} 1$/m);
  const snap = stats(s);
  t.equal(snap.get('cluster.outbound|80||svc49.ns.svc.cluster.local.rq_total'), 49);
  t.equal(snap.get('cluster.outbound|80||svc7.ns.svc.cluster.local.extra'), 1);
  t.equal([...snap.keys()].filter((k) => k.endsWith('.rq_total')).length, 50);
});

t.test('scopes that grow one stat at a time keep every stat (the root scope)', async (t) => {
  const s = new StatsStore();
  for (let i = 0; i < 300; i++) s.rootScope.counter(`server.stat_${i}`).inc(i);
  // Another scope takes the same first steps and then branches.
  const other = s.scope('other.', 'envoy_other_', {});
  for (let i = 0; i < 20; i++) other.counter(`server.stat_${i}`).inc();
  other.gauge('branch').set(3);
  for (let i = 0; i < 300; i++) t.equal(s.rootScope.counter(`server.stat_${i}`).value, i);
  const snap = stats(s);
  t.equal(snap.get('server.stat_299'), 299);
  t.equal(snap.get('other.branch'), 3);
  t.equal(snap.get('other.server.stat_19'), 1);
  t.equal(snap.get('other.server.stat_20'), undefined);
});
