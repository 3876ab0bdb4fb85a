// Stand-in for pilotfish in the pod: accepts intercepted connections on 127.0.0.1:PORT
// and pipes each to one upstream (UPSTREAM_HOST:UPSTREAM_PORT) - its own upstream connection.
import net from 'node:net';
const [port, uh, up] = process.argv.slice(2);
net.createServer({ allowHalfOpen: true }, (down) => {
  const upc = net.connect({ port: Number(up), host: uh, allowHalfOpen: true });
  down.pipe(upc).pipe(down);
  down.on('error', () => upc.destroy());
  upc.on('error', () => down.destroy());
}).listen(Number(port), '127.0.0.1', () => console.log('READY'));
