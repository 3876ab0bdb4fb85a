import t from 'tap';
import fc from 'fast-check';
import { h2Headers } from '../../src/http2/messages.js';
import { newHeaderMap } from '../../src/http/headers.js';

/**
 * h2Headers turns a response header object (upstream's, a filter's, a local reply's) into
 * one HTTP/2 can carry: node's respond() throws on connection-specific headers, and the
 * exchange core would then answer 502 for a response that HTTP/1.1 would have carried.
 */

const FORBIDDEN = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

const mixedCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
const token = fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const name = fc.oneof(token, fc.constantFrom(...FORBIDDEN).chain(mixedCase), fc.constantFrom(':status', ':path', 'te', 'TE', 'constructor', '__proto__'));
const value = fc.oneof(fc.string({ maxLength: 8 }), fc.constant('trailers'), fc.array(fc.string({ maxLength: 4 }), { minLength: 1, maxLength: 3 }), fc.constant(undefined));

t.test('what HTTP/2 cannot carry is dropped, everything else is kept with a lowercase name', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(name, value), { maxLength: 12 }), (entries) => {
    // Built as the codecs build header maps (constructor and __proto__ are names like any other).
    const input = newHeaderMap();
    for (const [k, v] of entries) input[k] = v;
    const into = newHeaderMap() as Record<string, string | number>;
    into[':status'] = 200;
    const out = h2Headers(input as Record<string, string | string[]>, into);
    for (const k of Object.keys(out)) {
      if (k === ':status') continue;
      if (k !== k.toLowerCase()) return false;
      if (FORBIDDEN.includes(k) || k.startsWith(':')) return false;
      if (k === 'te' && out[k] !== 'trailers') return false;
      if (out[k] === undefined) return false;
    }
    if (out[':status'] !== 200) return false;
    // Every input entry HTTP/2 allows is in the output (the last one, when names differ only in case).
    const expected = new Map<string, string | string[]>();
    for (const [k, v] of Object.entries(input)) {
      const n = k.toLowerCase();
      if (v === undefined || FORBIDDEN.includes(n) || n.startsWith(':') || (n === 'te' && v !== 'trailers')) continue;
      expected.set(n, v);
    }
    for (const [k, v] of expected) if (out[k] !== v) return false;
    return Object.keys(out).length === expected.size + 1;
  }), { numRuns: 500 });
  t.pass('held for 500 generated header objects');
});
