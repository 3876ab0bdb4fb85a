/**
 * Cost of network filters in front of tcp_proxy, against a baseline in the same run:
 *   node --import tsx bench/network-filters.ts [--rounds 5] [--mb 32] [--conns 300]
 *
 *   baseline   tcp_proxy alone (sockets joined with pipe())
 *   rbac       envoy.filters.network.rbac (ALLOW on a principal/port rule) before it:
 *              evaluated on the first byte, then the bytes flow through the byte pipe
 *   hooks      a pass-through filter with onData/onWrite (what metadata exchange costs
 *              after its header): every chunk goes through the hook pipes
 * Bulk: MB/s echoed through the proxy on one connection. Connections: short connections
 * per second (connect, 1 byte echoed, close), 8 at a time. Medians over rounds.
 */
import * as net from 'node:net';
import { parse as parseYaml } from 'yaml';
import { decodeBootstrap, Diagnostics, formatProblem, NETWORK_SET_FILTER_STATE_TYPE } from '../config/src/index.js';
import { Logger, networkFilterFactory, registerNetworkFilter, startProxy } from '../proxy/src/index.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt('rounds', 5);
const MB = opt('mb', 32);
const CONNS = opt('conns', 300);

// A pass-through byte filter rides on set_filter_state's type (configs with `bench_passthrough`).
const real = networkFilterFactory(NETWORK_SET_FILTER_STATE_TYPE)!;
registerNetworkFilter(NETWORK_SET_FILTER_STATE_TYPE, (cfg, diag, path, ctx) => cfg.config['bench_passthrough'] === true
  ? { name: cfg.name, typeUrl: cfg.typeUrl, onData: () => undefined, onWrite: () => undefined }
  : real(cfg, diag, path, ctx));

const echo = net.createServer((s) => {
  s.on('error', () => undefined);
  s.pipe(s);
});
await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
const echoPort = (echo.address() as net.AddressInfo).port;

const tcp = (prefix: string) => `
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: ${prefix}, cluster: echo }`;
const FILTERS: Record<string, string> = {
  baseline: '',
  rbac: `
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: bench.
          rules: { action: ALLOW, policies: { p: { permissions: [{ destination_port_range: { start: 1, end: 65536 } }], principals: [{ or_ids: { ids: [{ authenticated: { principal_name: { exact: "spiffe://x/none" } } }, { source_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }] } }] } } }`,
  hooks: `
      - name: passthrough
        typed_config: { "@type": ${NETWORK_SET_FILTER_STATE_TYPE}, bench_passthrough: true }`,
};
const yaml = `
static_resources:
  listeners:${Object.entries(FILTERS).map(([name, f]) => `
  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:${f}${tcp(name)}`).join('')}
  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 1s
    load_assignment: { cluster_name: echo, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${echoPort} } } } }] }] }
`;
const diag = new Diagnostics();
const b = decodeBootstrap(parseYaml(yaml), diag);
if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
const proxy = await startProxy(b, { log: new Logger('error'), drainTimeMs: 100, onQuit: () => undefined });
const port = (name: string) => proxy.server.boundPorts.get(name)!;

/** MB/s of one connection echoing `MB` megabytes in 64 KiB writes. */
function bulk(p: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const total = MB * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let got = 0;
    const start = performance.now();
    const s = net.connect({ host: '127.0.0.1', port: p }, () => {
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
      };
      pump();
    });
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= total) {
        const ms = performance.now() - start;
        s.destroy();
        resolve(MB / (ms / 1000));
      }
    });
    s.on('error', reject);
  });
}

/** Short connections per second, 8 in flight. */
async function connections(p: number): Promise<number> {
  const one = () => new Promise<void>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: p }, () => s.write('x'));
    s.once('data', () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next++ < CONNS) await one();
  }));
  return CONNS / ((performance.now() - start) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)]!;
const results: Record<string, { bulk: number[]; conns: number[] }> = {};
for (const name of Object.keys(FILTERS)) results[name] = { bulk: [], conns: [] };
for (let r = 0; r < ROUNDS; r++) {
  // Interleaved so that machine noise hits every configuration alike.
  for (const name of Object.keys(FILTERS)) {
    results[name]!.bulk.push(await bulk(port(name)));
    results[name]!.conns.push(await connections(port(name)));
  }
}
const base = results['baseline']!;
console.log(`network filters before tcp_proxy, medians of ${ROUNDS} rounds (${MB} MB bulk, ${CONNS} short connections, 8 in flight)`);
for (const [name, r] of Object.entries(results)) {
  const mbps = median(r.bulk);
  const cps = median(r.conns);
  console.log(`${name.padEnd(9)} bulk ${mbps.toFixed(0).padStart(6)} MB/s (x${(mbps / median(base.bulk)).toFixed(2)})   connections ${cps.toFixed(0).padStart(6)}/s (x${(cps / median(base.conns)).toFixed(2)})`);
}
await proxy.stop(0);
echo.close();
