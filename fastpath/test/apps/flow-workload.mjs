// The observed workload (in the test's cgroup and netns). One command per stdin line:
//   TCP <id> <host> <port> <bytes>  connect, send <bytes>, half-close, read until the peer closes
//                                    -> "RESULT <id> ok <received>" or "RESULT <id> <error code>"
//   UDP <id> <host> <port>          connected UDP socket, one datagram, wait for the answer (1 s)
//   SENDTO <id> <host> <port>       unconnected UDP datagram
//   LISTEN <id> <host> <port>       accept connections there, echoing; "RESULT <id> listening"
import net from 'node:net';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
const say = (s) => console.log(s);
createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, id, host, p, n] = l.split(' ');
  const port = Number(p);
  if (cmd === 'TCP') {
    const s = net.connect(port, host, () => s.end(Buffer.alloc(Number(n), 120)));
    let got = 0, err;
    s.on('data', (d) => { got += d.length; });
    s.on('error', (e) => { err = e.code; });
    s.on('close', () => say(`RESULT ${id} ${err ?? 'ok'} ${got}`));
  } else if (cmd === 'UDP' || cmd === 'SENDTO') {
    const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const done = (what) => { say(`RESULT ${id} ${what}`); u.close(); };
    if (cmd === 'UDP') {
      const t = setTimeout(() => done('udp-noanswer'), 1000);
      u.on('message', () => { clearTimeout(t); done('udp'); });
      u.connect(port, host, () => u.send('q'));
    } else {
      u.send('q', port, host, () => done('sent'));
    }
  } else if (cmd === 'LISTEN') {
    net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end()); s.on('error', () => {}); })
      .listen(port, host, () => say(`RESULT ${id} listening`));
  }
});
say('READY');
