/**
 * Cost of readOriginalDst (getsockname + getsockopt(SO_ORIGINAL_DST) through the N-API
 * addon) per accepted connection, against baselines measured in the same process:
 *   node --import tsx bench/original-dst.ts [--rounds 9] [--calls 20000]
 *
 *   remoteAddress   `socket.remoteAddress` (Node caches getpeername: a property read)
 *   getpeername     `_handle.getpeername()`, uncached: one syscall through Node's binding
 *   origdst-miss    readOriginalDst on a loopback connection that was not redirected
 *   origdst-hit     readOriginalDst on a connection iptables REDIRECTed (only as root with
 *                   iptables: the bench re-runs itself in a network namespace it creates
 *                   with one nat rule, 198.18.9.2:7002 -> :15001, and deletes it after)
 *   helper-lookup   the alternative design: FastPath.originalDestination(), one request to
 *                   the privileged helper over its pipe per connection (only as root with
 *                   the fast path built; 2000 sequential calls per round)
 * Each round runs `calls` calls of each scenario in turn; the median ns/call over rounds
 * is printed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from '../fastpath/src/build.js';
import { BpfFastPath } from '../fastpath/src/fastpath.js';
import { originalDstAvailability, readOriginalDst } from '../proxy/src/net/original-dst.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt('rounds', 9);
const CALLS = opt('calls', 20000);
const INNER = args.includes('--inner');

type Scenario = [name: string, fn: (s: net.Socket) => unknown];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** One accepted socket: `connectTo` is where the client aims, `listenPort` where it lands. */
async function accepted(listenPort: number, connectTo: { host: string; port: number }): Promise<{ sock: net.Socket; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(listenPort, '0.0.0.0', r));
  const got = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(connectTo.port || (server.address() as net.AddressInfo).port, connectTo.host);
  const sock = await got;
  return { sock, close: () => { client.destroy(); sock.destroy(); server.close(); } };
}

function measure(sock: net.Socket, scenarios: Scenario[]): Map<string, number> {
  const samples = new Map<string, number[]>(scenarios.map(([n]) => [n, []]));
  let sink = 0;
  for (let r = 0; r < ROUNDS + 1; r++) {
    for (const [name, fn] of scenarios) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < CALLS; i++) if (fn(sock)) sink++;
      const ns = Number(process.hrtime.bigint() - t0) / CALLS;
      if (r > 0) samples.get(name)!.push(ns); // round 0 warms up
    }
  }
  if (sink < 0) console.log(sink);
  return new Map([...samples].map(([n, xs]) => [n, median(xs)]));
}

const peername = (s: net.Socket): unknown => {
  const out = {};
  (s as unknown as { _handle: { getpeername(o: object): number } })._handle.getpeername(out);
  return out;
};

async function inner(): Promise<void> {
  // runs inside the bench's namespace, where 198.18.9.2:7002 is redirected to :15001
  const { sock, close } = await accepted(15001, { host: '198.18.9.2', port: 7002 });
  const got = readOriginalDst(sock);
  if (got?.address !== '198.18.9.2' || got.port !== 7002) throw new Error(`not redirected: ${JSON.stringify(got)}`);
  const m = measure(sock, [['origdst-hit', readOriginalDst]]);
  console.log(JSON.stringify(Object.fromEntries(m)));
  close();
}

function hitInNamespace(): number | string {
  if (process.getuid?.() !== 0) return 'needs root';
  const ns = `pfbench-od-${process.pid}`;
  const run = (cmd: string, a: string[]): void => { execFileSync(cmd, a, { stdio: ['ignore', 'ignore', 'pipe'] }); };
  try {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // a route for 198.18.9.0/24 (connect() needs one before the nat rule rewrites it)
    run('ip', ['-n', ns, 'addr', 'add', '198.18.9.1/24', 'dev', 'lo']);
    run('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '198.18.9.2', '-j', 'REDIRECT', '--to-ports', '15001']);
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', self, '--inner', '--rounds', String(ROUNDS), '--calls', String(CALLS)], { encoding: 'utf8' });
    if (r.status !== 0) return `inner run failed: ${r.stderr.trim().split('\n').pop()}`;
    return (JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>)['origdst-hit']!;
  } catch (e) {
    return `namespace setup failed: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

async function helperLookup(): Promise<number | string> {
  if (process.getuid?.() !== 0) return 'needs root';
  const built = await ensureBuilt();
  if (!built.ok) return built.reason;
  const fp = await BpfFastPath.start({ returnInterfaces: [], redirectPeers: [], mode: 'off', forward: 'fib', flowEvents: false, services: [] }, () => {});
  try {
    const xs: number[] = [];
    const n = 2000;
    for (let r = 0; r < ROUNDS + 1; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await fp.originalDestination('127.0.0.1', 40000 + i);
      if (r > 0) xs.push(Number(process.hrtime.bigint() - t0) / n);
    }
    return median(xs);
  } finally {
    await fp.close();
  }
}

async function main(): Promise<void> {
  const av = originalDstAvailability();
  if (!av.ok) throw new Error(av.reason);
  if (INNER) return inner();
  const miss = await accepted(0, { host: '127.0.0.1', port: 0 }); // port 0: the listener's own
  const m = measure(miss.sock, [
    ['remoteAddress', (s) => s.remoteAddress],
    ['getpeername', peername],
    ['origdst-miss', readOriginalDst],
  ]);
  miss.close();
  const hit = hitInNamespace();
  const helper = await helperLookup().catch((e: Error) => e.message.split('\n')[0]!);
  console.log(`original-dst bench: node ${process.version}, ${ROUNDS} rounds x ${CALLS} calls, median ns/call`);
  for (const [n, v] of m) console.log(`  ${n.padEnd(14)} ${v.toFixed(0).padStart(6)} ns`);
  const show = (n: string, v: number | string): void => console.log(`  ${n.padEnd(14)} ${typeof v === 'number' ? `${v.toFixed(0).padStart(6)} ns` : `skipped: ${v}`}`);
  show('origdst-hit', hit);
  show('helper-lookup', helper);
}

await main();
