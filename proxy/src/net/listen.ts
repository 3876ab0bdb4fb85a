import type * as net from 'node:net';
import type { SocketAddress } from '../../../config/src/index.js';

/** Binds a server to a listener address; rejects with the bind error (EADDRINUSE, EACCES, ...). */
export function listenOn(server: net.Server, address: SocketAddress): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.address, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
