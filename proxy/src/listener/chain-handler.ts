import type * as net from 'node:net';
import type { ConnectionInfo } from '../net/connection-info.js';

/**
 * What runs a filter chain's network filters for the connections a listener hands it:
 * the HTTP connection manager (with the chain's TLS termination) or the TCP proxy. A
 * listener has one per filter chain; the listener accepts, sniffs, restores the original
 * destination and chooses, the handler only serves.
 */
export interface ChainHandler {
  readonly kind: 'http' | 'tcp';
  /**
   * Takes a connection. The socket may be paused, with the bytes the listener filters
   * read pushed back (unshifted); the handler resumes it when it is ready to read.
   */
  accept(socket: net.Socket, info: ConnectionInfo): void;
  /** Asks this chain's clients to go away (GOAWAY, `connection: close`), closes idle connections. */
  drain(): void;
  /** Closes idle keep-alive connections (called while waiting for a drain to finish). */
  closeIdle(): void;
  destroy(): void;
}
