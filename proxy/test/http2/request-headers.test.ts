import t from 'tap';
import fc from 'fast-check';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { requestHeaderMap } from '../../src/http2/request-headers.js';

/**
 * requestHeaderMap copies node's HTTP/2 request header object (dictionary mode) into a
 * fast-mode header map: the exchange core must see exactly node's entries, in node's
 * order, whatever the names (pseudo-headers, repeated names, names that are also
 * members of Object.prototype).
 */

const entries = (o: object) => Object.keys(o).map((k) => [k, (o as Record<string, unknown>)[k]]);

t.test('a real request: the map holds node\'s entries in node\'s order', async (t) => {
  const seen: { headers: http2.IncomingHttpHeaders; raw: string[] }[] = [];
  const server = http2.createServer();
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
    seen.push({ headers, raw });
    stream.respond({ ':status': 204 });
    stream.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.teardown(() => { client.close(); server.close(); });
  const send = (h: http2.OutgoingHttpHeaders) => new Promise<void>((resolve, reject) => {
    const req = client.request(h);
    req.on('error', reject);
    req.on('response', () => {});
    req.resume();
    req.on('end', resolve);
    req.end();
  });
  await send({ ':path': '/a', 'user-agent': 'ua', accept: '*/*' });
  // Repeated names as node's client sends arrays (a computed ['__proto__'] key is an own property, not the prototype): cookie crumbs, a list header, set-cookie.
  await send({ ':method': 'POST', ':path': '/b?x=1', cookie: ['a=1', 'b=2'], 'x-list': ['1', '2'], 'set-cookie': ['s=1', 's=2'], constructor: 'c1', ['__proto__']: 'p1' } as http2.OutgoingHttpHeaders);
  t.equal(seen.length, 2);
  for (const { headers, raw } of seen) {
    const map = requestHeaderMap(headers as Record<string, string | string[]>, raw);
    t.same(entries(map), entries(headers), 'same entries, same order');
  }
  const second = requestHeaderMap(seen[1]!.headers as Record<string, string | string[]>, seen[1]!.raw);
  t.equal(second.cookie, 'a=1; b=2', 'cookie crumbs joined as node joins them');
  t.equal(second['x-list'], '1, 2');
  t.same(second['set-cookie'], ['s=1', 's=2']);
  t.equal(second.constructor, 'c1', 'a header named constructor is a header');
  t.equal(second.__proto__, 'p1', 'a header named __proto__ is a header');
  t.equal(second[':method'], 'POST', 'pseudo-headers kept for the exchange core');
});

/** node's toHeaderObject (lib/internal/http2/util.js), for generated raw lists. */
function asNodeBuildsIt(raw: string[]): Record<string, string | string[]> {
  const obj = { __proto__: null } as unknown as Record<string, string | string[]>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const existing = obj[name];
    if (existing === undefined) obj[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'cookie') obj[name] = `${existing as string}; ${value}`;
    else if (name === 'set-cookie') (existing as string[]).push(value);
    else obj[name] = `${existing as string}, ${value}`;
  }
  return obj;
}

t.test('any raw list: same entries and order as node\'s object', async (t) => {
  const name = fc.oneof(
    fc.stringMatching(/^[a-z0-9-]{1,10}$/),
    fc.constantFrom(':method', ':path', ':authority', ':scheme', 'cookie', 'set-cookie', 'constructor', '__proto__', 'toString', 'hasOwnProperty'),
  );
  fc.assert(fc.property(fc.array(fc.tuple(name, fc.string({ maxLength: 6 })), { maxLength: 16 }), (pairs) => {
    const raw = pairs.flat();
    const node = asNodeBuildsIt(raw);
    const map = requestHeaderMap(node, raw);
    return JSON.stringify(entries(map)) === JSON.stringify(entries(node));
  }), { numRuns: 1000 });
  t.pass('held for 1000 generated lists');
});
