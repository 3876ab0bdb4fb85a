/**
 * Connection telemetry of a pod from the kernel. A real workload process in a cgroup
 * (and its own netns, veth 198.18.0.1/24 to a server namespace 198.18.0.2/24) opens
 * connections that succeed, are refused (closed port), reset (the server answers with
 * RST via SO_LINGER 0), time out (a blackholed address: a neighbour entry nobody
 * owns, SYN retries lowered in the namespace), go through a stand-in proxy
 * (connect4 interception) or around it, UDP connected and unconnected, and accepts
 * one; then RTT and retransmissions under tc netem. Each must show up on /flows
 * (the real HTTP handler) with the right outcome and service, in the per-service
 * metrics, and in the flow log.
 */
import t from 'tap';
import { mkdirSync, rmdirSync, existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { BpfFastPath } from '../src/fastpath.js';
import type { FastPathConfig } from '../src/config.js';
import type { FlowRecord } from '../src/observe.js';
import { serveFlows } from '../src/flows-endpoint.js';
import type { Endpoint } from '../../config/src/index.js';
import { bpfUnavailable, uniq } from './helpers/bpf.js';
import { Topology, waitLine } from './helpers/netns.js';

const app = (name: string) => fileURLToPath(new URL(`./apps/${name}`, import.meta.url));
const PROXY_PORT = 15001;

function cgroup2Root(): string | undefined {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && dir) return dir;
  }
  return undefined;
}

