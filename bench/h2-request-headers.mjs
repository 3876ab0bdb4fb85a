#!/usr/bin/env node
// What an HTTP/2 request's header object costs to walk, as node delivers it (built with
// `{ __proto__: null }`: dictionary mode) and as proxy/src/http2/request-headers.ts copies
// it (a fast-mode header map): one real h2c request from node's own client (a browser-like
// GET's headers) is captured on a real server, then, alternating, in rounds:
//   for-in        one `for...in` with a read per entry (stripping, head writing, filters)
//   6 lookups     six named reads, five of absent names (x-forwarded-for, te, ...)
//   copy          requestHeaderMap() itself
// Medians of --rounds rounds of --iterations each, ns per operation.
//   npm run build && node bench/h2-request-headers.mjs [--rounds 5] [--iterations 1000000]
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { requestHeaderMap } from '../dist/proxy/src/http2/request-headers.js';

const { values: o } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, iterations: { type: 'string', default: '1000000' } } });
const ROUNDS = Number(o.rounds), N = Number(o.iterations);

const captured = await new Promise((resolve, reject) => {
  const server = http2.createServer();
  server.on('stream', (stream, headers, _flags, rawHeaders) => {
    stream.respond({ ':status': 204 });
    stream.end();
    resolve({ headers, rawHeaders });
  });
  server.listen(0, '127.0.0.1', () => {
    const client = http2.connect(`http://127.0.0.1:${server.address().port}`);
    client.on('error', reject);
    const req = client.request({
      ':path': '/productpage?u=normal', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
      accept: 'text/html,application/xhtml+xml', 'accept-language': 'en-US,en;q=0.5', 'accept-encoding': 'gzip, deflate, br', cookie: 'session=abc',
    });
    req.on('response', () => {});
    req.resume();
    req.on('end', () => { client.close(); server.close(); });
    req.end();
  });
});

function walk(h) { let n = 0; for (const k in h) { const v = h[k]; if (v !== undefined) n += k.length; } return n; }
function look(h) { return (h['x-forwarded-for'] === undefined) + (h['x-request-id'] === undefined) + (h.connection === undefined) + (h.te === undefined) + (h['content-type'] === undefined) + (h[':authority'] !== undefined); }
// 64 objects built as node builds them (null prototype, one property per name: dictionary
// mode; a spread would give a fast-mode copy instead).
const node = Array.from({ length: 64 }, () => {
  const d = { __proto__: null };
  for (let j = 0; j < captured.rawHeaders.length; j += 2) d[captured.rawHeaders[j]] = captured.headers[captured.rawHeaders[j]];
  return d;
});
const fast = node.map((d) => requestHeaderMap(d, captured.rawHeaders));

const cases = {
  'for-in, node\'s object': (i) => walk(node[i & 63]),
  'for-in, header map': (i) => walk(fast[i & 63]),
  '6 lookups, node\'s object': (i) => look(node[i & 63]),
  '6 lookups, header map': (i) => look(fast[i & 63]),
  'copy (requestHeaderMap)': (i) => (requestHeaderMap(node[i & 63], captured.rawHeaders) === undefined ? 0 : 1),
};
const results = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let r = 0; r < ROUNDS + 1; r++) {
  for (const [name, f] of Object.entries(cases)) {
    let s = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) s += f(i);
    const ns = Number(process.hrtime.bigint() - t0) / N;
    if (s < 0) console.log(s);
    if (r > 0) results[name].push(ns); // round 0 warms up
  }
}
const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
console.log(`${captured.rawHeaders.length / 2} request headers (pseudo-headers included), ${ROUNDS} rounds × ${N}, medians`);
console.log('| operation | ns |\n|---|---:|');
for (const [name, v] of Object.entries(results)) console.log(`| ${name} | ${median(v).toFixed(1)} |`);
