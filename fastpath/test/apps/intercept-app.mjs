// An application that believes it talks to HOST:PORT: sends COUNT lines, expects each echoed.
// Prints "LOCAL <addr> <port>" once connected and "DONE <answered>/<count>" at the end.
// With a fourth argument "hold" it keeps the connection open until a line on stdin: its
// original destination is forgotten when it closes, and the test reads it first.
import net from 'node:net';
import { createInterface } from 'node:readline';
const [host, port, count, hold] = process.argv.slice(2);
const finish = (code) => {
  clearTimeout(timer);
  if (hold !== 'hold') { s.destroy(); process.exit(code); }
  createInterface({ input: process.stdin }).once('line', () => { s.destroy(); process.exit(code); });
};
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
  if (answered === Number(count)) { console.log(`DONE ${answered}/${count}`); finish(0); }
});
s.on('error', (e) => { console.log(`ERROR ${e.code}`); process.exit(1); });
const timer = setTimeout(() => { console.log(`DONE ${answered}/${count}`); process.exit(1); }, 5000);
