import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../test-support/wait.js';
import { ISTIO_PROXY_UID, istioIptables } from '../test-support/istio-iptables.js';
import { sidecarConfig } from './fixtures/transparent-sidecar.js';
import { bpfUnavailable } from '../fastpath/test/helpers/bpf.js';

// A sidecar as Istio runs one: the pod's traffic is intercepted by the nat rules Istio's
// init container writes (iptables REDIRECT to 15001 outbound, 15006 inbound), the proxy
// runs as uid 1337, and routing follows the original destination: virtualOutbound hands
// each connection to the per-port listener of where the app meant to go (bind_to_port:
// false), unknown destinations go through the ORIGINAL_DST PassthroughCluster, and
// inbound connections are picked by destination port on a virtualInbound listener.
// Two namespaces joined by a veth pair, addresses in 198.18.0.0/15 only.

const BIN = new URL('../bin/pilotfish.js', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;
const hasIptables = (() => {
  try {
    execFileSync('iptables', ['-V'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();
const skip = !isRoot ? 'needs root for network namespaces and iptables' : !hasIptables ? 'iptables is not installed (scripts/setup.sh installs it)' : false;

const POD = '198.18.10.1';
const EXT = '198.18.10.2';
const PROXY_UID = ISTIO_PROXY_UID;

const sh = (...args: string[]): string => execFileSync(args[0]!, args.slice(1), { stdio: 'pipe' }).toString();

/** Runs a short node script inside a namespace and returns what it printed. */
function nodeIn(ns: string, script: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { stdio: 'pipe', timeout: 20_000 }).toString();
}

/** Servers outside the pod: two services and one destination no listener knows. */
const EXTERNAL_SERVERS = `
import http from 'node:http'; import net from 'node:net'; import { createHash } from 'node:crypto';
const h = (name) => http.createServer((req, res) => { res.setHeader('x-served-by', name); res.end(name + ' ' + req.url); });
const svcA = h('svc-a');
// A WebSocket echo on svc-a (RFC 6455: client frames masked, ours not; one frame per message).
svcA.on('upgrade', (req, sock) => {
  const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nupgrade: websocket\\r\\nconnection: upgrade\\r\\nsec-websocket-accept: ' + accept + '\\r\\n\\r\\n');
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + 4 + len) return;
      const key = buf.subarray(off, off + 4), payload = Buffer.alloc(len);
      for (let i = 0; i < len; i++) payload[i] = buf[off + 4 + i] ^ key[i & 3];
      const op = buf[0] & 0x0f;
      buf = buf.subarray(off + 4 + len);
      const head = len < 126 ? Buffer.from([0x80 | op, len]) : len < 65536 ? Buffer.from([0x80 | op, 126, len >> 8, len & 0xff]) : Buffer.concat([Buffer.from([0x80 | op, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
      sock.write(Buffer.concat([head, payload]));
      if (op === 8) sock.end();
    }
  });
});
svcA.listen(7001, '${EXT}');
net.createServer((s) => { s.once('data', (d) => s.end('svc-b:' + d)); }).listen(7002, '${EXT}');
h('unknown-7003').listen(7003, '${EXT}');
console.log('ready');
`;

/** A WebSocket client as an app in the pod would run it: handshake, a text and a 1 MiB binary message, close. */
const WS_CLIENT = (host: string, port: number) => `
import net from 'node:net'; import { randomBytes } from 'node:crypto';
const frame = (op, payload) => {
  const len = payload.length, key = randomBytes(4);
  const head = len < 126 ? Buffer.from([0x80 | op, 0x80 | len]) : len < 65536 ? Buffer.from([0x80 | op, 0x80 | 126, len >> 8, len & 0xff]) : Buffer.concat([Buffer.from([0x80 | op, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  const body = Buffer.alloc(len); for (let i = 0; i < len; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
};
const big = randomBytes(1 << 20);
const s = net.connect(${port}, '${host}', () => s.write('GET /ws HTTP/1.1\\r\\nhost: svc-a\\r\\nupgrade: websocket\\r\\nconnection: Upgrade\\r\\nsec-websocket-version: 13\\r\\nsec-websocket-key: ' + randomBytes(16).toString('base64') + '\\r\\n\\r\\n'));
let buf = Buffer.alloc(0), head, frames = [];
const result = {};
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  if (!head) {
    const end = buf.indexOf('\\r\\n\\r\\n'); if (end < 0) return;
    head = buf.subarray(0, end).toString(); buf = buf.subarray(end + 4);
    result.status = head.split('\\r\\n')[0];
    result.chain = (/x-pilotfish-chain: (.*)/i.exec(head) || [])[1];
    s.write(frame(1, Buffer.from('hello over the sidecar'))); s.write(frame(2, big));
  }
  for (;;) {
    if (buf.length < 2) return;
    let len = buf[1] & 0x7f, off = 2;
    if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
    if (buf.length < off + len) return;
    frames.push(buf.subarray(off, off + len)); buf = buf.subarray(off + len);
    if (frames.length === 2) {
      result.small = frames[0].toString(); result.bigOk = frames[1].equals(big);
      console.log(JSON.stringify(result)); s.destroy();
    }
  }
});
setTimeout(() => { console.log(JSON.stringify(result)); process.exit(1); }, 15000).unref();
`;

/** The application inside the pod: an HTTP server the inbound side routes to. */
const POD_APP = `
import http from 'node:http';
http.createServer((req, res) => { res.end('app ' + req.url + ' from ' + req.socket.remoteAddress); }).listen(8080, '0.0.0.0');
console.log('ready');
`;

/** The pod's namespace and the world outside it, joined by a veth pair (eth0 on both sides). */
function podAndOutside(pod: string, ext: string): void {
  sh('ip', 'netns', 'add', pod);
  sh('ip', 'netns', 'add', ext);
  for (const ns of [pod, ext]) sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  sh('ip', '-n', pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ext);
  sh('ip', '-n', pod, 'addr', 'add', `${POD}/24`, 'dev', 'eth0');
  sh('ip', '-n', ext, 'addr', 'add', `${EXT}/24`, 'dev', 'eth0');
  sh('ip', '-n', pod, 'link', 'set', 'eth0', 'up');
  sh('ip', '-n', ext, 'link', 'set', 'eth0', 'up');
}

/** Deleting a namespace takes its veth end (and the peer) with it. */
function removeNamespaces(...names: string[]): void {
  for (const ns of names) {
    try {
      sh('ip', 'netns', 'del', ns);
    } catch {
      // already gone
    }
  }
}

function spawnIn(ns: string, args: string[], label: string, t: { teardown(fn: () => void): void }): { child: ChildProcess; output: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  void label;
  return { child, output: () => out };
}

t.test('transparent sidecar under Istio iptables interception', { skip }, async (t) => {
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
  const pod = `pf-pod-${id}`;
  const ext = `pf-ext-${id}`;
  t.teardown(() => removeNamespaces(pod, ext));
  podAndOutside(pod, ext);
  istioIptables(pod);

  const dir = mkdtempSync(join(tmpdir(), 'pf-transparent-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const cfg = join(dir, 'sidecar.yaml');
  writeFileSync(cfg, sidecarConfig(EXT), { mode: 0o644 });
  const extScript = join(dir, 'ext.mjs');
  const appScript = join(dir, 'app.mjs');
  writeFileSync(extScript, EXTERNAL_SERVERS, { mode: 0o644 });
  writeFileSync(appScript, POD_APP, { mode: 0o644 });

  const servers = spawnIn(ext, [process.execPath, extScript], 'ext', t);
  const app = spawnIn(pod, [process.execPath, appScript], 'app', t);
  const proxy = spawnIn(pod, ['setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', process.execPath, BIN, 'proxy', '--config', cfg, '--drain-time-s', '1'], 'proxy', t);
  await until('the servers outside and inside the pod', () => servers.output().includes('ready') && app.output().includes('ready'), { timeoutMs: 30_000, state: () => servers.output() + app.output() });
  const admin = (path: string): string => sh('ip', 'netns', 'exec', pod, 'curl', '-s', '--max-time', '5', `http://127.0.0.1:15000${path}`);
  await until('the sidecar to be LIVE', () => admin('/ready').includes('LIVE'), { timeoutMs: 60_000 }).catch((err: Error) => {
    throw new Error(`${err.message}; proxy output: ${proxy.output().slice(-2000)}`);
  });

  t.teardown(() => {
    if (!t.passing()) t.comment(`proxy output:\n${proxy.output().slice(-3000)}`);
  });

  await t.test('outbound HTTP to a known service: handed to its per-port listener, routed by the HTTP chain', async (t) => {
    const out = sh('ip', 'netns', 'exec', pod, 'curl', '-s', '-i', '--max-time', '5', `http://${EXT}:7001/hello`);
    t.match(out, /x-pilotfish-chain: outbound-7001/i, `went through the 0.0.0.0_7001 listener's HTTP chain:\n${out}`);
    t.match(out, /svc-a \/hello/);
  });

  await t.test('a WebSocket through the sidecar: upgraded by the 7001 listener\'s HTTP chain, echoed both ways', async (t) => {
    const out = nodeIn(pod, WS_CLIENT(EXT, 7001));
    const r = JSON.parse(out.trim().split('\n').pop()!) as { status: string; chain: string; small: string; bigOk: boolean };
    t.match(r.status, /^HTTP\/1\.1 101/);
    t.equal(r.chain, 'outbound-7001', 'the 101 came through the HTTP chain (response headers applied)');
    t.equal(r.small, 'hello over the sidecar');
    t.ok(r.bigOk, 'a 1 MiB message came back intact (back-pressure both ways)');
    t.match(admin('/stats'), /http\.outbound_0\.0\.0\.0_7001\.downstream_cx_upgrades_total: [1-9]/, 'counted as an upgrade');
  });

  await t.test('outbound TCP to an IP-specific listener (bind_to_port: false)', async (t) => {
    const out = nodeIn(pod, `import net from 'node:net'; const s = net.connect(7002, '${EXT}', () => s.write('ping')); let b=''; s.on('data', (d) => b += d); s.on('close', () => console.log(b));`);
    t.equal(out.trim(), 'svc-b:ping');
    const stats = admin('/stats');
    t.match(stats, /tcp\.outbound\|7002\|\|svc-b\.default\.svc\.cluster\.local\.downstream_cx_total: [1-9]/, 'counted by the 7002 listener\'s tcp_proxy');
  });

  await t.test('a destination no listener knows goes through PassthroughCluster to where the app meant', async (t) => {
    const out = sh('ip', 'netns', 'exec', pod, 'curl', '-s', '-i', '--max-time', '5', `http://${EXT}:7003/x`);
    t.match(out, /unknown-7003 \/x/);
    t.notMatch(out, /x-pilotfish-chain/i, 'not routed by an HTTP chain');
    t.match(admin('/stats'), /cluster\.PassthroughCluster\.upstream_cx_total: [1-9]/, 'PassthroughCluster carried it');
  });

  await t.test('outbound HTTP to the 7001 listener on another IP also lands on 0.0.0.0_7001 (wildcard listener)', async (t) => {
    // 198.18.10.3 is not assigned anywhere: the per-port listener routes by port, its cluster knows the real endpoint.
    sh('ip', '-n', pod, 'route', 'add', '198.18.10.3/32', 'dev', 'eth0');
    const out = sh('ip', 'netns', 'exec', pod, 'curl', '-s', '-i', '--max-time', '5', 'http://198.18.10.3:7001/vip');
    t.match(out, /x-pilotfish-chain: outbound-7001/i);
    t.match(out, /svc-a \/vip/);
  });

  await t.test('inbound: picked by destination port on virtualInbound, delivered to the app', async (t) => {
    const out = sh('ip', 'netns', 'exec', ext, 'curl', '-s', '-i', '--max-time', '5', `http://${POD}:8080/in`);
    t.match(out, /x-pilotfish-chain: inbound-8080/i, `went through the inbound 8080 chain:\n${out}`);
    t.match(out, /app \/in from 127\.0\.0\.6/, 'the app sees the sidecar as its peer, from 127.0.0.6 as Istio\'s inbound clusters bind');
  });

  await t.test('the proxy never saw its own traffic again (no loop), and counted the hand-offs', async (t) => {
    const stats = admin('/stats');
    t.match(stats, /listener\.0\.0\.0\.0_15001\.downstream_cx_original_dst_handoff: [1-9]/);
    t.notMatch(stats, /no_filter_chain_match: [1-9]/);
  });
});

/** The cgroup v2 hierarchy's mount point, where the test makes the pod's cgroup. */
function cgroup2Root(): string | undefined {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && dir) return dir;
  }
  return undefined;
}

const fastpathSkip = !isRoot ? 'needs root for BPF and namespaces' : ((await bpfUnavailable()) ?? (cgroup2Root() ? false : 'no cgroup v2 hierarchy mounted'));

t.test('transparent sidecar under the fast path\'s cgroup interception (no iptables)', { skip: fastpathSkip }, async (t) => {
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
  const pod = `pf-fpod-${id}`;
  const ext = `pf-fext-${id}`;
  const cg = `${cgroup2Root()}/pf-pod-${id}`;
  mkdirSync(cg);
  t.teardown(async () => {
    removeNamespaces(pod, ext);
    // A cgroup can only be removed once its processes are gone (killed by the spawns' teardowns).
    for (let i = 0; i < 100 && existsSync(cg); i++) {
      try {
        rmdirSync(cg);
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  podAndOutside(pod, ext);

  const dir = mkdtempSync(join(tmpdir(), 'pf-transparent-fp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'sidecar.yaml');
  // The pod's cgroup is intercepted: the app's connect() goes to 127.0.0.1:15001 and the
  // proxy (same cgroup, excluded by pid) reads the original destination with the same
  // SO_ORIGINAL_DST call, answered by the fast path's cgroup/getsockopt program.
  writeFileSync(cfg, `
bootstrap_extensions:
- name: pilotfish.fastpath
  typed_config:
    "@type": type.googleapis.com/xds.type.v3.TypedStruct
    type_url: pilotfish.fastpath
    value:
      interception: { cgroup: ${cg}, outbound_port: 15001, outbound_address: 127.0.0.1, connect: true, sockmap: false, skip_ports: [15000] }
${sidecarConfig(EXT)}`);
  const extScript = join(dir, 'ext.mjs');
  writeFileSync(extScript, EXTERNAL_SERVERS);
  const servers = spawnIn(ext, [process.execPath, extScript], 'ext', t);
  // In the cgroup and the netns before a line of node runs (nsenter: `ip netns exec` remounts /sys and hides cgroups).
  const inPod = (args: string[]) => ['sh', '-c', `echo $$ > ${cg}/cgroup.procs && exec nsenter --net=/run/netns/${pod} "$@"`, 'sh', ...args];
  const proxyCmd = inPod([process.execPath, BIN, 'proxy', '--config', cfg, '--drain-time-s', '1']);
  const proxy = spawn(proxyCmd[0]!, proxyCmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let proxyOut = '';
  proxy.stdout.on('data', (d) => (proxyOut += d));
  proxy.stderr.on('data', (d) => (proxyOut += d));
  t.teardown(() => {
    if (!t.passing()) t.comment(`proxy output:\n${proxyOut.slice(-3000)}`);
    proxy.kill('SIGKILL');
  });
  const appRun = (args: string[]): string => {
    const cmd = inPod(args);
    return execFileSync(cmd[0]!, cmd.slice(1), { stdio: 'pipe', timeout: 20_000 }).toString();
  };
  await until('the servers outside the pod', () => servers.output().includes('ready'), { timeoutMs: 30_000, state: () => servers.output() });
  const admin = (path: string): string => sh('ip', 'netns', 'exec', pod, 'curl', '-s', '--max-time', '5', `http://127.0.0.1:15000${path}`);
  await until('the sidecar to be LIVE with the fast path attached', () => admin('/ready').includes('LIVE') && /"active":\s*true/.test(admin('/server_info')), { timeoutMs: 60_000, state: () => proxyOut.slice(-500) });

  const http = appRun(['curl', '-s', '-i', '--max-time', '5', `http://${EXT}:7001/fp`]);
  t.match(http, /x-pilotfish-chain: outbound-7001/i, `the app's HTTP call went through the 7001 listener:\n${http}`);
  t.match(http, /svc-a \/fp/);
  const tcp = appRun([process.execPath, '--input-type=module', '-e', `import net from 'node:net'; const s = net.connect(7002, '${EXT}', () => s.write('ping')); let b=''; s.on('data', (d) => b += d); s.on('close', () => console.log(b));`]);
  t.equal(tcp.trim(), 'svc-b:ping');
  const unknown = appRun(['curl', '-s', '-i', '--max-time', '5', `http://${EXT}:7003/fp`]);
  t.match(unknown, /unknown-7003 \/fp/);
  const stats = admin('/stats');
  t.match(stats, /listener\.0\.0\.0\.0_15001\.downstream_cx_original_dst_handoff: [2-9]/, 'virtualOutbound handed the known destinations on');
  t.match(stats, /cluster\.PassthroughCluster\.upstream_cx_total: [1-9]/, 'the unknown one went through PassthroughCluster');
  // The fast path's kernel counters reach /stats on the helper's polling interval, not at once.
  const sockopt = await until('the getsockopt program\'s counter in /stats', () => /fastpath_orig_dst_sockopt_total: [1-9]/.test(admin('/stats')), { timeoutMs: 30_000, state: () => /fastpath_orig_dst_sockopt_total: \d+/.exec(admin('/stats'))?.[0] }).then(() => true, () => false);
  t.ok(sockopt, 'answered by the fast path\'s getsockopt program');
});
