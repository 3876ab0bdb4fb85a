import t from 'tap';
import fc from 'fast-check';
import { InnerSocket } from '../../src/tunnel/inner-socket.js';
import { compileFormat } from '../../src/tunnel/format.js';
import { originalDstOf, parseHostPort } from '../../src/tunnel/internal-listeners.js';
import { until } from '../../../test-support/wait.js';

// The pieces of proxy/src/tunnel/ that need no proxy around them.

const addr = { localAddress: '10.0.0.1', localPort: 40000, remoteAddress: 'envoy://main_internal/', remotePort: 0 };

t.test('InnerSocket: bytes cross in order, half-close is passed on, addresses mirror', async (t) => {
  const [c, s] = InnerSocket.pair(addr);
  t.equal(s.remoteAddress, '10.0.0.1');
  t.equal(s.remotePort, 40000);
  t.equal(c.remoteAddress, 'envoy://main_internal/');
  const got: Buffer[] = [];
  s.on('data', (d: Buffer) => got.push(d));
  const ended = new Promise((r) => s.once('end', r));
  c.write('a');
  c.write(Buffer.from('bc'));
  c.end('d');
  await ended;
  t.equal(Buffer.concat(got).toString(), 'abcd');
  t.equal(c.bytesWritten, 4);
  t.equal(s.bytesRead, 4);
  // Half-closed: the other direction still works.
  const back = new Promise<string>((r) => c.once('data', (d) => r(String(d))));
  s.write('reply');
  t.equal(await back, 'reply');
  s.end();
});

t.test('InnerSocket: a reader that stops holds the writer (back-pressure), and releases it when it reads', async (t) => {
  const [c, s] = InnerSocket.pair(addr, 16 * 1024);
  let written = 0;
  const chunk = Buffer.alloc(4096, 1);
  const pump = (): void => {
    while (written < 1 << 20) {
      written += chunk.length;
      if (!c.write(chunk)) {
        c.once('drain', pump);
        return;
      }
    }
  };
  pump();
  await new Promise((r) => setTimeout(r, 50));
  t.ok(written < 64 * 1024, `the writer was held after ${written} bytes (nobody reads)`);
  let read = 0;
  s.on('data', (d: Buffer) => (read += d.length));
  await until('every byte to arrive once the reader reads', () => read === 1 << 20);
  t.equal(read, 1 << 20);
  c.destroy();
});

t.test('InnerSocket: node:http2 runs over it both ways (its JSStreamSocket wrapper hands over its own buffers)', async (t) => {
  const http2 = await import('node:http2');
  const [c, s] = InnerSocket.pair(addr);
  const server = http2.createServer((_req, res) => res.end('x'.repeat(200_000)));
  server.emit('connection', s);
  const session = http2.connect('http://inner', { createConnection: () => c as never });
  const body = await new Promise<string>((resolve, reject) => {
    const q = session.request({ ':path': '/' });
    let b = '';
    q.setEncoding('utf8');
    q.on('data', (d: string) => (b += d));
    q.on('end', () => resolve(b));
    q.on('error', reject);
  });
  t.equal(body, 'x'.repeat(200_000), '200 kB intact');
  session.destroy();
});

t.test('InnerSocket: destroying one end closes the other; setTimeout fires on idleness', async (t) => {
  const [c, s] = InnerSocket.pair(addr);
  // The idle timer is unref'd (the outer connection keeps the process up): hold it here.
  const hold = setTimeout(() => undefined, 5000);
  t.teardown(() => clearTimeout(hold));
  const timedOut = new Promise((r) => s.setTimeout(30, () => r(true)));
  t.equal(await timedOut, true);
  const closed = new Promise((r) => s.once('close', r));
  c.destroy();
  await closed;
  t.ok(s.destroyed);
});

t.test('parseHostPort takes IP:port only (IPv6 in brackets), as original_dst does', async () => {
  fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
    const p = parseHostPort(`${ip}:${port}`);
    return p?.address === ip && p.port === port;
  }));
  fc.assert(fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
    const p = parseHostPort(`[${ip}]:${port}`);
    return p?.address === ip && p.port === port;
  }));
  fc.assert(fc.property(fc.string(), (s) => {
    const p = parseHostPort(s);
    return p === undefined || (p.port >= 0 && p.port <= 65535 && s.endsWith(`:${p.port}`));
  }));
});

t.test('original destination of an internal connection: filter state, else passed-through metadata', async (t) => {
  t.same(originalDstOf(new Map([['envoy.filters.listener.original_dst.local_ip', '198.18.0.10:80']]), {}), { address: '198.18.0.10', port: 80 });
  t.same(originalDstOf(new Map(), { 'envoy.filters.listener.original_dst': { local: '10.1.2.3:8080' } }), { address: '10.1.2.3', port: 8080 });
  t.equal(originalDstOf(new Map([['envoy.filters.listener.original_dst.local_ip', 'echo.default:80']]), {}), undefined, 'a host name is not an address');
});

t.test('format strings: the operators the waypoint uses, literal text, %% and unknown operators', async (t) => {
  const info = {
    remoteAddress: '10.0.0.9', remotePort: 5555, localAddress: '10.0.0.1', localPort: 15008,
    originalDst: { address: '198.18.0.10', port: 80 }, transportProtocol: 'tls', applicationProtocols: [], filterChainName: '',
    peerPrincipal: 'spiffe://cluster.local/ns/default/sa/client', filterState: new Map<string, unknown>([['k', 'v']]),
  };
  const run = (f: string, headers?: Record<string, string>) => {
    const c = compileFormat(f);
    if (typeof c === 'string') throw new Error(c);
    return c({ info, ...(headers ? { headers } : {}) });
  };
  t.equal(run('%DOWNSTREAM_LOCAL_ADDRESS%'), '198.18.0.10:80', 'the restored original destination');
  t.equal(run('%DOWNSTREAM_REMOTE_ADDRESS%'), '10.0.0.9:5555');
  t.equal(run('%DOWNSTREAM_PEER_URI_SAN%'), 'spiffe://cluster.local/ns/default/sa/client');
  t.equal(run('%REQ(:AUTHORITY)%', { ':authority': '198.18.0.10:80' }), '198.18.0.10:80');
  t.equal(run('%FILTER_STATE(k:PLAIN)%'), 'v');
  t.equal(run('100%% of %DOWNSTREAM_LOCAL_PORT%'), '100% of 80');
  t.match(compileFormat('%UPSTREAM_WHATEVER%'), /not supported/);
  t.match(compileFormat('%REQ(x)'), /unterminated/);
  fc.assert(fc.property(fc.string(), (s) => {
    // Never throws: a function or a message.
    const c = compileFormat(s);
    return typeof c === 'string' || typeof c({ info: undefined }) === 'string';
  }));
  fc.assert(fc.property(fc.string().filter((s) => !s.includes('%')), (s) => run(s) === s));
});
