/**
 * The three small services, in the demo's process: `frontend` answers `/` by calling
 * every backend service through its sidecar's outbound listener; backends answer with
 * their version. Each binds its own port on 127.0.0.1, reached only through its sidecar.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Stats } from './stats.js';

export interface App {
  readonly port: number;
  close(): Promise<void>;
}

function listen(server: http.Server, host = '127.0.0.1', port = 0): Promise<App> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
      });
    });
  });
}

export function startBackend(service: string, version: string, instance: string, bind: { host?: string; port?: number } = {}): Promise<App> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      // A little work, so latency percentiles have something to show.
      const delay = version === 'v2' ? 3 : 1;
      setTimeout(() => {
        const body = JSON.stringify({ service, version, instance, stars: version === 'v1' ? undefined : 4 });
        res.writeHead(200, { 'content-type': 'application/json', 'x-version': version, 'x-instance': instance });
        res.end(body);
      }, delay + Math.random() * 3);
    });
  });
  server.keepAliveTimeout = 30_000;
  return listen(server, bind.host, bind.port);
}

function call(agent: http.Agent, port: number, path: string, requestId: string | undefined): Promise<{ status: number; version: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 15_000, headers: requestId ? { 'x-request-id': requestId } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, version: String(res.headers['x-version'] ?? '?') }));
      res.on('error', () => resolve({ status: 0, version: '?' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, version: '?' }));
  });
}

/** The frontend: fans out to `/<service>` for each backend service via the outbound port. */
export function startFrontend(outboundPort: number, services: () => readonly string[], stats: Stats, bind: { host?: string; port?: number } = {}): Promise<App & { agent: http.Agent }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const server = http.createServer((req, res) => {
    req.resume();
    const id = typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : undefined;
    void Promise.all(services().map(async (svc) => {
      const t0 = performance.now();
      const r = await call(agent, outboundPort, `/${svc}`, id);
      const ms = performance.now() - t0;
      stats.record(`/${svc}`, ms, r.status === 200, r.version);
      return { ...r, ms };
    })).then((rs) => {
      const ok = rs.every((r) => r.status === 200);
      res.writeHead(ok ? 200 : 502, { 'content-type': 'application/json' });
      // `calls` lets a generator in another container show the version split (demo traffic).
      const calls = Object.fromEntries(services().map((svc, i) => [`/${svc}`, { status: rs[i]!.status, version: rs[i]!.version, ms: Math.round(rs[i]!.ms * 10) / 10 }]));
      res.end(JSON.stringify({ ok, versions: rs.map((r) => r.version), calls }));
    });
  });
  server.keepAliveTimeout = 30_000;
  return listen(server, bind.host, bind.port).then((app) => ({ ...app, agent, close: async () => { agent.destroy(); await app.close(); } }));
}
