import t, { type Test } from 'tap';
import { BpfFastPath } from '../src/fastpath.js';
import type { FastPathConfig } from '../src/config.js';
import { bpfUnavailable, uniq } from './helpers/bpf.js';
import { Topology } from './helpers/netns.js';
import { until } from '../../test-support/wait.js';
import { buildPacket, parsePacket } from './helpers/packets.js';
import { CLIENT_MAC, ENDPOINTS, FIXTURES, GW_MAC, SERVICES, endpoint, type Verdict } from './fixtures/xdp-fixtures.js';

const VERDICTS: Verdict[] = ['ABORTED', 'DROP', 'PASS', 'TX', 'REDIRECT'];

const config = (forward: 'fib' | 'bounce'): FastPathConfig => ({
  returnInterfaces: [], redirectPeers: [], mode: 'native', forward, flowEvents: true, services: SERVICES,
});

async function start(t: { teardown(fn: () => unknown): void }, forward: 'fib' | 'bounce' = 'bounce', launcher?: string[]): Promise<BpfFastPath> {
  const fp = await BpfFastPath.start({ ...config(forward), ...(launcher ? { launcher } : {}) }, () => {});
  t.teardown(() => fp.close());
  for (const [cluster, eps] of Object.entries(ENDPOINTS)) fp.applyEndpointDiff({ cluster, added: eps, removed: [], changed: [] });
  await fp.sync();
  return fp;
}

