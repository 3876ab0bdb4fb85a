/**
 * readOriginalDst against the kernel's own interception: in a network namespace, the nat
 * rules Istio's init container writes (ISTIO_OUTPUT -> ISTIO_REDIRECT, REDIRECT to the
 * outbound port, the proxy's uid and loopback excluded, an include range) send an app's
 * connection for 198.18.7.2:7002 to the catch-all listener, whose accepted socket reports
 * 198.18.7.2:7002; IPv6 the same through ip6tables and IP6T_SO_ORIGINAL_DST; connections
 * the rules leave alone report nothing.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology, waitLine } from '../../../fastpath/test/helpers/netns.js';
import { uniq } from '../../../fastpath/test/helpers/bpf.js';
import { originalDstAvailability, readOriginalDst } from '../../src/net/original-dst.js';
import { REPO, client, ensureAddon, listenerArgs } from './origdst-support.js';

const OUTBOUND = 15001;
const PROXY_UID = 1337; // Istio's proxy uid: its own connections are never redirected

ensureAddon();

t.test('the addon loads and says so', async (t) => {
  t.same(originalDstAvailability(), { ok: true }, 'SO_ORIGINAL_DST is available (built by prepare)');
});

t.test('a loopback connection nobody redirected has no original destination', async (t) => {
  // In a namespace of its own: a host whose nat table is in use (container engines load
  // it) has conntrack answer SO_ORIGINAL_DST for every connection, and for the client's
  // socket that answer is the server's address. The test creates the clean state it assumes.
  const isRoot = process.getuid?.() === 0;
  const ns = isRoot ? `pf-od-lo-${uniq()}` : undefined;
  if (ns) {
    spawnSync('ip', ['netns', 'add', ns]);
    t.teardown(() => void spawnSync('ip', ['netns', 'del', ns]));
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const script = `
    import net from 'node:net';
    const { readOriginalDst } = await import(${JSON.stringify(`${REPO}proxy/src/net/original-dst.ts`)});
    const server = net.createServer();
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise((r) => server.once('connection', r));
    const c = net.connect(server.address().port, '127.0.0.1');
    const s = await accepted;
    const out = { accepted: readOriginalDst(s) ?? null, client: readOriginalDst(c) ?? null };
    s.destroy();
    await new Promise((r) => s.once('close', r));
    out.destroyed = readOriginalDst(s) ?? null;
    console.log(JSON.stringify(out));
    c.destroy(); server.close();`;
  const cmd = [...(ns ? ['ip', 'netns', 'exec', ns] : []), process.execPath, '--import', 'tsx', '--input-type=module', '-e', script];
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', cwd: REPO, timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  t.equal(out.accepted, null, 'accepted socket: undefined');
  t.equal(out.client, null, 'client socket: undefined');
  t.equal(out.destroyed, null, 'destroyed socket: undefined, no throw');
});

t.test('the install-time build never fails npm ci: no compiler means a reason, not an error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-native-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['build.mjs', 'original_dst.c']) copyFileSync(`${REPO}proxy/native/${f}`, join(dir, f));
  const run = (cc: string) => spawnSync(process.execPath, [join(dir, 'build.mjs'), '--force'], { env: { ...process.env, CC: cc }, encoding: 'utf8' });
  const broken = run('/nonexistent/cc');
  t.equal(broken.status, 0, 'exit 0 without a compiler');
  t.match(readFileSync(join(dir, 'build/unavailable.txt'), 'utf8'), /no C compiler \(\/nonexistent\/cc\)/, 'the reason is kept for the proxy to log');
  t.notOk(existsSync(join(dir, 'build/original_dst.node')), 'no stale addon left behind');
  const ok = run('cc');
  t.equal(ok.status, 0, `builds with cc: ${ok.stderr}`);
  t.ok(existsSync(join(dir, 'build/original_dst.node')), 'original_dst.node built');
  t.notOk(existsSync(join(dir, 'build/unavailable.txt')), 'the old reason is gone');
});

/** iptables-nft is Debian 12's default; iptables-legacy where the nft nat table will not load. */
function natTools(topo: Topology, ns: string): { v4: string; v6: string } {
  for (const [v4, v6] of [['iptables', 'ip6tables'], ['iptables-legacy', 'ip6tables-legacy']] as const) {
    try {
      topo.exec(ns, v4, ['-t', 'nat', '-S']);
      topo.exec(ns, v6, ['-t', 'nat', '-S']);
      return { v4, v6 };
    } catch { /* try the next */ }
  }
  throw new Error('neither iptables (nft) nor iptables-legacy can use the nat table here (scripts/setup.sh installs iptables)');
}

