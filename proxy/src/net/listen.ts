import { chmodSync } from 'node:fs';
import type * as net from 'node:net';
import type { SocketAddress } from '../../../config/src/index.js';

/**
 * Binds a server to a listener address — an IP and port, or a Unix pipe (Envoy writes
 * Linux abstract sockets as "@name"; libuv wants a leading NUL) — and rejects with the
 * bind error (EADDRINUSE, EACCES, ...).
 */
export function listenOn(server: net.Server, address: SocketAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      const a = server.address();
      resolve(a && typeof a === 'object' ? a.port : 0);
    };
    const pipe = address.pipe;
    if (pipe) {
      const abstract = pipe.path.startsWith('@');
      server.listen(abstract ? `\0${pipe.path.slice(1)}` : pipe.path, () => {
        // Envoy's pipe.mode (default 0): applied to the socket file, so only the intended peers connect.
        if (!abstract && pipe.mode !== 0) {
          try {
            chmodSync(pipe.path, pipe.mode);
          } catch (err) {
            server.close();
            server.off('error', reject);
            reject(err);
            return;
          }
        }
        done();
      });
    } else server.listen(address.port, address.address, done);
  });
}
