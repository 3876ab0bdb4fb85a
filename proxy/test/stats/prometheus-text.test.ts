import t from 'tap';
import fc from 'fast-check';
import { StatsStore } from '../../src/stats/stats.js';

// The exposition is rendered by pilotfish itself (no OpenTelemetry SDK): Envoy's names and
// types, one `# TYPE` per family, label values escaped so any cluster name reads back.

function unescape(v: string): string {
  return v.replace(/\\(["\\n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

t.test('counters and gauges in Envoy format: no _total appended, no HELP, no OTel labels', async (t) => {
  const s = new StatsStore();
  const c = s.clusterScope('outbound|9080||reviews.default.svc.cluster.local');
  c.counter('upstream_rq_2xx').inc(2);
  c.counter('upstream_rq_total').inc(3);
  c.gauge('upstream_rq_active').set(1);
  s.httpScope('ingress').counter('downstream_rq_total').inc(7);
  const text = s.renderPrometheus();
  t.match(text, /^# TYPE envoy_cluster_upstream_rq_2xx counter\nenvoy_cluster_upstream_rq_2xx\{envoy_cluster_name="outbound\|9080\|\|reviews\.default\.svc\.cluster\.local"\} 2$/m);
  t.match(text, /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="[^"]+"\} 3$/m);
  t.match(text, /^# TYPE envoy_cluster_upstream_rq_active gauge\nenvoy_cluster_upstream_rq_active\{[^}]+\} 1$/m);
  t.match(text, /^envoy_http_downstream_rq_total\{envoy_http_conn_manager_prefix="ingress"\} 7$/m);
  t.notMatch(text, /otel_scope_name|target_info|_2xx_total|# HELP envoy_cluster_upstream_rq_2xx/);
});

t.test('any cluster name round-trips through the label escaping; every line is a valid sample or comment', async (t) => {
  fc.assert(fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20, unit: 'binary' }), { minLength: 1, maxLength: 5 }), fc.nat(1e9), (names, n) => {
    const s = new StatsStore();
    names.forEach((name, i) => s.clusterScope(name).counter('upstream_rq_total').inc(n + i));
    const lines = s.renderPrometheus().split('\n').filter((l) => l !== '');
    const seen = new Map<string, number>();
    for (const line of lines) {
      if (line.startsWith('#')) {
        if (!/^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|untyped)$/.test(line)) return false;
        continue;
      }
      const m = /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="((?:[^"\\\n]|\\["\\n])*)"\} (\d+)$/.exec(line);
      if (!m) return false;
      seen.set(unescape(m[1]!), Number(m[2]));
    }
    return names.every((name, i) => seen.get(name) === n + i) && seen.size === names.length;
  }));
  t.pass('property held');
});
