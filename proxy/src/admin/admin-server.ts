import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleUserFilterAdmin } from '../../../filters/src/index.js';
import { isLevel, LEVELS, type Logger } from '../log.js';
import type { ProxyServer } from '../server.js';
import { renderClusters, renderConfigDump, renderServerInfo } from './views.js';
import { MemoryGauges } from '../stats/memory.js';

export interface AdminOptions {
  readonly address: string;
  readonly port: number;
  readonly drainTimeMs: number;
  /** Called by /quitquitquit and after /drain_listeners?graceful finished. */
  readonly quit: () => void;
  /** Extra /config_dump sections and /server_info fields from other modules. */
  readonly extraConfigDump?: () => unknown[];
  readonly extraServerInfo?: () => Record<string, unknown>;
  /** GET paths other modules add (e.g. the fast path's /flows), listed in /help like the built-in ones. */
  readonly extraRoutes?: readonly AdminRoute[];
}

export interface AdminRoute {
  readonly path: string;
  readonly help: string;
  readonly handler: (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void;

/**
 * Envoy-compatible admin endpoint. Mutating paths require POST, as Envoy's do, so a
 * stray GET from a browser or a crawler cannot fail health checks or stop the proxy.
 */
export class AdminServer {
  private readonly server: http.Server;
  private readonly routes = new Map<string, { method: 'GET' | 'POST'; help: string; handler: Handler }>();
  readonly memory: MemoryGauges;

  constructor(private readonly proxy: ProxyServer, private readonly log: Logger, private readonly opts: AdminOptions) {
    this.server = http.createServer((req, res) => this.dispatch(req, res));
    // server.memory_* (Envoy's names) and pilotfish.memory_*, sampled when /stats or /stats/prometheus is read.
    this.memory = new MemoryGauges(proxy.stats);
    this.add('/', 'GET', 'this page', (_q, res) => this.text(res, 200, this.helpText()));
    this.add('/help', 'GET', 'this page', (_q, res) => this.text(res, 200, this.helpText()));
    this.add('/ready', 'GET', 'LIVE when serving; 503 before initialization and while draining', (_q, res) => {
      const state = proxy.serverState;
      const live = state === 'LIVE' && !proxy.healthCheckFailed;
      this.text(res, live ? 200 : 503, `${proxy.healthCheckFailed && state === 'LIVE' ? 'HEALTH_CHECK_FAILED' : state}\n`);
    });
    this.add('/server_info', 'GET', 'version, state, uptime, node', (_q, res) =>
      this.json(res, renderServerInfo(proxy, opts.extraServerInfo?.() ?? {})));
    this.add('/stats', 'GET', 'all statistics (?format=json, ?filter=regex, ?usedonly)', (_q, res, url) => this.stats(res, url));
    this.add('/stats/prometheus', 'GET', 'statistics in Prometheus exposition format', (q, res) => proxy.stats.servePrometheus(q, res));
    this.add('/config_dump', 'GET', 'current configuration with versions (?resource=, ?name_regex=)', (_q, res, url) =>
      this.json(res, renderConfigDump(proxy, opts.extraConfigDump?.() ?? [], url)));
    this.add('/clusters', 'GET', 'upstream clusters and hosts (?format=json)', (_q, res, url) => {
      const out = renderClusters(proxy, url.searchParams.get('format') === 'json');
      if (typeof out === 'string') this.text(res, 200, out);
      else this.json(res, out);
    });
    this.add('/listeners', 'GET', 'listeners and bound addresses', (_q, res) => {
      const out = [...proxy.listenerRuntimes()].map(([name, l]) => ({ name, local_address: `${l.impl.config.address.address}:${l.impl.port}`, active_connections: l.impl.activeConnections }));
      this.json(res, { listener_statuses: out });
    });
    this.add('/healthcheck/fail', 'POST', 'fail /ready (health checks) without draining', (_q, res) => {
      proxy.setHealthCheckFailed(true);
      this.text(res, 200, 'OK\n');
    });
    this.add('/healthcheck/ok', 'POST', 'undo /healthcheck/fail', (_q, res) => {
      proxy.setHealthCheckFailed(false);
      this.text(res, 200, 'OK\n');
    });
    this.add('/drain_listeners', 'POST', 'stop accepting connections (?graceful: let in-flight finish)', (_q, res, url) => {
      this.text(res, 200, 'OK\n');
      const graceful = url.searchParams.has('graceful');
      void proxy.drain(graceful ? opts.drainTimeMs : 0);
    });
    this.add('/quitquitquit', 'POST', 'exit the server (after draining)', (_q, res) => {
      this.text(res, 200, 'OK\n');
      setImmediate(opts.quit);
    });
    this.add('/logging', 'POST', 'change the log level: /logging?level=debug', (_q, res, url) => {
      const level = url.searchParams.get('level');
      if (level !== null) {
        if (!isLevel(level)) return this.text(res, 400, `unknown level "${level}"; use one of ${LEVELS.join(', ')}\n`);
        log.setLevel(level);
      }
      this.text(res, 200, `active loggers:\n  pilotfish: ${log.level}\n`);
    });
    for (const r of opts.extraRoutes ?? []) if (!this.routes.has(r.path)) this.add(r.path, 'GET', r.help, r.handler);
  }

  private add(path: string, method: 'GET' | 'POST', help: string, handler: Handler): void {
    this.routes.set(path, { method, help, handler });
  }

  private helpText(): string {
    return 'admin commands are:\n' + [...this.routes].map(([p, r]) => `  ${p}${r.method === 'POST' ? ' (POST)' : ''}: ${r.help}`).join('\n')
      + '\n  /filters: hot-loaded user filters (GET); /filters/apply?name=, /filters/rollback?name= (POST)\n';
  }

  private dispatch(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname === '/filters' || url.pathname.startsWith('/filters/')) return this.userFilters(req, res, url);
    const route = this.routes.get(url.pathname);
    if (!route) return this.text(res, 404, `invalid path. ${this.helpText()}`);
    if (route.method === 'POST' && req.method !== 'POST') return this.text(res, 405, 'This endpoint requires POST.\n');
    try {
      route.handler(req, res, url);
    } catch (e) {
      this.log.error('admin handler failed', { path: url.pathname, error: String(e) });
      if (!res.headersSent) this.text(res, 500, 'internal error\n');
    }
  }

  /** Hot-loaded user filters: GET /filters, POST /filters/apply?name=, POST /filters/rollback?name=. */
  private userFilters(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    let body = '';
    let size = 0;
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      size += c.length;
      if (size > 4 * 1024 * 1024) req.destroy();
      else body += c;
    });
    req.on('end', () => {
      handleUserFilterAdmin(this.proxy.userFilters, req.method ?? 'GET', url.pathname, url.searchParams, body).then(
        (a) => {
          res.writeHead(a.status, { 'content-type': a.contentType, 'cache-control': 'no-cache, max-age=0' });
          res.end(a.body);
        },
        (e: unknown) => this.text(res, 500, `filter admin failed: ${String(e)}\n`),
      );
    });
  }

  private stats(res: http.ServerResponse, url: URL): void {
    let rows = this.proxy.stats.snapshot();
    const filter = url.searchParams.get('filter');
    if (filter) {
      let re: RegExp;
      try {
        re = new RegExp(filter);
      } catch {
        return this.text(res, 400, `invalid filter regex\n`);
      }
      rows = rows.filter(([n]) => re.test(n));
    }
    // Envoy's usedonly keeps stats ever written; server.state is written at start, and 0 (LIVE) is the value probes look for.
    if (url.searchParams.has('usedonly')) rows = rows.filter(([n, v]) => v !== 0 || n === 'server.state');
    if (url.searchParams.get('format') === 'json') return this.json(res, { stats: rows.map(([name, value]) => ({ name, value })) });
    this.text(res, 200, rows.map(([n, v]) => `${n}: ${v}`).join('\n') + '\n');
  }

  private text(res: http.ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/plain; charset=UTF-8', 'cache-control': 'no-cache, max-age=0', 'x-content-type-options': 'nosniff' });
    res.end(body);
  }

  private json(res: http.ServerResponse, body: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, max-age=0', 'x-content-type-options': 'nosniff' });
    res.end(JSON.stringify(body, jsonReplacer, 2) + '\n');
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.address, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

function jsonReplacer(_k: string, v: unknown): unknown {
  if (v instanceof Set) return [...v];
  if (v instanceof Map) return Object.fromEntries(v);
  return v;
}
