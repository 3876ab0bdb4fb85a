/**
 * A stand-in for the proxy's catch-all listener, run inside a test's network namespace
 * (and, for the fast path, its cgroup): listens on each `host:port` argument ("[::]:p" is
 * dual-stack, "[::]6:p" IPv6-only), and for every accepted connection prints
 *   ACCEPT <remotePort> {"local":..,"remote":..,"orig":{address,port}|null}
 * with the original destination read by readOriginalDst, the call the proxy makes.
 * Prints "READY" once listening, "UNAVAILABLE <reason>" if the addon cannot load.
 */
import net from 'node:net';
import { originalDstAvailability, readOriginalDst } from '../../../src/net/original-dst.js';

const av = originalDstAvailability();
if (!av.ok) {
  console.log(`UNAVAILABLE ${av.reason}`);
  process.exit(1);
}
const onConn = (s: net.Socket): void => {
  const orig = readOriginalDst(s) ?? null;
  console.log(`ACCEPT ${s.remotePort} ${JSON.stringify({ local: `${s.localAddress}:${s.localPort}`, remote: s.remoteAddress, orig })}`);
  s.on('error', () => {});
  s.end(`${JSON.stringify(orig)}\n`);
};
const listens = process.argv.slice(2).map((spec) => {
  const v6only = spec.startsWith('[::]6:');
  const host = spec.slice(0, spec.lastIndexOf(':')).replace(/^\[(.*)\]6?$/, '$1');
  const port = Number(spec.slice(spec.lastIndexOf(':') + 1));
  return new Promise<void>((resolve, reject) => {
    const server = net.createServer(onConn);
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: v6only }, resolve);
  });
});
await Promise.all(listens);
console.log('READY');
