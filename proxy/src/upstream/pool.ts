import { Client, Pool, type Dispatcher } from 'undici';
import type { Cluster } from '../../../config/src/index.js';
import type { Host } from '../cluster/endpoint-set.js';

/** TLS options for undici's connector (from certs/ UpstreamTlsContext), or undefined for cleartext. */
export type UpstreamTls = Record<string, unknown> | undefined;

/**
 * One undici dispatcher per upstream host, created on first use and kept across
 * configuration changes that do not touch the host: this is what makes an endpoint
 * diff cheap for the data path (no pool of an untouched endpoint is ever rebuilt).
 */
export function createHostPool(cluster: Cluster, host: Host, tls: UpstreamTls, onConnect: () => void, onDisconnect: (err: unknown) => void): Dispatcher {
  const e = host.endpoint;
  const hostPart = e.address.includes(':') ? `[${e.address}]` : e.address;
  const origin = `${tls ? 'https' : 'http'}://${hostPart}:${e.port}`;
  const connect = { timeout: cluster.connectTimeout, ...(tls ?? {}) };
  // The proxy enforces route and per-try timeouts itself; undici's own limits would
  // fire with the wrong response flags.
  const common = {
    connect,
    connectTimeout: cluster.connectTimeout,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    ...(cluster.maxRequestsPerConnection ? { maxRequestsPerClient: cluster.maxRequestsPerConnection } : {}),
  };
  let d: Dispatcher;
  if (cluster.upstreamProtocol === 'HTTP2') {
    // One multiplexed connection per host, as Envoy does for HTTP/2 upstreams.
    d = new Client(origin, {
      ...common,
      allowH2: true,
      ...(tls ? {} : { useH2c: true }),
      maxConcurrentStreams: Math.min(cluster.http2MaxConcurrentStreams, 1000),
      pipelining: Math.min(cluster.http2MaxConcurrentStreams, 1000),
    });
  } else {
    const maxConnections = cluster.circuitBreakers.find((c) => c.priority === 'DEFAULT')?.maxConnections ?? 1024;
    d = new Pool(origin, { ...common, connections: maxConnections, pipelining: 1 });
  }
  d.on('connect', onConnect);
  d.on('disconnect', (_origin: unknown, _targets: unknown, err: unknown) => onDisconnect(err));
  d.on('connectionError', (_origin: unknown, _targets: unknown, err: unknown) => onDisconnect(err));
  return d;
}
