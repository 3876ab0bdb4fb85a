/** observe / runtime_probes decoding, flow filters and the flow-record format language (no BPF needed). */
import t from 'tap';
import fc from 'fast-check';
import { Diagnostics } from '../../config/src/index.js';
import { decodeFastPathConfig } from '../src/index.js';
import { matchesFilter, parseFlowFilter, type FlowRecord } from '../src/observe.js';
import { DEFAULT_FLOW_FORMAT, FLOW_COMMANDS, flowResponseFlags, parseFlowFormat } from '../../telemetry/src/flow-records.js';

const ext = (config: Record<string, unknown>) => ({ name: 'pilotfish.fastpath', typeUrl: 'pilotfish.fastpath', config });
const P = 'v';

t.test('observe and runtime_probes decode with defaults', async (t) => {
  const d = new Diagnostics();
  const c = decodeFastPathConfig(ext({ observe: { cgroup: '/sys/fs/cgroup/unified/kubepods/pod-1/' }, runtime_probes: {} }), d, P);
  t.same(d.errors, []);
  t.same(c?.observe, { cgroup: '/sys/fs/cgroup/unified/kubepods/pod-1/', workload: 'pod-1', events: true });
  t.same(c?.runtimeProbes, { stallMs: 200, logMs: 2000 });
  const d2 = new Diagnostics();
  const c2 = decodeFastPathConfig(ext({ observe: { cgroup: '/x', workload: 'reviews-v1', events: true, flow_log: { path: '/dev/stdout', format: '%UPSTREAM_CLUSTER% %FLOW(outcome)%\n' } } }), d2, P);
  t.same(d2.errors, []);
  t.same(c2?.observe?.flowLog, { path: '/dev/stdout', format: '%UPSTREAM_CLUSTER% %FLOW(outcome)%\n' });
});