/** The outbound half of Istio's istio-iptables rules, with an include range. */
function istioOutbound(topo: Topology, ns: string, tool: string, include: string, loopback: string): void {
  const ipt = (...a: string[]): void => { topo.exec(ns, tool, ['-t', 'nat', ...a]); };
  ipt('-N', 'ISTIO_REDIRECT');
  ipt('-A', 'ISTIO_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(OUTBOUND));
  ipt('-N', 'ISTIO_OUTPUT');
  ipt('-A', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT');
  ipt('-A', 'ISTIO_OUTPUT', '-o', 'lo', '-m', 'owner', '!', '--uid-owner', String(PROXY_UID), '-j', 'RETURN');
  ipt('-A', 'ISTIO_OUTPUT', '-m', 'owner', '--uid-owner', String(PROXY_UID), '-j', 'RETURN');
  ipt('-A', 'ISTIO_OUTPUT', '-d', loopback, '-j', 'RETURN');
  ipt('-A', 'ISTIO_OUTPUT', '-d', include, '-j', 'ISTIO_REDIRECT');
}

const why = process.platform !== 'linux' ? 'iptables interception is Linux-only'
  : process.getuid?.() !== 0 ? 'network namespaces and iptables need root' : undefined;

t.test('iptables REDIRECT (Istio init rules): the accepted socket knows where the app meant to go', { skip: why }, async (t) => {
  const topo = new Topology(uniq());
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    topo.destroy();
  });
  const app = topo.ns('a');
  const peer = topo.ns('p');
  // the destinations are off-box (behind a veth), as a service's would be
  topo.link(app, 'eth0', '198.18.7.1/24', peer, 'eth0', '198.18.7.2/24');
  topo.ip(app, 'addr', 'add', '2001:2::7:1/64', 'dev', 'eth0', 'nodad');
  topo.ip(peer, 'addr', 'add', '2001:2::7:2/64', 'dev', 'eth0', 'nodad');
  topo.ip(app, 'route', 'add', 'default', 'via', '198.18.7.2'); // a pod has one: any service IP is routable
  const tools = natTools(topo, app);
  t.comment(`nat rules through ${tools.v4}/${tools.v6}`);
  istioOutbound(topo, app, tools.v4, '198.18.0.0/15', '127.0.0.1/32');
  istioOutbound(topo, app, tools.v6, '2001:2::/48', '::1/128');

  // catch-all listener: an AF_INET socket, an IPv6-only one, and a dual-stack "real" service on 7002
  const listener = spawn('ip', ['netns', 'exec', app, ...listenerArgs([`0.0.0.0:${OUTBOUND}`, `[::]6:${OUTBOUND}`, '[::]:7002'])], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
  procs.push(listener);
  await waitLine(listener, /^READY$/, 20_000);

  const nsenter = (uid?: number): string[] => ['nsenter', `--net=/run/netns/${app}`, ...(uid === undefined ? [] : ['-S', String(uid), '-G', String(uid)])];
  const connect = async (host: string, port: number, uid?: number): Promise<{ local: number; accept: Record<string, unknown>; got: string }> => {
    const c = client(nsenter(uid), host, port, procs);
    const first = await waitLine(c, /^(LOCAL|ERROR)/);
    if (first.startsWith('ERROR')) throw new Error(`connect ${host}:${port}: ${first}`);
    const local = Number(first.split(' ')[1]);
    const line = await waitLine(listener, new RegExp(`^ACCEPT ${local} `));
    const got = (await waitLine(c, /^GOT /)).slice(4);
    return { local, accept: JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>, got };
  };

  const v4 = await connect('198.18.7.2', 7002);
  t.match(v4.accept, { local: `127.0.0.1:${OUTBOUND}` }, 'the app (IPv4) landed on the outbound listener');
  t.same(v4.accept.orig, { address: '198.18.7.2', port: 7002 }, 'readOriginalDst: 198.18.7.2:7002 (SOL_IP)');

  const v6 = await connect('2001:2::7:2', 7002);
  t.match(v6.accept, { local: `::1:${OUTBOUND}` }, 'the app (IPv6) landed on the outbound listener');
  t.same(v6.accept.orig, { address: '2001:2::7:2', port: 7002 }, 'readOriginalDst: [2001:2::7:2]:7002 (SOL_IPV6)');

  const other = await connect('198.18.9.40', 443);
  t.same(other.accept.orig, { address: '198.18.9.40', port: 443 }, 'any destination in the include range, any port');

  // not redirected: the app talking to its own address goes out lo and stays itself
  const direct = await connect('198.18.7.1', 7002);
  t.match(direct.accept, { local: '::ffff:198.18.7.1:7002' }, 'own-address connection reached the real 7002 listener');
  t.equal(direct.accept.orig, null, 'readOriginalDst: undefined for a connection that was not redirected');
  t.equal(direct.got, 'null', 'the client saw the same');

  // not redirected: the proxy's own uid goes where it asked — to the peer, where nothing listens
  const proxyOwn = client(nsenter(PROXY_UID), '198.18.7.2', 7002, procs);
  t.equal(await waitLine(proxyOwn, /^(LOCAL|ERROR)/), 'ERROR ECONNREFUSED', "the proxy uid's connection was not redirected to the listener");
});
