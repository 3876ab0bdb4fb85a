/**
 * A sidecar bootstrap in the shapes istiod generates, for the HTTP benchmark: what a
 * request costs under the configuration users actually run, not under the bench's minimal
 * one-route bootstrap. Built from the same generators e2e/istio-bookinfo.test.ts serves over
 * ADS (e2e/fixtures/istio: Bookinfo's productpage-v1 sidecar, Istio 1.24 shapes), made
 * static so the bench needs no control plane:
 * - node and metadata, layered runtime, bootstrap extensions and Istio's stats_config
 *   (stats tags and the inclusion list) from the sidecar's bootstrap;
 * - the outbound `0.0.0.0_9080` listener as LDS sends it (tls_inspector + http_inspector,
 *   the raw_buffer/http filter chain, the passthrough default chain), bound to the bench
 *   port (istiod's bind_to_port: false dropped: no iptables hop through virtualOutbound): HCM with Istio's tracing (1% random sampling), UUID request ids with trace
 *   sampling, normalize_path, websocket upgrades, and the HTTP filters istio.metadata_exchange,
 *   grpc_stats, istio.alpn, fault, cors, istio.stats, router;
 * - route configuration `9080` as RDS sends it (every Bookinfo service on 9080 plus
 *   allow_any; reviews' VirtualService: the end-user header match and the 80/20 v1/v2
 *   split; Istio's default retry policy and decorators). The bench's Host
 *   (127.0.0.1:<port>) is added to reviews' domains: route configurations ignore the port;
 * - the bootstrap's static clusters (sds-grpc: pilot-agent's SDS pipe, absent here) and
 *   every CDS cluster, EDS clusters made STATIC with the bench origin as their only
 *   endpoint, without the tlsMode label (so the plaintext transport-socket match applies,
 *   as for a workload outside the mesh; the ISTIO_MUTUAL match is left out, its secrets
 *   come from pilot-agent's SDS).
 * With `accessLog` the HCM keeps the access log istiod adds for meshConfig.accessLogFile
 * (the demo profile: /dev/stdout, Istio's text format); without, the default profile's
 * (none).
 *
 *   node --import tsx bench/http/lib/istio-bootstrap.ts --port P --admin-port A --upstream-port U [--access-log] > bootstrap.json
 */
import { parseArgs } from 'node:util';
import { ISTIO_PORTS, istioBootstrap } from '../../../e2e/fixtures/istio/bootstrap.js';
import { sidecarClusters } from '../../../e2e/fixtures/istio/clusters.js';
import { sidecarListeners } from '../../../e2e/fixtures/istio/listeners.js';
import { workload } from '../../../e2e/fixtures/istio/mesh.js';
import { sidecarRoutes } from '../../../e2e/fixtures/istio/routes.js';
import type { Json } from '../../../e2e/fixtures/istio/shapes.js';

export interface IstioBenchPorts {
  readonly port: number;
  readonly adminPort: number;
  readonly upstreamPort: number;
}

const BENCH_WORKLOAD = 'productpage-v1';
const HTTP_PORT = 9080;
const BENCH_VHOST = `reviews.default.svc.cluster.local:${HTTP_PORT}`;

const localhost = (port: number): Json => ({ socket_address: { address: '127.0.0.1', port_value: port } });

export function istioBenchBootstrap(p: IstioBenchPorts, opts: { accessLog: boolean }): Json {
  const w = workload(BENCH_WORKLOAD);
  const boot = istioBootstrap(w, { ports: { ...ISTIO_PORTS, admin: p.adminPort } });
  delete boot.dynamic_resources;
  (boot.admin as Json).address = localhost(p.adminPort);

  const listener = structuredClone(sidecarListeners(w, { rbac: false })[`0.0.0.0_${HTTP_PORT}`]!);
  listener.address = localhost(p.port);
  // istiod sets bind_to_port: false (iptables sends traffic to virtualOutbound, 15001, which
  // hands each connection to the listener of its original destination); the bench connects
  // to it directly.
  delete listener.bind_to_port;
  const chain = (listener.filter_chains as Json[])[0]!;
  const hcm = ((chain.filters as Json[])[0]!.typed_config) as Json;
  const routes = structuredClone(sidecarRoutes()[String(HTTP_PORT)]!);
  const vhost = (routes.virtual_hosts as Json[]).find((v) => v.name === BENCH_VHOST);
  if (vhost === undefined) throw new Error(`route configuration ${HTTP_PORT} has no virtual host ${BENCH_VHOST}`);
  (vhost.domains as string[]).push('127.0.0.1');
  delete hcm.rds;
  hcm.route_config = routes;
  if (!opts.accessLog) delete hcm.access_log;

  const clusters = Object.values(sidecarClusters(w)).map((c0) => {
    const c = structuredClone(c0);
    // ISTIO_MUTUAL needs pilot-agent's SDS (over the ADS client's assembler); the bench's
    // endpoints carry no tlsMode label, so only the plaintext match could apply anyway.
    if (Array.isArray(c.transport_socket_matches)) c.transport_socket_matches = (c.transport_socket_matches as Json[]).filter((m) => m.name !== 'tlsMode-istio');
    if (c.type !== 'EDS') return c;
    delete c.eds_cluster_config;
    c.type = 'STATIC';
    c.load_assignment = { cluster_name: c.name, endpoints: [{ lb_endpoints: [{ endpoint: { address: localhost(p.upstreamPort) } }] }] };
    return c;
  });
  // The bootstrap's own static clusters stay (sds-grpc, which the clusters' ISTIO_MUTUAL
  // transport sockets name, xds-grpc, prometheus_stats, agent); its listeners (15090, 15021)
  // do not: two targets of one run would bind the same ports.
  const own = (boot.static_resources as Json).clusters as Json[];
  boot.static_resources = { listeners: [listener], clusters: [...own, ...clusters] };
  return boot;
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const { values: o } = parseArgs({ options: { port: { type: 'string' }, 'admin-port': { type: 'string' }, 'upstream-port': { type: 'string' }, 'access-log': { type: 'boolean' } } });
  const num = (s: string | undefined, name: string): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} is required (a port number)`);
    return n;
  };
  const ports = { port: num(o.port, 'port'), adminPort: num(o['admin-port'], 'admin-port'), upstreamPort: num(o['upstream-port'], 'upstream-port') };
  process.stdout.write(`${JSON.stringify(istioBenchBootstrap(ports, { accessLog: o['access-log'] === true }), null, 1)}\n`);
}
