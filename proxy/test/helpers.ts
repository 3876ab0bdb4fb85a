import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, formatProblem } from '../../config/src/index.js';
import { startProxy, type RunningProxy } from '../src/index.js';
import { Logger } from '../src/log.js';

/** The part of a tap Test the helpers need. */
export interface Scope {
  teardown(fn: () => unknown): void;
}

export interface Upstream {
  readonly port: number;
  readonly server: http.Server;
  readonly requests: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

/** A real HTTP/1.1 upstream that records what it received and answers per `handler`. */
export async function startUpstream(
  t: Scope,
  name: string,
  handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
): Promise<Upstream> {
  const requests: Upstream['requests'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (handler) return handler(req, res, body);
      const out = JSON.stringify({ service: name, path: req.url, headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
      res.end(out);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const up: Upstream = {
    port: (server.address() as AddressInfo).port,
    server,
    requests,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  t.teardown(() => up.close());
  return up;
}

/** Decodes a YAML bootstrap (failing the test on errors) and starts the proxy in-process. */
export async function startProxyYaml(t: Scope, yaml: string): Promise<RunningProxy & { port(listener?: string): number }> {
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseYaml(yaml), diag);
  if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
  const log = new Logger('error');
  const running = await startProxy(b, { log, adminPort: 0, drainTimeMs: 500, onQuit: () => undefined });
  t.teardown(() => running.stop(0));
  return Object.assign(running, {
    port(listener?: string): number {
      const ports = running.server.boundPorts;
      const p = listener ? ports.get(listener) : ports.values().next().value;
      if (p === undefined) throw new Error(`no listener ${listener ?? ''}`);
      return p;
    },
  });
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request on a fresh connection (no agent reuse between tests). */
export function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** An upstream host: a port on 127.0.0.1, or an explicit address. */
export type HostSpec = number | { readonly address: string; readonly port: number };

/**
 * An address where a TCP connect is refused for as long as the test runs. "Listen on
 * port 0, close, reuse the port" is not that: under parallel load another process can
 * take the freed port. Here a listener this test owns holds 127.0.0.1:P (so nobody can
 * bind P on the wildcard address either), and the host is P on another loopback
 * address, where nothing listens and no self-connect can happen (the source is 127.0.0.1).
 */
export async function refusedHost(t: Scope): Promise<{ address: string; port: number }> {
  const holder = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const rnd = () => 1 + Math.floor(Math.random() * 254);
  return { address: `127.${rnd()}.${rnd()}.${rnd()}`, port: (holder.address() as AddressInfo).port };
}

export function staticCluster(name: string, ports: HostSpec[], extra = ''): string {
  return `
  - name: ${name}
    type: STATIC
    connect_timeout: 0.5s
${extra}
    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${ports.map((p) => (typeof p === 'number' ? { address: '127.0.0.1', port: p } : p))
    .map((h) => `        - endpoint: { address: { socket_address: { address: ${h.address}, port_value: ${h.port} } } }`).join('\n')}`;
}

/** A bootstrap with one HTTP listener on port 0 and the given route_config virtual hosts and clusters. */
export function bootstrapYaml(virtualHosts: string, clusters: string, hcmExtra = '', filters = ''): string {
  return `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
${hcmExtra}
          route_config:
            name: local
            virtual_hosts:
${virtualHosts}
          http_filters:
${filters}
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
${clusters}
`;
}
