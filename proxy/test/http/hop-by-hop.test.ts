import t from 'tap';
import fc from 'fast-check';
import { isHopByHop, stripHopByHop, type HeaderMap } from '../../src/http/headers.js';

// Names a Connection header may list, hop-by-hop ones and ordinary ones, in any case.
const NAMES = ['connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'transfer-encoding', 'proxy-connection', 'x-foo', 'x-bar', 'close', 'content-type', 'date', 'server', 'via'];
const name = fc.constantFrom(...NAMES);
const anyCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
const listed = fc.array(name.chain(anyCase).chain((n) => fc.tuple(fc.constantFrom('', ' ', '\t', '  '), fc.constantFrom('', ' ')).map(([a, b]) => `${a}${n}${b}`)), { maxLength: 4 }).map((xs) => xs.join(','));

/** The reference: Connection split on commas, each name trimmed and lowercased (the straightforward reading). */
function referenceStrip(h: HeaderMap): string[] {
  const out = new Set(Object.keys(h));
  const conn = h.connection;
  if (conn !== undefined) {
    for (const raw of (Array.isArray(conn) ? conn.join(',') : conn).split(',')) {
      const n = raw.trim().toLowerCase();
      if (n !== '' && n !== 'close' && n !== 'keep-alive') out.delete(n);
    }
  }
  for (const n of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization']) out.delete(n);
  return [...out].sort();
}

t.test('stripHopByHop(h, false) removes what the reference reading does, and isHopByHop leaves out exactly that', async (t) => {
  fc.assert(fc.property(fc.uniqueArray(name, { maxLength: 8 }), fc.array(listed, { maxLength: 2 }), (names, connections) => {
    const h: HeaderMap = {};
    for (const n of names) h[n] = 'v';
    if (connections.length > 0) h.connection = connections.length === 1 ? connections[0] : connections;
    const joined = connections.length > 0 ? connections.join(',') : undefined;
    const kept = Object.keys(h).filter((k) => !isHopByHop(k, joined)).sort();
    const reference = referenceStrip(h);
    stripHopByHop(h, false);
    const after = Object.keys(h).filter((k) => h[k] !== undefined).sort();
    const ok = kept.join() === after.join() && after.join() === reference.join();
    if (!ok) t.fail(`headers ${JSON.stringify(names)}, connection ${JSON.stringify(connections)}: kept ${kept}, stripped to ${after}, reference ${reference}`);
    return ok;
  }), { numRuns: 500 });
});

t.test('Connection values are read without allocating a list: keep-alive and close name no header', async (t) => {
  const h: HeaderMap = { connection: 'Keep-Alive, X-Foo', 'keep-alive': 'timeout=5', 'x-foo': '1', 'x-bar': '2', close: 'c' };
  stripHopByHop(h, false);
  t.same(Object.keys(h).filter((k) => h[k] !== undefined), ['x-bar', 'close'], 'x-foo listed, so removed; a header named close is not');
  t.equal(isHopByHop('x-foo', 'Keep-Alive, X-Foo'), true);
  t.equal(isHopByHop('x-bar', 'Keep-Alive, X-Foo'), false);
  t.equal(isHopByHop('close', 'close'), false);
});
