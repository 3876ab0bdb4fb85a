import t from 'tap';
import fc from 'fast-check';
import { addHeader } from '../../src/http1/connection.js';
import { newHeaderMap } from '../../src/http/headers.js';

/**
 * The raw path folds a request's header lines into the header map the exchange core reads,
 * with node's IncomingMessage rules (the node path's): set-cookie a list, cookie joined with
 * "; ", the first of the single-valued names kept, any other repeat joined with ", ".
 * Property: for any lines (names that JavaScript objects treat specially included), the map
 * has exactly one own entry per distinct name, with the reference fold's value.
 */

const FIRST_WINS = ['host', 'content-type', 'user-agent', 'authorization'];
const name = fc.oneof(
  fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,10}$/),
  fc.constantFrom('constructor', '__proto__', 'tostring', 'hasownproperty', 'set-cookie', 'cookie', 'x-a', ...FIRST_WINS),
);
const value = fc.stringMatching(/^[ -~]{0,8}$/);

function reference(lines: readonly (readonly [string, string])[]): Map<string, string | string[]> {
  const m = new Map<string, string | string[]>();
  for (const [k, v] of lines) {
    const cur = m.get(k);
    if (cur === undefined) m.set(k, k === 'set-cookie' ? [v] : v);
    else if (k === 'set-cookie') (cur as string[]).push(v);
    else if (!FIRST_WINS.includes(k)) m.set(k, `${cur as string}${k === 'cookie' ? '; ' : ', '}${v}`);
  }
  return m;
}

t.test('header lines fold into own entries only, as the reference fold does', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(name, value), { maxLength: 16 }), (lines) => {
    const h = newHeaderMap();
    for (const [k, v] of lines) addHeader(h, k, v);
    const want = reference(lines);
    const own = Object.keys(h);
    if (own.length !== want.size) return false;
    for (const [k, v] of want) {
      const d = Object.getOwnPropertyDescriptor(h, k);
      if (d === undefined || JSON.stringify(d.value) !== JSON.stringify(v)) return false;
    }
    return true;
  }), { numRuns: 1000 });
  t.pass('held for 1,000 generated heads');
});

t.test('a name Object.prototype has is absent until sent, then an ordinary header', async (t) => {
  const h = newHeaderMap();
  t.equal(h.constructor, undefined, 'constructor is not Object');
  t.equal(h['__proto__'], undefined, '__proto__ is not a prototype');
  addHeader(h, '__proto__', 'p');
  addHeader(h, 'constructor', 'c');
  addHeader(h, 'constructor', 'd');
  t.same(Object.entries(h), [['__proto__', 'p'], ['constructor', 'c, d']]);
  t.equal(Object.getPrototypeOf(Object.getPrototypeOf(h)), null, 'no Object.prototype behind the map');
});