const ep = (address: string, port: number): Endpoint => ({
  key: `${address}:${port}`, address, port, hostname: '', weight: 1, priority: 0, locality: '', localityWeight: 1, health: 'healthy',
} as unknown as Endpoint);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const why = (await bpfUnavailable()) ?? (cgroup2Root() ? undefined : 'no cgroup v2 hierarchy mounted');
if (why) {
  t.plan(0, `skip: observe: ${why}`);
} else {
  t.test('every connection of the pod, with outcome, service, bytes, RTT and retransmits', async (t) => {
    const id = uniq();
    const cg = `${cgroup2Root()}/pf-obs-${id}`;
    mkdirSync(cg);
    const tmp = mkdtempSync(join(tmpdir(), 'pf-obs-'));
    const topo = new Topology(id);
    const procs: ChildProcess[] = [];
    t.teardown(async () => {
      topo.destroy();
      for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
      for (let i = 0; i < 50 && existsSync(cg); i++) {
        try { rmdirSync(cg); } catch { await sleep(50); }
      }
    });
    const w = topo.ns('w');
    const s = topo.ns('s');
    topo.link(w, 'd0', '198.18.0.1/24', s, 's0', '198.18.0.2/24');
    topo.sysctl(w, 'net.ipv4.tcp_syn_retries=1'); // a blackholed connect gives up after ~3 s
    // 198.18.0.99: frames go to a MAC nobody owns, so SYNs vanish without any ICMP
    topo.ip(w, 'neigh', 'replace', '198.18.0.99', 'lladdr', '02:00:00:00:00:99', 'dev', 'd0', 'nud', 'permanent');
    const server = topo.spawn(s, process.execPath, [app('flow-server.mjs'), '198.18.0.2', '8080', '8081']);
    await waitLine(server, /^READY/);

    const launch = (script: string, args: string[]): ChildProcess => {
      const p = spawn('sh', ['-c', `echo $$ > ${cg}/cgroup.procs && exec nsenter --net=/run/netns/${w} "$@"`, 'sh', process.execPath, app(script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      procs.push(p);
      return p;
    };

    const flowLog = join(tmp, 'flows.log');
    const config: FastPathConfig = {
      returnInterfaces: [], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: false, services: [],
      interception: {
        cgroup: cg, outboundPort: PROXY_PORT, outboundAddress: '127.0.0.1', outboundAddress6: '::1',
        // excluded ports go around the proxy; only 9000 is intercepted
        skipPorts: [80, 8080, 8081, 8082], sockmapPorts: [PROXY_PORT], connect: true, sockmap: false,
      },
      observe: { cgroup: cg, workload: 'reviews', events: true, flowLog: { path: flowLog } },
    };
    const fp = await BpfFastPath.start(config, (l) => t.comment(l));
    t.teardown(() => fp.close());
    t.ok(fp.status().programs.includes('observe'), `programs: ${fp.status().programs.join(',')}`);
    for (const [cluster, a, p] of [['echo', '198.18.0.2', 8080], ['rst', '198.18.0.2', 8081], ['closed', '198.18.0.2', 8082],
      ['blackhole', '198.18.0.99', 80], ['virt', '198.18.0.77', 9000], ['dns', '198.18.0.2', 53]] as const) {
      fp.applyEndpointDiff({ cluster, added: [ep(a, p)], removed: [], changed: [] });
    }

    // /flows through the real handler, on a real HTTP server
    const admin = http.createServer((req, res) => serveFlows(fp, req, res, new URL(req.url ?? '/', 'http://x')));
    await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise<void>((r) => { admin.closeAllConnections(); admin.close(() => r()); }));
    const base = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
    const bad = await fetch(`${base}/flows?colour=red`);
    t.equal(bad.status, 400, 'an unknown filter is an error');
    t.match(await bad.text(), /unknown filter "colour"/);

    const records: FlowRecord[] = [];
    const stream = await new Promise<http.IncomingMessage>((resolve) => http.get(`${base}/flows?event=close,udp_connect,open&direction=outbound,inbound`, resolve));
    t.equal(stream.headers['content-type'], 'application/x-ndjson');
    createInterface({ input: stream }).on('line', (l) => records.push(JSON.parse(l) as FlowRecord));
    t.teardown(() => stream.destroy());
    await sleep(200);

    const proxy = launch('flow-proxy.mjs', [String(PROXY_PORT), '198.18.0.2', '8080']);
    await waitLine(proxy, /^READY/);
    await fp.excludeProcess(proxy.pid!);
    const wl = launch('flow-workload.mjs', []);
    await waitLine(wl, /^READY/);
    const run = async (cmd: string, timeoutMs = 10_000): Promise<string> => {
      const tag = cmd.split(' ')[1]!;
      wl.stdin!.write(cmd + '\n');
      return waitLine(wl, new RegExp(`^RESULT ${tag} `), timeoutMs);
    };

    t.equal(await run('TCP a 198.18.0.2 8080 5000'), 'RESULT a ok 5000', 'echo');
    t.match(await run('TCP b 198.18.0.2 8081 100'), /^RESULT b ECONNRESET/, 'reset by the server');
    t.match(await run('TCP c 198.18.0.2 8082 10'), /^RESULT c ECONNREFUSED/, 'refused');
    t.match(await run('TCP d 198.18.0.99 80 10', 15_000), /^RESULT d ETIMEDOUT/, 'timed out');
    t.equal(await run('TCP e 198.18.0.77 9000 3000'), 'RESULT e ok 3000', 'through the proxy (intercepted)');
    t.equal(await run('UDP f 198.18.0.2 53'), 'RESULT f udp', 'connected UDP (a resolver)');
    t.equal(await run('SENDTO g 198.18.0.2 53'), 'RESULT g sent', 'unconnected UDP');
    t.equal(await run('LISTEN h 198.18.0.1 7000'), 'RESULT h listening');
    server.stdin!.write('DIAL 198.18.0.1 7000\n');
    t.equal(await waitLine(server, /^DIALED/), 'DIALED ok', 'an inbound connection');

    const find = async (what: string, pred: (r: FlowRecord) => boolean): Promise<FlowRecord | undefined> => {
      for (let i = 0; i < 50; i++) {
        const r = records.find(pred);
        if (r) return r;
        await sleep(100);
      }
      t.fail(`no flow record for ${what}; have ${records.map((r) => `${r.event}/${r.destination}/${r.outcome}`).join(' ')}`);
      return undefined;
    };
    const closed = (dest: string, extra: (r: FlowRecord) => boolean = () => true) => (r: FlowRecord) =>
      r.event === 'close' && r.destination === dest && r.direction === 'outbound' && extra(r);

    const a = await find('echo', closed('198.18.0.2:8080', (r) => !r.proxy_own && r.bytes_sent === 5000));
    t.match(a, { outcome: 'ok', service: 'echo', workload: 'reviews', via: 'direct', protocol: 'TCP', bytes_received: 5000, comm: 'node' });
    t.equal(a?.pid, wl.pid, 'attributed to the workload process');
    t.ok((a?.srtt_us ?? 0) > 0, `srtt ${a?.srtt_us} us`);
    t.match(await find('reset', closed('198.18.0.2:8081')), { outcome: 'reset', service: 'rst', errno: 104 });
    t.match(await find('refused', closed('198.18.0.2:8082')), { outcome: 'refused', service: 'closed', errno: 111, bytes_sent: 0 });
    const d = await find('timeout', closed('198.18.0.99:80'));
    t.match(d, { outcome: 'timeout', service: 'blackhole', errno: 110 });
    t.ok((d?.duration_ms ?? 0) > 2000, `timed out after ${d?.duration_ms} ms`);
    const e = await find('via proxy', closed('198.18.0.77:9000'));
    t.match(e, { outcome: 'ok', service: 'virt', via: 'proxy', proxy_own: false, bytes_sent: 3000 });
    t.match(e?.remote, /^127\.0\.0\.1:15001$/, 'the socket really went to the proxy');
    const up = await find("the proxy's upstream", closed('198.18.0.2:8080', (r) => r.proxy_own));
    t.match(up, { service: 'echo', via: 'direct', outcome: 'ok', bytes_sent: 3000 });
    t.equal(up?.pid, proxy.pid, "attributed to the proxy's process");
    t.match(await find('udp', (r) => r.event === 'udp_connect' && r.destination === '198.18.0.2:53'), { protocol: 'UDP', service: 'dns', pid: wl.pid });
    const inb = await find('inbound', (r) => r.event === 'close' && r.direction === 'inbound');
    t.match(inb, { service: 'inbound|7000', outcome: 'ok', bytes_received: 6, local: '198.18.0.1:7000' });
    t.notOk(records.some((r) => r.direction === 'inbound' && r.local.endsWith(`:${PROXY_PORT}`)), "the proxy's side of an intercepted connection is not counted twice");
    t.ok(records.some((r) => r.event === 'open' && r.destination === '198.18.0.2:8080'), 'open events too');

    // RTT and retransmissions under delay and loss on the workload's link. This kernel has
    // no netem (CONFIG_NET_SCH_NETEM is not set), so a token bucket does both: 2 Mbit/s with
    // a short queue means queueing delay, and tail drops once the window outgrows it.
    topo.sysctl(w, 'net.ipv4.tcp_syn_retries=6');
    const qdisc = (() => {
      try {
        topo.exec(w, 'tc', ['qdisc', 'add', 'dev', 'd0', 'root', 'netem', 'delay', '25ms', 'loss', '10%']);
        return 'netem 25ms 10%';
      } catch {
        topo.exec(w, 'tc', ['qdisc', 'add', 'dev', 'd0', 'root', 'tbf', 'rate', '2mbit', 'burst', '8kb', 'limit', '12kb']);
        return 'tbf 2mbit limit 12kb';
      }
    })();
    t.equal(await run('TCP i 198.18.0.2 8080 300000', 60_000), 'RESULT i ok 300000', `a transfer over a slow, lossy link (${qdisc})`);
    const i = await find('lossy', closed('198.18.0.2:8080', (r) => r.bytes_sent === 300000));
    t.ok((i?.srtt_us ?? 0) >= 10_000, `srtt with ${qdisc}: ${i?.srtt_us} us (unshaped: ${a?.srtt_us} us)`);
    t.ok((i?.retransmits ?? 0) >= 1, `retransmits with ${qdisc}: ${i?.retransmits}`);

    await fp.sync();
    const m = fp.metrics();
    const k = (name: string, service: string, extra = '', dir = 'outbound') => `${name}{workload="reviews",service="${service}",direction="${dir}"${extra}}`;
    t.equal(m[k('fastpath_flow_closed_total', 'closed', ',outcome="refused"')], 1, 'refused counted for its service');
    t.equal(m[k('fastpath_flow_closed_total', 'rst', ',outcome="reset"')], 1, 'reset counted');
    t.equal(m[k('fastpath_flow_closed_total', 'blackhole', ',outcome="timeout"')], 1, 'timeout counted');
    t.equal(m[k('fastpath_flow_closed_total', 'echo', ',outcome="ok"')], 3, 'echo: the workload twice, the proxy once');
    t.equal(m[k('fastpath_flow_closed_total', 'virt', ',outcome="ok"')], 1, 'the intercepted connection under its service');
    t.equal(m[k('fastpath_flow_bytes_sent_total', 'echo')], 5000 + 3000 + 300000, 'payload bytes, as the applications wrote them');
    t.ok(m[k('fastpath_flow_retransmits_total', 'echo')]! >= 1, 'retransmits per service');
    t.ok(m[k('fastpath_flow_srtt_us', 'echo')]! > 0, 'smoothed RTT per service');
    t.equal(m[k('fastpath_flow_udp_connects_total', 'dns')], 1);
    t.equal(m[k('fastpath_flow_udp_datagrams_total', 'dns')], 1, 'unconnected datagram');
    t.equal(m[k('fastpath_flow_closed_total', 'inbound|7000', ',outcome="ok"', 'inbound')], 1);
    t.equal(m.fastpath_conn_events_lost_total, 0, 'no events lost (and the counter exists)');
    t.ok(m.fastpath_conn_events_total! >= records.length, `events ${m.fastpath_conn_events_total}`);

    // the flow log, Envoy's format language
    for (let n = 0; n < 20 && !/ refused UF /.test(existsSync(flowLog) ? readFileSync(flowLog, 'utf8') : ''); n++) await sleep(100);
    const logText = readFileSync(flowLog, 'utf8');
    t.match(logText, /close outbound TCP 198\.18\.0\.1:\d+ -> 198\.18\.0\.2:8082 closed refused UF 0 0 /, 'refused in the flow log');
    t.match(logText, /close outbound TCP 198\.18\.0\.1:\d+ -> 198\.18\.0\.2:8081 rst reset UC /, 'reset in the flow log');
    t.ok(m.fastpath_flow_log_written_total! > 0);
  });
}
