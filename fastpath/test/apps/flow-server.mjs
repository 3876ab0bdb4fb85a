// The far side of observe.test.ts (its own netns, outside the observed cgroup).
// HOST:ECHO echoes everything and closes when the client does; HOST:RST resets the
// connection (SO_LINGER 0) on the first bytes; UDP HOST:53 answers each datagram.
// stdin "DIAL <host> <port>" connects to the workload (an inbound connection for it),
// sends a line, closes, and prints "DIALED ok|<code>".
import net from 'node:net';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
const [host, echoPort, rstPort] = process.argv.slice(2);
const echo = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end()); s.on('error', () => {}); });
const rst = net.createServer((s) => { s.once('data', () => s.resetAndDestroy()); s.on('error', () => {}); });
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => udp.send(m, r.port, r.address));
echo.listen(Number(echoPort), host, () => rst.listen(Number(rstPort), host, () => udp.bind(53, host, () => console.log('READY'))));
createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, h, p] = l.split(' ');
  if (cmd !== 'DIAL') return;
  const s = net.connect(Number(p), h, () => s.end('hello\n'));
  s.on('data', () => {});
  s.on('close', () => console.log('DIALED ok'));
  s.on('error', (e) => console.log(`DIALED ${e.code}`));
});
