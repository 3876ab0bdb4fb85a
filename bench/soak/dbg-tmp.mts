import * as net from 'node:net';
import { Pool } from 'undici';
const replies = ['HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok', 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok', 'HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok','HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'];
for (const rep of replies) {
  const s = net.createServer((c) => c.once('data', () => { c.write(rep); setTimeout(() => c.destroy(), 50); }));
  await new Promise<void>(r => s.listen(0, '127.0.0.1', r));
  const p = new Pool(`http://127.0.0.1:${(s.address() as net.AddressInfo).port}`);
  try { const r = await p.request({ path: '/', method: 'GET' }); console.log('ok', r.statusCode, await r.body.text()); } catch (e: any) { console.log('err', e.code, e.name, e.message); }
  await p.close(); s.close();
}