const bad: [string, Record<string, unknown>, string][] = [
  ['no cgroup', { observe: {} }, `${P}.observe.cgroup`],
  ['workload', { observe: { cgroup: '/x', workload: 'a b"c' } }, `${P}.observe.workload`],
  ['events', { observe: { cgroup: '/x', events: 'yes' } }, `${P}.observe.events`],
  ['flow log without events', { observe: { cgroup: '/x', events: false, flow_log: { path: '/tmp/f' } } }, `${P}.observe.flow_log`],
  ['flow log format', { observe: { cgroup: '/x', flow_log: { path: '/tmp/f', format: '%REQ(:PATH)%' } } }, `${P}.observe.flow_log.format`],
  ['stall_ms', { runtime_probes: { stall_ms: -1 } }, `${P}.runtime_probes.stall_ms`],
  ['runtime_probes', { runtime_probes: true }, `${P}.runtime_probes`],
];
for (const [name, cfg, path] of bad) {
  t.test(`bad ${name} is an error at ${path}`, async (t) => {
    const d = new Diagnostics();
    t.equal(decodeFastPathConfig(ext(cfg), d, P), undefined);
    t.ok(d.errors.some((e) => e.path === path), `${d.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  });
}

t.test('decoding never throws, whatever observe holds', async () => {
  fc.assert(fc.property(fc.anything(), fc.anything(), (observe, runtime) => {
    const d = new Diagnostics();
    decodeFastPathConfig(ext({ observe, runtime_probes: runtime }), d, P);
  }), { numRuns: 300 });
});

const rec = (o: Partial<FlowRecord> = {}): FlowRecord => ({
  time: '2026-12-02T04:00:00.000Z', event: 'close', workload: 'w', direction: 'outbound', outcome: 'refused', protocol: 'TCP',
  pid: 42, comm: 'curl', local: '198.18.0.1:40000', remote: '198.18.0.2:80', destination: '198.18.0.2:80', service: 'web',
  via: 'direct', proxy_own: false, bytes_sent: 0, bytes_received: 0, duration_ms: 0.2, srtt_us: 0, retransmits: 0, errno: 111,
  connection_id: '7', ...o,
});

t.test('flow filters', async (t) => {
  const f = parseFlowFilter(new URLSearchParams('outcome=refused,timeout&service=web'));
  t.ok(f.ok);
  if (!f.ok) return;
  t.ok(matchesFilter(rec(), f.filter));
  t.notOk(matchesFilter(rec({ outcome: 'ok' }), f.filter));
  t.notOk(matchesFilter(rec({ service: null }), f.filter));
  const byPid = parseFlowFilter(new URLSearchParams('pid=42'));
  t.ok(byPid.ok && matchesFilter(rec({ pid: 42 }), byPid.filter) && !matchesFilter(rec({ pid: 7 }), byPid.filter), 'numbers match their text');
  t.match(parseFlowFilter(new URLSearchParams('bogus=1')), { ok: false, error: /unknown filter "bogus"/ });
  t.match(parseFlowFilter(new URLSearchParams('outcome=')), { ok: false });
  // an empty filter lets everything through; a filter on a field accepts exactly its listed values
  fc.assert(fc.property(fc.constantFrom('ok', 'refused', 'reset', 'timeout', 'error', 'aborted', 'open'), fc.subarray(['ok', 'refused', 'reset', 'timeout', 'error', 'aborted', 'open'], { minLength: 1 }), (o, allowed) => {
    const r = rec({ outcome: o as FlowRecord['outcome'] });
    const p = parseFlowFilter(new URLSearchParams(`outcome=${allowed.join(',')}`));
    return p.ok && matchesFilter(r, p.filter) === allowed.includes(o) && matchesFilter(r, {});
  }), { numRuns: 200 });
});

t.test('flow record format: Envoy commands that apply to connections', async (t) => {
  const f = parseFlowFormat('%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %RESPONSE_FLAGS% %UPSTREAM_TRANSPORT_FAILURE_REASON% %BYTES_SENT% %DURATION% %FLOW(comm)% %START_TIME(%Y-%m-%d)% %CONNECTION_ID% %FLOW(service):2%\n');
  t.ok(f.ok);
  if (!f.ok) return;
  t.equal(f.format.render(rec()), '198.18.0.2:80 web UF connection refused 0 0 curl 2026-12-02 7 we\n');
  t.equal(f.format.render(rec({ direction: 'inbound', outcome: 'ok', service: null })), '- - - - 0 0 curl 2026-12-02 7 -\n', 'missing values are -');
  t.match(parseFlowFormat('%REQ(:PATH)%'), { ok: false, error: /does not apply to connection flow records/ });
  t.match(parseFlowFormat('%FLOW%'), { ok: false, error: /needs a field name/ });
  t.match(parseFlowFormat('%BYTES_SENT(x)%'), { ok: false });
  t.match(parseFlowFormat('%BYTES_SENT'), { ok: false, error: /malformed/ });
  t.equal(flowResponseFlags('reset'), 'UC');
  t.equal(flowResponseFlags('ok'), '-');
  t.ok(parseFlowFormat(DEFAULT_FLOW_FORMAT).ok, 'the default format parses');
  // any mix of plain text and known commands parses, renders without throwing, and keeps the text
  const cmd = fc.constantFrom(...FLOW_COMMANDS.filter((c) => c !== 'FLOW' && c !== 'START_TIME').map((c) => `%${c}%`), '%FLOW(pid)%', '%START_TIME%');
  const text = fc.string({ maxLength: 8 }).filter((s) => !s.includes('%'));
  fc.assert(fc.property(fc.array(fc.tuple(text, cmd), { maxLength: 6 }), text, (pairs, tail) => {
    const src = pairs.map(([a, b]) => a + b).join('') + tail;
    const p = parseFlowFormat(src);
    if (!p.ok) return false;
    const out = p.format.render(rec());
    return pairs.every(([a]) => out.includes(a)) && out.endsWith(tail);
  }), { numRuns: 300 });
});
