/**
 * stats.PluginConfig decoding and the overrides' effect on label sets, against the
 * proxy's real labeled-metrics registry (what /stats/prometheus renders).
 */
import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../config/src/index.js';
import { LabeledRegistry } from '../../proxy/src/stats/labeled.js';
import { decodeStatsPluginConfig, HTTP_TAGS, TCP_TAGS } from '../src/index.js';
import { IstioMetrics } from '../src/metrics.js';

t.test('istiod\'s shapes decode: empty (outbound) and disable_host_header_fallback (inbound)', async (t) => {
  const d = new Diagnostics();
  const out = decodeStatsPluginConfig({}, d, 'f');
  const inb = decodeStatsPluginConfig({ disable_host_header_fallback: true }, d, 'f');
  t.same(d.errors, []);
  t.same(d.warnings, []);
  t.equal(out?.disableHostHeaderFallback, false);
  t.equal(out?.tcpReportingMs, 5000);
  t.equal(inb?.disableHostHeaderFallback, true);
});

t.test('Telemetry API overrides: drop, tags_to_remove, dimensions; reporter and durations', async (t) => {
  const d = new Diagnostics();
  const c = decodeStatsPluginConfig({
    reporter: 'SERVER_GATEWAY',
    tcp_reporting_duration: '15s',
    rescoping_duration: '24h',
    metrics: [
      { name: 'request_bytes', drop: true },
      { tags_to_remove: ['source_principal'] },
      { name: 'requests_total', dimensions: { request_host: 'request.host', destination_port: 'string(destination.port)', bogus: 'size(request.headers) > 2' } },
    ],
  }, d, 'f');
  t.same(d.errors, []);
  t.equal(d.warnings.length, 1);
  t.match(d.warnings[0]!.path, 'f.metrics[2].dimensions.bogus');
  t.equal(c?.reporter, 'SERVER_GATEWAY');
  t.equal(c?.tcpReportingMs, 15000);

  const reg = new LabeledRegistry();
  const m = new IstioMetrics(reg, c!);
  const tags = HTTP_TAGS.map((n) => `v_${n}`);
  m.reportRequest(tags, 12, 100, 200, { attribute: (p) => (p.join('.') === 'request.host' ? 'reviews:9080' : p.join('.') === 'destination.port' ? 9080 : undefined) });
  const text = reg.render();
  t.notMatch(text, /istio_request_bytes/, 'dropped metric is not produced');
  t.match(text, /istio_response_bytes_bucket\{/);
  t.notMatch(text, /source_principal=/, 'removed tag is gone from every metric');
  const line = text.split('\n').find((l) => l.startsWith('istio_requests_total{'))!;
  t.match(line, /,destination_port="9080",request_host="reviews:9080"\} 1$/, 'added dimensions in tag-name order, evaluated');
  t.match(text.split('\n').find((l) => l.startsWith('istio_response_bytes_count{'))!, /^istio_response_bytes_count\{reporter="v_reporter",[^}]*connection_security_policy="v_connection_security_policy"\} 1$/);
});

t.test('a standard tag overridden by an expression keeps its place, an invalid one removes it', async (t) => {
  const d = new Diagnostics();
  const c = decodeStatsPluginConfig({ metrics: [{ dimensions: { response_code: "'fixed'", request_protocol: 'size(x)' } }] }, d, 'f')!;
  const reg = new LabeledRegistry();
  new IstioMetrics(reg, c).reportRequest(HTTP_TAGS.map(() => 'x'), 1, 0, 0, { attribute: () => undefined });
  const line = reg.render().split('\n').find((l) => l.startsWith('istio_requests_total{'))!;
  t.match(line, /,response_code="fixed",/);
  t.notMatch(line, /request_protocol=/);
});

t.test('TCP metrics carry TCP labels (no response_code), one series reused per connection', async (t) => {
  const reg = new LabeledRegistry();
  const m = new IstioMetrics(reg, decodeStatsPluginConfig({}, new Diagnostics(), 'f')!);
  const s = m.tcpSeries(TCP_TAGS.map((n) => n));
  s.opened?.inc();
  s.sent?.inc(10);
  s.sent?.inc(5);
  const text = reg.render();
  t.match(text, /istio_tcp_sent_bytes_total\{[^}]*\} 15\n/);
  t.notMatch(text, /response_code/);
  t.equal(reg.counter('istio_tcp_sent_bytes_total', [...TCP_TAGS]).size, 1);
});

