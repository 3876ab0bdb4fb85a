/**
 * The fast path's interception answers the proxy's SO_ORIGINAL_DST call: an app in the
 * attached cgroup (and its own netns) connects to 198.18.0.77:7002 / [2001:2::77]:7002,
 * connect4/6 send it to the outbound listener, and the listener's readOriginalDst — the
 * same call that serves iptables REDIRECT (proxy/test/net/original-dst.test.ts) — returns
 * the address the app asked for, served by cgroup/getsockopt from the orig_dst map. Also
 * a dual-stack listener (v4-mapped, SOL_IP), a direct connection (no answer), and a
 * listener created outside the cgroup (no answer: the program runs for the socket's cgroup).
 */
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { BpfFastPath } from '../src/fastpath.js';
import type { FastPathConfig } from '../src/config.js';
import { bpfUnavailable, uniq } from './helpers/bpf.js';
import { Topology, waitLine } from './helpers/netns.js';
import { REPO, client, ensureAddon, listenerArgs } from '../../proxy/test/net/origdst-support.js';

const PORT = 15001;

function cgroup2Root(): string | undefined {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && dir) return dir;
  }
  return undefined;
}

const why = (await bpfUnavailable()) ?? (cgroup2Root() ? undefined : 'no cgroup v2 hierarchy mounted');
if (why) {
  t.plan(0, `skip: SO_ORIGINAL_DST from the fast path: ${why}`);
} else {
  t.test('connect4/6 interception: readOriginalDst on the accepted socket, via cgroup/getsockopt', async (t) => {
    ensureAddon();
    const id = uniq();
    const cg = `${cgroup2Root()}/pf-test-${id}`;
    mkdirSync(cg);
    const topo = new Topology(id);
    const procs: ChildProcess[] = [];
    let fp: BpfFastPath | undefined;
    t.teardown(async () => {
      await fp?.close(); // the helper's links go with it
      for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      topo.destroy();
      // a cgroup can only go once its processes are gone
      for (let i = 0; i < 50 && existsSync(cg); i++) {
        try { rmdirSync(cg); } catch { await new Promise((r) => setTimeout(r, 50)); }
      }
    });
    const ns = topo.ns('o');
    // somewhere for non-intercepted packets to go (and die): a veth to an empty namespace
    topo.link(ns, 'd0', '198.18.0.1/24', topo.ns('s'), 's0', '198.18.0.2/24');
    topo.ip(ns, 'addr', 'add', '2001:2::1/64', 'dev', 'd0', 'nodad');

    // in the cgroup and the netns before a line of node runs (nsenter, not `ip netns exec`,
    // which remounts /sys and hides the cgroup hierarchy)
    const inCgroup = ['sh', '-c', `echo $$ > ${cg}/cgroup.procs && exec nsenter --net=/run/netns/${ns} "$@"`, 'sh'];

    const config: FastPathConfig = {
      returnInterfaces: [], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: false, services: [],
      interception: {
        cgroup: cg, outboundPort: PORT, outboundAddress: '127.0.0.1', outboundAddress6: '::1',
        skipPorts: [22], sockmapPorts: [PORT], connect: true, sockmap: false,
      },
    };
    fp = await BpfFastPath.start(config, (l) => t.comment(l));
    t.same(fp.status().programs, ['connect4', 'connect6', 'getsockopt', 'sockops'], 'getsockopt attached next to the connect hooks');

    // the proxy's listener is created inside the cgroup: its accepted sockets are too, so
    // the getsockopt program runs for them
    const listener = spawn(inCgroup[0]!, [...inCgroup.slice(1), ...listenerArgs([`127.0.0.1:${PORT}`, `[::1]:${PORT}`])], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
    procs.push(listener);
    await waitLine(listener, /^READY$/, 20_000);
    await fp.excludeProcess(listener.pid!);

    let listening = listener;
    const connect = async (host: string, port: number): Promise<{ local: number; accept: Record<string, unknown>; got: string }> => {
      const listener = listening;
      const c = client(inCgroup, host, port, procs);
      const first = await waitLine(c, /^(LOCAL|ERROR)/);
      if (first.startsWith('ERROR')) throw new Error(`connect ${host}:${port}: ${first}`);
      const line = await waitLine(listener, new RegExp(`^ACCEPT ${first.split(' ')[1]} `));
      const got = (await waitLine(c, /^GOT /)).slice(4);
      return { local: Number(first.split(' ')[1]), accept: JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>, got };
    };

    const v4 = await connect('198.18.0.77', 7002);
    t.match(v4.accept, { local: `127.0.0.1:${PORT}` }, 'the app (IPv4) landed on the outbound listener');
    t.same(v4.accept.orig, { address: '198.18.0.77', port: 7002 }, 'readOriginalDst: 198.18.0.77:7002');
    t.same(JSON.parse(v4.got), { address: '198.18.0.77', port: 7002 }, 'and the app got it back');

    const v6 = await connect('2001:2::77', 7002);
    t.match(v6.accept, { local: `::1:${PORT}` }, 'the app (IPv6) landed on the outbound listener');
    t.same(v6.accept.orig, { address: '2001:2::77', port: 7002 }, 'readOriginalDst: [2001:2::77]:7002 (SOL_IPV6)');

    // the app talking to the listener directly was not redirected: nothing to restore
    const direct = await connect('127.0.0.1', PORT);
    t.equal(direct.accept.orig, null, 'readOriginalDst: undefined for a connection nobody redirected');

    // a dual-stack listener ([::]:PORT): the IPv4 connection arrives v4-mapped and is asked with SOL_IP
    listener.kill('SIGKILL');
    await new Promise((r) => listener.once('exit', r));
    listening = spawn(inCgroup[0]!, [...inCgroup.slice(1), ...listenerArgs([`[::]:${PORT}`])], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
    procs.push(listening);
    await waitLine(listening, /^READY$/, 20_000);
    await fp.excludeProcess(listening.pid!);
    const mapped = await connect('198.18.0.78', 7003);
    t.match(mapped.accept, { local: `::ffff:127.0.0.1:${PORT}` }, 'the app landed on the dual-stack listener, v4-mapped');
    t.same(mapped.accept.orig, { address: '198.18.0.78', port: 7003 }, 'readOriginalDst: 198.18.0.78:7003');

    // the documented requirement: a listener created outside the attached cgroup gets no answer
    listening.kill('SIGKILL');
    await new Promise((r) => listening.once('exit', r));
    listening = spawn('nsenter', [`--net=/run/netns/${ns}`, ...listenerArgs([`127.0.0.1:${PORT}`])], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
    procs.push(listening);
    await waitLine(listening, /^READY$/, 20_000);
    const outside = await connect('198.18.0.79', 7004);
    t.match(outside.accept, { local: `127.0.0.1:${PORT}` }, 'redirected to the listener outside the cgroup');
    t.equal(outside.accept.orig, null, 'its socket is not in the cgroup: the getsockopt program does not run for it');

    await fp.sync();
    const m = fp.metrics();
    t.equal(m.fastpath_connect_redirects_total, 4, 'four connections redirected');
    t.equal(m.fastpath_orig_dst_sockopt_total, 3, 'three answered by cgroup/getsockopt: not the direct one, not outside the cgroup');

    // both sides have closed: the entry is gone, so a later socket reusing 127.0.0.1:<port> gets no stale answer
    let left: unknown = 'still there';
    for (let i = 0; i < 40 && left !== undefined; i++) {
      left = await fp.originalDestination('127.0.0.1', v4.local);
      if (left !== undefined) await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(left, undefined, `orig_dst entry of the closed app socket 127.0.0.1:${v4.local} removed`);
  });
}
