/**
 * XDP L4 load balancing end to end: client, gateway (xdp_lb on both sides) and two
 * backends, each in its own network namespace, joined by veth pairs (198.18.0.0/15).
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { BpfFastPath } from '../src/fastpath.js';
import { xdpPassObjectPath } from '../src/build.js';
import type { FastPathConfig } from '../src/config.js';
import { bpfUnavailable, uniq } from './helpers/bpf.js';
import { Topology, waitLine } from './helpers/netns.js';
import { endpoint } from './fixtures/xdp-fixtures.js';

const app = (name: string) => fileURLToPath(new URL(`./apps/${name}`, import.meta.url));
const VIP = '198.18.100.10';

interface ConnReport { backend: string; sent: number; received: number; errors: string[] }

async function runClients(topo: Topology, ns: string, n: number, durationMs: number, during?: () => void | Promise<void>, port = 80): Promise<ConnReport[]> {
  const p = topo.spawn(ns, process.execPath, [app('flow-client.mjs'), VIP, String(port), String(n), String(durationMs), '20']);
  // deadlines generous for a loaded machine: they only bound how long a failure takes
  const summary = waitLine(p, /^\[/, durationMs + 60_000);
  await waitLine(p, /^RUNNING/, 60_000);
  await during?.();
  return JSON.parse(await summary) as ConnReport[];
}

const why = await bpfUnavailable();
if (why) {
  t.plan(0, `skip: gateway integration: ${why}`);
} else {
  t.test('client -> XDP gateway -> backends', async (t) => {
    const topo = new Topology(uniq());
    t.teardown(() => topo.destroy());
    const client = topo.ns('c');
    const gw = topo.ns('g');
    const b1 = topo.ns('b1');
    const b2 = topo.ns('b2');
    topo.link(client, 'c0', '198.18.0.1/24', gw, 'g0', '198.18.0.254/24');
    topo.link(b1, 'b0', '198.18.1.1/24', gw, 'gb1', '198.18.1.254/24');
    topo.link(b2, 'b0', '198.18.2.1/24', gw, 'gb2', '198.18.2.254/24');
    topo.ip(client, 'route', 'add', 'default', 'via', '198.18.0.254');
    topo.ip(b1, 'route', 'add', 'default', 'via', '198.18.1.254');
    topo.ip(b2, 'route', 'add', 'default', 'via', '198.18.2.254');
    topo.sysctl(gw, 'net.ipv4.ip_forward=1');
    // veth ends that receive XDP_REDIRECTed frames need an XDP program of their own
    for (const ns of [client, b1, b2]) topo.ip(ns, 'link', 'set', 'dev', ns === client ? 'c0' : 'b0', 'xdpdrv', 'obj', xdpPassObjectPath(), 'sec', 'xdp');

    for (const [ns, name, addr] of [[b1, 'b1', '198.18.1.1'], [b2, 'b2', '198.18.2.1']] as const) {
      await waitLine(topo.spawn(ns, process.execPath, [app('echo-server.mjs'), name, addr, '8080']), /READY/);
    }

    const config: FastPathConfig = {
      interface: 'g0', returnInterfaces: ['gb1', 'gb2'], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: true,
      services: [
        { cluster: 'web', address: VIP, port: 80, protocol: 'TCP', userspace: false, maglevTableSize: 1021 },
        { cluster: 'web', address: VIP, port: 53, protocol: 'UDP', userspace: false, maglevTableSize: 1021 },
        // same backends, but every packet of its flows goes through the AF_XDP forwarder
        { cluster: 'web', address: VIP, port: 8081, protocol: 'TCP', userspace: true, maglevTableSize: 1021 },
      ],
      launcher: ['ip', 'netns', 'exec', gw],
    };
    const fp = await BpfFastPath.start(config, (l) => t.comment(l));
    t.teardown(() => fp.close());
    t.same(fp.status().programs, ['xdp_lb', 'af_xdp_forwarder']);
    fp.applyEndpointDiff({ cluster: 'web', added: [endpoint('198.18.1.1', 8080), endpoint('198.18.2.1', 8080)], removed: [], changed: [] });
    await fp.sync();

    // flows spread over both backends; then b1 leaves the set while its flows run
    const reports = await runClients(topo, client, 24, 2500, async () => {
      await new Promise((r) => setTimeout(r, 800));
      fp.applyEndpointDiff({ cluster: 'web', added: [], removed: ['198.18.1.1:8080'], changed: [] });
      await fp.sync();
    });
    const on = (b: string) => reports.filter((r) => r.backend === b).length;
    t.ok(on('b1') > 0 && on('b2') > 0, `flows spread: b1=${on('b1')} b2=${on('b2')}`);
    for (const [i, r] of reports.entries()) {
      t.same(r.errors, [], `conn ${i} (${r.backend}) had no errors`);
      t.ok(r.sent > 50 && r.received === r.sent, `conn ${i}: ${r.received}/${r.sent} answered`);
    }

    const after = await runClients(topo, client, 12, 300);
    t.same([...new Set(after.map((r) => r.backend))], ['b2'], 'new flows avoid the removed backend');
    t.ok(after.every((r) => r.errors.length === 0 && r.received === r.sent));

    const udp = topo.spawn(client, process.execPath, [app('udp-ask.mjs'), VIP, '53', '8']);
    const answers: string[] = [];
    await waitLine(udp, /^(b2 q\d|TIMEOUT)/).then((l) => answers.push(l));
    t.match(answers[0], /^b2 q\d$/, 'UDP answered through the VIP');

    // user-space flows: AF_XDP in, raw socket out, replies translated back by xdp_lb
    const viaXsk = await runClients(topo, client, 4, 500, undefined, 8081);
    t.same([...new Set(viaXsk.map((r) => r.backend))], ['b2'], 'AF_XDP flows reach the remaining backend');
    t.ok(viaXsk.every((r) => r.errors.length === 0 && r.sent > 5 && r.received === r.sent), 'and are answered in full');

    await fp.sync();
    const m = fp.metrics();
    t.ok(m.fastpath_xsk_packets_total! > 20, `XDP handed ${m.fastpath_xsk_packets_total} packets to AF_XDP`);
    // The last few packets of closing flows (FIN/ACK) may still sit in the ring when the
    // counters are read; every packet the forwarder did take, it sent on.
    t.equal(m.fastpath_xsk_tx_packets_total, m.fastpath_xsk_rx_packets_total, `the forwarder sent on all ${m.fastpath_xsk_rx_packets_total} packets it took`);
    t.ok(m.fastpath_xsk_rx_packets_total! >= 0.9 * m.fastpath_xsk_packets_total!, `and took ${m.fastpath_xsk_rx_packets_total} of ${m.fastpath_xsk_packets_total}`);
    t.equal(m['fastpath_xsk_drops_total{reason="no_backend"}'], 0);
    t.ok(m.fastpath_redirect_packets_total! > 1000, `XDP_REDIRECT carried the flows (${m.fastpath_redirect_packets_total})`);
    t.ok(m.fastpath_reverse_nat_packets_total! > 1000, `replies translated in XDP (${m.fastpath_reverse_nat_packets_total})`);
    t.ok(m.fastpath_flows_created_total! >= 36, `flows created: ${m.fastpath_flows_created_total}`);
    t.equal(m['fastpath_drops_total{reason="no_backend"}'], 0);
    t.equal(m.fastpath_map_errors_total, 0);

    // per service and per backend: every client packet xdp_lb steered, once, under its service and its backend
    const svc = (port: number, proto: string, what: string) => m[`fastpath_service_${what}_total{service="web",vip="${VIP}:${port}/${proto}"}`] ?? 0;
    t.equal(svc(80, 'TCP', 'flows') + svc(53, 'UDP', 'flows'), m.fastpath_flows_created_total, 'flows per service add up to all flows');
    t.ok(svc(80, 'TCP', 'flows') >= 36 && svc(53, 'UDP', 'flows') >= 1, `TCP flows ${svc(80, 'TCP', 'flows')}, UDP ${svc(53, 'UDP', 'flows')}`);
    t.equal(svc(80, 'TCP', 'packets') + svc(53, 'UDP', 'packets'), m.fastpath_flow_hits_total! + m.fastpath_flows_created_total!, 'packets per service add up');
    t.ok(svc(80, 'TCP', 'bytes') > svc(80, 'TCP', 'packets') * 40, 'bytes per service');
    const onB2 = (what: string) => m[`fastpath_backend_${what}_total{service="web",vip="${VIP}:80/TCP",backend="198.18.2.1:8080"}`] ?? 0;
    t.ok(onB2('flows') >= 12 + on('b2'), `backend b2 flows ${onB2('flows')} (it took ${12 + on('b2')} TCP flows at least)`);
    t.ok(onB2('packets') > 0 && onB2('packets') <= svc(80, 'TCP', 'packets'), 'backend packets within its service');
    t.notOk(Object.keys(m).some((k) => k.includes('backend="198.18.1.1:8080"')), 'a removed backend has no series (its id may be reused, counters zeroed)');
    t.comment(JSON.stringify(m));
  });
}