t.test('labeled families: bounded series, refusals counted, escaped values', async (t) => {
  const reg = new LabeledRegistry();
  const f = reg.counter('x_total', ['a'], 3);
  for (const v of ['1', '2', '3', '4', '5']) f.get([v]).inc();
  f.get(['1']).inc();
  t.equal(f.size, 3);
  t.equal(f.droppedSeries, 2);
  const text = reg.render();
  t.match(text, /x_total\{a="1"\} 2/);
  t.match(text, /pilotfish_labeled_series_dropped_total\{metric="x_total"\} 2/);
  reg.counter('y_total', ['v']).get(['a"b\\c\nd']).inc();
  t.match(reg.render(), /y_total\{v="a\\"b\\\\c\\nd"\} 1/);
  t.throws(() => reg.counter('x_total', ['b']), /other labels/);
});

t.test('the decoder never throws and reports bad input by path', async () => {
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('disable_host_header_fallback', 'tcp_reporting_duration', 'metrics', 'reporter', 'definitions', 'other'), fc.anything({ maxDepth: 3 })), (cfg) => {
      const d = new Diagnostics();
      const c = decodeStatsPluginConfig(cfg, d, 'f');
      if (c === undefined && d.errors.length === 0) throw new Error('undefined without an error');
      for (const p of [...d.errors, ...d.warnings]) if (!p.path.startsWith('f')) throw new Error(`path ${p.path}`);
      // Whatever decoded builds metrics without throwing.
      if (c) new IstioMetrics(new LabeledRegistry(), c).reportRequest(HTTP_TAGS.map(() => ''), 0, 0, 0);
    }),
    { numRuns: 1000 },
  );
});

t.test('getSplit finds the same series as get on the joined labels, for any split', async () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.array(fc.string({ maxLength: 4 }), { minLength: 3, maxLength: 3 }), fc.array(fc.string({ maxLength: 3 }), { minLength: 2, maxLength: 2 })), { minLength: 1, maxLength: 30 }), (ops) => {
      const reg = new LabeledRegistry();
      const f = reg.counter('c', ['a', 'b', 'c', 'd', 'e']);
      const prefixes = new Map<string, string[]>();
      for (const [p, s] of ops) {
        // The same prefix content is usually the same array (as the filter keeps it), sometimes a copy.
        const key = p.join('\u0001');
        const arr = prefixes.get(key) ?? p;
        prefixes.set(key, arr);
        const viaSplit = f.getSplit(arr, s);
        if (viaSplit !== f.get([...p, ...s])) throw new Error('different series');
        viaSplit.inc();
      }
      const total = [...f.all()].reduce((n, s) => n + s.value, 0);
      if (total !== ops.length) throw new Error(`counted ${total} of ${ops.length}`);
    }),
    { numRuns: 500 },
  );
});

t.test('reportRequestSplit (one trie walk for the four HTTP series) renders what reportRequest does', async () => {
  const config = decodeStatsPluginConfig({}, new Diagnostics(), 'f')!;
  const peerTag = fc.array(fc.constantFrom('a', 'b', 'unknown', ''), { minLength: 20, maxLength: 20 });
  const requestTags = fc.tuple(fc.constantFrom('http', 'grpc'), fc.constantFrom('200', '503', '404'), fc.constantFrom('', '14'), fc.constantFrom('-', 'UF', 'URX'), fc.constantFrom('unknown', 'none', 'mutual_tls'));
  fc.assert(
    fc.property(fc.array(peerTag, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), requestTags, fc.nat({ max: 5000 })), { minLength: 1, maxLength: 40 }), (peers, reports) => {
      const split = new LabeledRegistry();
      const joined = new LabeledRegistry();
      const viaSplit = new IstioMetrics(split, config);
      const viaJoined = new IstioMetrics(joined, config);
      for (const [i, request, ms] of reports) {
        const peer = peers[i % peers.length]!;
        // The request array is new per request, as the filter makes it.
        viaSplit.reportRequestSplit(peer, [...request], ms, ms * 2, ms * 3);
        viaJoined.reportRequest([...peer, ...request], ms, ms * 2, ms * 3);
      }
      const a = split.render();
      if (a !== joined.render()) throw new Error(`different output:\n${a}\n---\n${joined.render()}`);
      if (!a.includes(`istio_requests_total{`)) throw new Error('nothing recorded');
    }),
    { numRuns: 300 },
  );
});
