// The plain Node TCP proxy stand-in: accept on LISTEN_HOST:LISTEN_PORT, pipe to UP_HOST:UP_PORT.
// usage: node node-l4-proxy.mjs LISTEN_HOST LISTEN_PORT UP_HOST UP_PORT
import net from 'node:net';
const [lh, lp, uh, up] = process.argv.slice(2);
net.createServer({ noDelay: true }, (c) => {
  const u = net.connect({ host: uh, port: Number(up), noDelay: true });
  c.pipe(u).on('error', () => c.destroy());
  u.pipe(c).on('error', () => u.destroy());
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
}).listen(Number(lp), lh, () => console.log('READY'));
