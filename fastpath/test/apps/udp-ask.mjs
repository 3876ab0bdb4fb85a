// Sends one UDP datagram per argument-count to HOST:PORT from distinct sockets and prints each answer.
// usage: node udp-ask.mjs HOST PORT COUNT
import dgram from 'node:dgram';
const [host, port, count] = process.argv.slice(2);
let left = Number(count);
const timer = setTimeout(() => { console.log('TIMEOUT'); process.exit(1); }, 5000);
for (let i = 0; i < Number(count); i++) {
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => { console.log(String(m)); s.close(); if (--left === 0) { clearTimeout(timer); process.exit(0); } });
  s.send(`q${i}`, Number(port), host);
}
