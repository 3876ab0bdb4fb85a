import t from 'tap';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from './helpers.js';

t.test("admin endpoints answer the way Envoy's do", async (t) => {
  const up = await startUpstream(t, 'up');
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`, staticCluster('up', [up.port])));
  for (let i = 0; i < 3; i++) t.equal((await get(p.port(), '/x', { host: 'h' })).status, 200);
  const admin = p.adminPort!;

  t.same(await get(admin, '/ready').then((r) => [r.status, r.body]), [200, 'LIVE\n']);
  const info = JSON.parse((await get(admin, '/server_info')).body) as { state: string; version: string };
  t.equal(info.state, 'LIVE');
  t.match(info.version, /^pilotfish\//);

  const stats = JSON.parse((await get(admin, '/stats?format=json&filter=^cluster\\.up\\.upstream_rq_2xx$')).body) as { stats: { name: string; value: number }[] };
  t.same(stats.stats, [{ name: 'cluster.up.upstream_rq_2xx', value: 3 }], 'filtered JSON stats');

  const prom = (await get(admin, '/stats/prometheus')).body;
  t.match(prom, /envoy_cluster_upstream_rq_total\{envoy_cluster_name="up"[^}]*\} 3/, 'counter with Envoy tag names');
  t.match(prom, /# TYPE envoy_cluster_upstream_rq_time histogram/);
  t.match(prom, /envoy_cluster_upstream_rq_time_bucket\{envoy_cluster_name="up",le="\+Inf"\} 3/, 'histogram buckets');
  t.match(prom, /envoy_http_downstream_rq_total\{envoy_http_conn_manager_prefix="ingress"[^}]*\} 3/);

  const dump = JSON.parse((await get(admin, '/config_dump')).body) as { configs: { '@type': string }[] };
  t.ok(dump.configs.some((c) => c['@type'].endsWith('ClustersConfigDump')), 'clusters in config_dump');
  t.ok(dump.configs.some((c) => c['@type'].endsWith('ListenersConfigDump')), 'listeners in config_dump');
  t.match((await get(admin, '/clusters')).body, new RegExp(`up::127\\.0\\.0\\.1:${up.port}::health_flags::healthy`));

  t.equal((await get(admin, '/healthcheck/fail')).status, 405, 'mutating paths need POST');
  t.equal((await get(admin, '/healthcheck/fail', {}, 'POST')).status, 200);
  t.same(await get(admin, '/ready').then((r) => [r.status, r.body]), [503, 'HEALTH_CHECK_FAILED\n'], 'fails /ready without draining');
  t.equal((await get(p.port(), '/x', { host: 'h' })).status, 200, 'traffic still served');
  await get(admin, '/healthcheck/ok', {}, 'POST');
  t.equal((await get(admin, '/ready')).status, 200);

  t.match((await get(admin, '/logging?level=debug', {}, 'POST')).body, /pilotfish: debug/);
  t.equal((await get(admin, '/logging?level=loud', {}, 'POST')).status, 400);
  t.equal((await get(admin, '/nope')).status, 404);

  t.equal((await get(admin, '/drain_listeners?graceful', {}, 'POST')).status, 200);
  t.same(await get(admin, '/ready').then((r) => [r.status, r.body]), [503, 'DRAINING\n']);
  await t.rejects(get(p.port(), '/x', { host: 'h' }), 'listener closed after drain_listeners');
});
