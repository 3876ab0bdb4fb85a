import * as net from 'node:net';
import type { Endpoint } from '../../../config/src/index.js';

/**
 * An endpoint whose Envoy address was `pipe` (a Unix domain socket). The model carries
 * the path in `address` with port 0 (config/ SocketAddress); no IP endpoint has port 0
 * and no host name starts with "/" or "@", so this test is unambiguous.
 */
export function isPipeEndpoint(e: { readonly address: string; readonly port: number }): boolean {
  return e.port === 0 && net.isIP(e.address) === 0;
}

/**
 * The path Node's net.connect takes for a pipe endpoint. Envoy writes Linux abstract
 * sockets as "@name"; Node (libuv) wants a leading NUL byte instead.
 */
export function pipePath(path: string): string {
  return path.startsWith('@') ? `\0${path.slice(1)}` : path;
}

/** Options for net.connect / tls.connect towards an endpoint: a socket path or host and port. */
export function endpointConnectOptions(e: Endpoint): { path: string } | { host: string; port: number } {
  return isPipeEndpoint(e) ? { path: pipePath(e.address) } : { host: e.address, port: e.port };
}
