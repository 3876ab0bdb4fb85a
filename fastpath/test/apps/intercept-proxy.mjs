// Stand-in for pilotfish's outbound listener inside the app's netns and cgroup.
// Listens on 127.0.0.1:PORT and [::1]:PORT, prints "ACCEPT <addr> <port>" per connection and
// answers each line with "proxy <line>". stdin "SELF <host> <port>" makes it connect out
// itself and print "SELF connected" or "SELF failed <code>" (it must not be intercepted).
import net from 'node:net';
import { createInterface } from 'node:readline';
const port = Number(process.argv[2]);
const onConn = (s) => {
  console.log(`ACCEPT ${s.remoteAddress} ${s.remotePort}`);
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { s.write(`proxy ${buf.slice(0, i)}\n`); buf = buf.slice(i + 1); }
  });
  s.on('error', () => {});
};
const v4 = net.createServer(onConn);
const v6 = net.createServer(onConn);
v4.listen(port, '127.0.0.1', () => v6.listen(port, '::1', () => console.log('READY')));
createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, host, p] = l.split(' ');
  if (cmd !== 'SELF') return;
  const s = net.connect({ host, port: Number(p), timeout: 700 });
  s.on('connect', () => { console.log('SELF connected'); s.destroy(); });
  s.on('timeout', () => { console.log('SELF failed timeout'); s.destroy(); });
  s.on('error', (e) => console.log(`SELF failed ${e.code}`));
});
