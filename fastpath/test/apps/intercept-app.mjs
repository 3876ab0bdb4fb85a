// An application that believes it talks to HOST:PORT: sends COUNT lines, expects each echoed.
// Prints "LOCAL <addr> <port>" once connected and "DONE <answered>/<count>" at the end.
import net from 'node:net';
const [host, port, count] = process.argv.slice(2);
const s = net.connect(Number(port), host, () => {
  console.log(`LOCAL ${s.localAddress} ${s.localPort}`);
  for (let i = 0; i < Number(count); i++) s.write(`msg${i}\n`);
});
let buf = '', answered = 0;
s.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    if (buf.slice(0, i) === `proxy msg${answered}`) answered++;
    buf = buf.slice(i + 1);
  }
  if (answered === Number(count)) { console.log(`DONE ${answered}/${count}`); s.destroy(); process.exit(0); }
});
s.on('error', (e) => { console.log(`ERROR ${e.code}`); process.exit(1); });
setTimeout(() => { console.log(`DONE ${answered}/${count}`); process.exit(1); }, 5000);
