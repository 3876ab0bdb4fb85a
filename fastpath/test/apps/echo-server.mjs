// A TCP (and UDP) server that answers every line with "<name> <line>"; prints READY.
// usage: node echo-server.mjs NAME HOST PORT
import net from 'node:net';
import dgram from 'node:dgram';
const [name, host, port] = process.argv.slice(2);
const srv = net.createServer((s) => {
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      s.write(`${name} ${buf.slice(0, i)}\n`);
      buf = buf.slice(i + 1);
    }
  });
  s.on('error', () => {});
});
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => udp.send(`${name} ${m}`, r.port, r.address));
udp.bind(Number(port), host, () => srv.listen(Number(port), host, () => console.log('READY')));
