// HTTP/1.1 request-head parsing cost per request, for the choice of parser of the raw
// HTTP/1.1 path (proxy/src/http1/llhttp.ts; docs/ARCHITECTURE.md quotes the result):
// node's native llhttp (internal HTTPParser), undici's llhttp wasm with strings for every
// header, the same wasm reporting offsets only, and a bare CRLFCRLF search for scale.
// `node bench/http/parsers.mjs` (about 10 s, one core).
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { HTTPParser } = require('_http_common');
const REQ = Buffer.from('GET /api/v1/items?id=42 HTTP/1.1\r\nHost: backend.default.svc:8080\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nX-Request-Id: 7f3c2a10-1b2c-4d5e-8f90-123456789abc\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive\r\n\r\n');
const N = 300000;
function bench(name, fn) { for (let i = 0; i < 50000; i++) fn(); const t = process.hrtime.bigint(); for (let i = 0; i < N; i++) fn(); const ns = Number(process.hrtime.bigint() - t) / N; console.log(name, ns.toFixed(0), 'ns/request'); }
// A: node native llhttp
{
  const p = new HTTPParser();
  let got = 0;
  p[HTTPParser.kOnHeadersComplete] = (maj, min, headers, method, url) => { got += headers.length + url.length; return 0; };
  p[HTTPParser.kOnMessageComplete] = () => {};
  p[HTTPParser.kOnBody] = () => {};
  p[HTTPParser.kOnHeaders] = () => {};
  p[HTTPParser.kOnExecute] = () => {};
  p.initialize(HTTPParser.REQUEST, {}, 16384, 0);
  bench('node HTTPParser (native llhttp)', () => { const r = p.execute(REQ); if (typeof r !== 'number') throw r; });
}
// B: undici wasm llhttp, our own glue
for (const file of ['llhttp_simd-wasm.js', 'llhttp-wasm.js']) {
  let cur, base = 0, fields = [], url = '';
  const env = {
    wasm_on_url: (p, at, len) => { url = cur.latin1Slice(at - base, at - base + len); return 0; },
    wasm_on_status: () => 0, wasm_on_message_begin: () => { fields.length = 0; return 0; },
    wasm_on_header_field: (p, at, len) => { fields.push(cur.latin1Slice(at - base, at - base + len)); return 0; },
    wasm_on_header_value: (p, at, len) => { fields.push(cur.latin1Slice(at - base, at - base + len)); return 0; },
    wasm_on_headers_complete: () => 0, wasm_on_body: () => 0, wasm_on_message_complete: () => 0,
  };
  const inst = new WebAssembly.Instance(new WebAssembly.Module(require('undici/lib/llhttp/' + file)), { env });
  const x = inst.exports;
  const ptr = x.llhttp_alloc(1);
  const bufPtr = x.malloc(65536);
  bench('undici wasm ' + file, () => {
    new Uint8Array(x.memory.buffer, bufPtr, REQ.length).set(REQ);
    cur = REQ; base = bufPtr;
    const r = x.llhttp_execute(ptr, bufPtr, REQ.length);
    if (r !== 0) throw new Error('err ' + r);
  });
}
// C: indexOf-based head split (the raw-h1 experiment's floor), for scale
bench('indexOf CRLFCRLF only', () => { if (REQ.indexOf('\r\n\r\n') < 0) throw 0; });
{
  let base = 0; const offs = new Int32Array(512); let n = 0;
  const env = {
    wasm_on_url: (p, at, len) => { offs[n++] = at - base; offs[n++] = len; return 0; },
    wasm_on_status: () => 0, wasm_on_message_begin: () => { n = 0; return 0; },
    wasm_on_header_field: (p, at, len) => { offs[n++] = at - base; offs[n++] = len; return 0; },
    wasm_on_header_value: (p, at, len) => { offs[n++] = at - base; offs[n++] = len; return 0; },
    wasm_on_headers_complete: () => 0, wasm_on_body: () => 0, wasm_on_message_complete: () => 0,
  };
  const inst = new WebAssembly.Instance(new WebAssembly.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js')), { env });
  const x = inst.exports; const ptr = x.llhttp_alloc(1); const bufPtr = x.malloc(65536);
  bench('undici wasm simd, offsets only (no strings)', () => {
    new Uint8Array(x.memory.buffer, bufPtr, REQ.length).set(REQ); base = bufPtr;
    const r = x.llhttp_execute(ptr, bufPtr, REQ.length); if (r !== 0) throw new Error('err ' + r);
  });
}
