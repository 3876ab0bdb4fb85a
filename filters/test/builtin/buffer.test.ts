import t from 'tap';
import { Diagnostics } from '../../../config/src/index.js';
import { buildHttpFilterChain, decodePerFilterConfig, FILTER_DISABLED, type DataResult } from '../../src/index.js';
import { ROUTER, filter, info, req } from '../helpers.js';

const BUF = 'envoy.extensions.filters.http.buffer.v3.Buffer';
const diag = new Diagnostics();
const chain = buildHttpFilterChain([filter('buffer', BUF, { max_request_bytes: 10 }), ROUTER], diag, 'f')!;
const enc = (s: string) => Buffer.from(s);

t.test('config decodes; chain wants the body', async (t) => {
  t.same(diag.errors, []);
  t.equal(chain.wantsRequestBody, true);
});

t.test('chunks are held until end of stream, then released whole', async (t) => {
  const i = info();
  t.equal(chain.decodeHeaders(req({ method: 'POST' }), i), undefined);
  t.same(chain.decodeData(enc('hello '), false, i), { data: null });
  const last = chain.decodeData(enc('you'), true, i) as { data: Uint8Array };
  t.equal(Buffer.from(last.data).toString(), 'hello you');
  chain.streamComplete(i);
});

t.test('413 beyond max_request_bytes, from content-length or from the data', async (t) => {
  t.match(chain.decodeHeaders(req({ method: 'POST' }, { 'content-length': '11' }), info()), { status: 413, details: 'request_payload_too_large' });
  const i = info();
  chain.decodeHeaders(req({ method: 'POST' }), i);
  chain.decodeData(enc('123456'), false, i);
  t.match(chain.decodeData(enc('789012'), false, i) as DataResult, { status: 413 });
});

t.test('per route: disabled passes chunks through; a smaller limit applies', async (t) => {
  const off = decodePerFilterConfig('buffer', { name: 'buffer', typeUrl: 'envoy.extensions.filters.http.buffer.v3.BufferPerRoute', config: { disabled: true } }, diag, 'r');
  t.equal(off, FILTER_DISABLED);
  const i = info({ perFilterConfig: { buffer: off } });
  t.equal(chain.decodeData(enc('x'.repeat(100)), false, i), undefined, 'passes through unchanged');
  const small = decodePerFilterConfig('buffer', { name: 'buffer', typeUrl: 'envoy.extensions.filters.http.buffer.v3.BufferPerRoute', config: { buffer: { max_request_bytes: 2 } } }, diag, 'r');
  t.match(chain.decodeData(enc('abc'), true, info({ perFilterConfig: { buffer: small } })) as DataResult, { status: 413 });
  t.same(diag.errors, []);
});

t.test('max_request_bytes is required', async (t) => {
  const d = new Diagnostics();
  t.equal(buildHttpFilterChain([filter('b2', BUF, {}), ROUTER], d, 'f'), undefined);
  t.match(d.errors, [{ path: 'f[0].typed_config.max_request_bytes' }]);
});