const why = await bpfUnavailable();
if (why) {
  t.plan(0, `skip: xdp_lb BPF_PROG_TEST_RUN: ${why}`);
} else {
  t.test('fixtures', async (t) => {
    const fp = await start(t);
    for (const f of FIXTURES) {
      let input = 'rawHex' in f.packet ? Buffer.from(f.packet.rawHex, 'hex') : buildPacket(f.packet);
      if (f.truncateTo !== undefined) input = input.subarray(0, f.truncateTo);
      if (f.patch) Buffer.from(f.patch[1], 'hex').copy(input, f.patch[0]);
      const out = await fp.daemon.testRun(input);
      t.equal(VERDICTS[out.verdict], f.verdict, `${f.name}: verdict`);
      if (f.unchanged) t.same(out.packet.toString('hex'), input.toString('hex'), `${f.name}: bytes untouched`);
      if (f.expect) t.match(parsePacket(out.packet), f.expect, `${f.name}: rewritten frame`);
    }
    await fp.sync();
    const m = fp.metrics();
    t.equal(m.fastpath_rx_packets_total, FIXTURES.length, 'every packet counted');
    t.equal(m['fastpath_pass_reason_total{reason="fragment"}'], 2);
    t.equal(m['fastpath_pass_reason_total{reason="ip_options"}'], 1);
    t.equal(m['fastpath_pass_reason_total{reason="truncated"}'], 5);
    t.equal(m['fastpath_drops_total{reason="no_backend"}'], 1);
    t.equal(m.fastpath_reverse_nat_packets_total, 2);
    t.equal(m.fastpath_flow_hits_total, 1);
    t.equal(m.fastpath_flows_created_total, 5);
    t.equal(m.fastpath_map_errors_total, 0);
    // flow events reach TypeScript through the ring buffer
    await until('five flow events from the ring buffer', () => fp.recentEvents.length >= 5, { state: () => fp.recentEvents.length });
    t.equal(fp.recentEvents.length, 5, 'one flow event per new flow');
    t.match(fp.recentEvents[0]!.key, { src: '198.18.0.1', dst: '198.18.0.10', sport: 40000, dport: 80, proto: 6 });
  });

  t.test('established flows keep their backend when the backend set changes', async (t) => {
    const fp = await start(t);
    const spec = (sport: number) => buildPacket({ family: 4, proto: 'TCP', src: '198.18.0.1', dst: '198.18.0.10', sport, dport: 80, srcMac: CLIENT_MAC, dstMac: GW_MAC });
    const dst = async (sport: number) => parsePacket((await fp.daemon.testRun(spec(sport))).packet).dst;
    const ports = Array.from({ length: 40 }, (_, i) => 41000 + i);
    for (const p of ports) t.equal(await dst(p), '198.18.1.1');
    // add three backends, remove the original: new flows spread, old flows stay
    fp.applyEndpointDiff({
      cluster: 'web',
      added: [endpoint('198.18.1.4', 8080), endpoint('198.18.1.5', 8080), endpoint('198.18.1.6', 8080)],
      removed: ['198.18.1.1:8080'], changed: [],
    });
    await fp.sync();
    for (const p of ports) t.equal(await dst(p), '198.18.1.1', `flow ${p} still pinned`);
    const fresh = new Set<string>();
    for (let p = 42000; p < 42060; p++) fresh.add(await dst(p));
    t.notOk(fresh.has('198.18.1.1'), 'new flows never pick the removed backend');
    t.same([...fresh].sort(), ['198.18.1.4', '198.18.1.5', '198.18.1.6'], 'new flows spread over the new backends');
    const flow = await fp.lookupFlow({ src: '198.18.0.1', dst: '198.18.0.10', sport: 41000, dport: 80, proto: 6, family: 4 });
    t.match(flow, { backend: { address: '198.18.1.1', port: 8080 } }, 'flow entry readable from TypeScript');
  });

  // BPF_PROG_TEST_RUN's FIB lookup runs in the network namespace of the process that
  // calls it (the helper), through that namespace's loopback. So the helper runs in a
  // namespace this test builds, with forwarding on and exactly the routes it assumes;
  // the host's own routes and sysctls (container engines set ip_forward=1) play no part.
  const NEIGH_MAC = '02:00:00:00:00:99';
  async function fibNamespace(t: Test, withRoute: boolean): Promise<string[]> {
    const topo = new Topology(uniq());
    t.teardown(() => topo.destroy());
    const gw = topo.ns('fib');
    topo.sysctl(gw, 'net.ipv4.ip_forward=1');
    if (withRoute) {
      topo.link(gw, 'b0', '198.18.1.254/24', topo.ns('fibb'), 'b1', '198.18.1.253/24');
      topo.ip(gw, 'neigh', 'replace', '198.18.1.1', 'lladdr', NEIGH_MAC, 'dev', 'b0', 'nud', 'permanent');
    }
    return ['ip', 'netns', 'exec', gw];
  }
  const toVip = () => buildPacket({ family: 4, proto: 'TCP', src: '198.18.0.1', dst: '198.18.0.10', sport: 40000, dport: 80 });

  t.test('fib mode: rewritten packets without a route go to the stack', async (t) => {
    const fp = await start(t, 'fib', await fibNamespace(t, false));
    const out = await fp.daemon.testRun(toVip());
    t.equal(VERDICTS[out.verdict], 'PASS');
    t.match(parsePacket(out.packet), { dst: '198.18.1.1', dport: 8080, ipChecksumOk: true, l4ChecksumOk: true });
    await fp.sync();
    t.equal(fp.metrics()['fastpath_pass_reason_total{reason="fib_miss"}'], 1);
  });

  t.test('fib mode: with a route and a neighbour, rewritten packets are redirected there', async (t) => {
    const fp = await start(t, 'fib', await fibNamespace(t, true));
    const out = await fp.daemon.testRun(toVip());
    t.equal(VERDICTS[out.verdict], 'REDIRECT');
    t.match(parsePacket(out.packet), { dstMac: NEIGH_MAC, dst: '198.18.1.1', dport: 8080, ipChecksumOk: true, l4ChecksumOk: true });
    await fp.sync();
    t.notOk(fp.metrics()['fastpath_pass_reason_total{reason="fib_miss"}'], 'no fib miss');
  });
}
