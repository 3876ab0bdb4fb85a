import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Diagnostics, decodeCluster, type Cluster, type Endpoint } from '../../../config/src/index.js';

/** A decoded STATIC cluster with the given model fields replaced (decoders for new fields may lag). */
export function clusterOf(over: Partial<Cluster> = {}, json: Record<string, unknown> = {}): Cluster {
  const d = new Diagnostics();
  const c = decodeCluster({ name: 'c', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'c', endpoints: [] }, ...json }, d, 'cluster');
  if (!c || d.errors.length > 0) throw new Error(JSON.stringify(d.errors));
  return { ...c, ...over };
}

export function endpoint(address: string, port: number, o: Partial<Endpoint> = {}): Endpoint {
  const key = port === 0 ? address : address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  return { key, address, port, hostname: '', weight: 1, priority: 0, locality: '', localityWeight: 1, health: 'healthy', ...o };
}

/** An HTTP server that answers every request with `name` and remembers what it saw. */
export async function nameServer(name: string, listen: { host: string; port?: number } | { path: string }): Promise<{ server: http.Server; port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} host=${req.headers.host ?? ''}`);
    res.end(name);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in listen) server.listen(listen.path, resolve);
    else server.listen(listen.port ?? 0, listen.host, resolve);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? (addr as AddressInfo).port : 0;
  return {
    server, port, seen,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
