// Opens N TCP connections to HOST:PORT, pings on each every INTERVAL ms for DURATION ms,
// prints "RUNNING" once all are connected and a JSON summary at the end.
// usage: node flow-client.mjs HOST PORT N DURATION_MS INTERVAL_MS
import net from 'node:net';
const [host, port, n, duration, interval] = process.argv.slice(2);
const conns = [];
let connected = 0;
for (let i = 0; i < Number(n); i++) {
  const c = { backend: '', sent: 0, received: 0, errors: [], buf: '' };
  conns.push(c);
  const s = net.connect(Number(port), host, () => {
    if (++connected === Number(n)) console.log('RUNNING');
  });
  c.sock = s;
  s.setTimeout(5000, () => { c.errors.push('timeout'); s.destroy(); });
  s.on('data', (d) => {
    c.buf += d;
    let k;
    while ((k = c.buf.indexOf('\n')) >= 0) {
      const [who] = c.buf.slice(0, k).split(' ');
      if (c.backend && c.backend !== who) c.errors.push(`moved ${c.backend}->${who}`);
      c.backend = who;
      c.received++;
      c.buf = c.buf.slice(k + 1);
    }
  });
  s.on('error', (e) => c.errors.push(e.code ?? e.message));
}
const tick = setInterval(() => {
  for (const c of conns) if (!c.sock.destroyed && c.sock.readyState === 'open') { c.sock.write(`ping${c.sent}\n`); c.sent++; }
}, Number(interval));
setTimeout(() => {
  clearInterval(tick);
  setTimeout(() => {
    console.log(JSON.stringify(conns.map(({ backend, sent, received, errors }) => ({ backend, sent, received, errors }))));
    for (const c of conns) c.sock.destroy();
    process.exit(0);
  }, 300);
}, Number(duration));
