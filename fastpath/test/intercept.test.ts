/**
 * Sidecar interception without iptables: a real application process in a cgroup
 * (and its own netns: loopback + a veth 198.18.0.1/24 to an empty one) connects to a remote
 * address; connect4/connect6 send it to the proxy's outbound listener; the proxy
 * reads the original destination back; sockops + sk_msg short-cut the bytes; and
 * the proxy's own connections are left alone.
 */
import t from 'tap';
import { mkdirSync, rmdirSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { BpfFastPath } from '../src/fastpath.js';
import type { FastPathConfig } from '../src/config.js';
import { bpfUnavailable, uniq } from './helpers/bpf.js';
import { Topology, waitLine } from './helpers/netns.js';
import { until } from '../../test-support/wait.js';

const CGROUP_ROOT = '/sys/fs/cgroup/unified';
const app = (name: string) => fileURLToPath(new URL(`./apps/${name}`, import.meta.url));
const PORT = 15001;

function cgroup2Root(): string | undefined {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && dir) return dir;
  }
  return existsSync(`${CGROUP_ROOT}/cgroup.procs`) ? CGROUP_ROOT : undefined;
}

const why = (await bpfUnavailable()) ?? (cgroup2Root() ? undefined : 'no cgroup v2 hierarchy mounted');
if (why) {
  t.plan(0, `skip: interception: ${why}`);
} else {
  t.test('connect4/6 interception, original destination, sockmap short-cut', async (t) => {
    const id = uniq();
    const cg = `${cgroup2Root()}/pf-test-${id}`;
    mkdirSync(cg);
    const topo = new Topology(id);
    const procs: ChildProcess[] = [];
    t.teardown(async () => {
      topo.destroy();
      for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
      // a cgroup can only go once its processes are gone (slow on a loaded machine)
      await until(`cgroup ${cg} removed`, () => {
        if (existsSync(cg)) rmdirSync(cg); // throws EBUSY while processes remain: not yet
        return true;
      }, { intervalMs: 50 });
    });
    const ns = topo.ns('i');
    // somewhere for non-intercepted packets to go (and die): a veth to an empty namespace
    topo.link(ns, 'd0', '198.18.0.1/24', topo.ns('s'), 's0', '198.18.0.2/24');

    // placed in the cgroup and the netns before it runs a line of node; plain sh + nsenter
    // because `ip netns exec` remounts /sys and would hide the cgroup hierarchy
    const launch = (script: string, args: string[]): ChildProcess => {
      const p = spawn('sh', ['-c', `echo $$ > ${cg}/cgroup.procs && exec nsenter --net=/run/netns/${ns} "$@"`, 'sh', process.execPath, app(script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      procs.push(p);
      return p;
    };

    const config: FastPathConfig = {
      returnInterfaces: [], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: true, services: [],
      interception: {
        cgroup: cg, outboundPort: PORT, outboundAddress: '127.0.0.1', outboundAddress6: '::1',
        skipPorts: [22], sockmapPorts: [PORT], connect: true, sockmap: true,
      },
    };
    const fp = await BpfFastPath.start(config, (l) => t.comment(l));
    t.teardown(() => fp.close());
    t.same(fp.status().programs, ['connect4', 'connect6', 'getsockopt', 'sockops', 'sk_msg']);

    const proxy = launch('intercept-proxy.mjs', [String(PORT)]);
    await waitLine(proxy, /^READY/);
    await fp.excludeProcess(proxy.pid!);

    const cases = [
      { host: '198.18.0.77', port: 8080, orig: '198.18.0.77' },
      { host: '2001:2::77', port: 9090, orig: '2001:2::77' },
    ];
    for (const c of cases) {
      const a = launch('intercept-app.mjs', [c.host, String(c.port), '200', 'hold']);
      const local = (await waitLine(a, /^(LOCAL|ERROR)/)).split(' ');
      t.equal(local[0], 'LOCAL', `app connected (to ${c.host}:${c.port}, really to the proxy)`);
      const accepted = await waitLine(proxy, new RegExp(`^ACCEPT \\S+ ${local[2]}$`));
      t.ok(accepted, `proxy accepted ${accepted}`);
      t.same(await fp.originalDestination(local[1]!, Number(local[2])), { address: c.orig, port: c.port }, 'original destination recovered');
      t.equal(await waitLine(a, /^DONE/), 'DONE 200/200', 'every message answered through the proxy');
      a.stdin!.write('close\n');
    }

    t.same(await fp.originalDestination('127.0.0.1', 1), undefined, 'unknown sockets have no original destination');

    // the proxy's own outbound connection must not come back to itself
    proxy.stdin!.write('SELF 198.18.0.77 8080\n');
    t.match(await waitLine(proxy, /^SELF /, 5000), /^SELF failed/, "the proxy's connection went where it asked (nowhere)");

    // skip_ports are not intercepted either
    const skipped = launch('intercept-app.mjs', ['198.18.0.77', '22', '1']);
    t.match(await waitLine(skipped, /^(LOCAL|ERROR|DONE)/, 8000), /^(ERROR|DONE 0)/, 'port 22 is left alone');

    await fp.sync();
    const m = fp.metrics();
    t.equal(m.fastpath_connect_redirects_total, 2, 'exactly the two app connections were redirected');
    t.ok(m.fastpath_sockmap_sockets_total! >= 4, `sockets in the sockhash: ${m.fastpath_sockmap_sockets_total}`);
    t.ok(m.fastpath_sockmap_redirects_total! >= 2, `sk_msg redirects: ${m.fastpath_sockmap_redirects_total}`);
  });
}
