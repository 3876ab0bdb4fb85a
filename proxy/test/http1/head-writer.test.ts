import t from 'tap';
import fc from 'fast-check';
import { HeadWriter, InvalidHeaderError } from '../../src/http1/head.js';

/**
 * The raw path writes every head it sends (upstream requests, downstream responses) with
 * HeadWriter: a header value is written as its latin1 bytes when it is field-content
 * (HTAB, SP, VCHAR, obs-text) and refused otherwise, so a CR or LF from a filter, a route's
 * header edit or an upstream can never split a head. Long values take another path (a
 * regular expression and one copy, skipped checks for values already seen): both must agree
 * with the byte-by-byte rule, for new and repeated values alike.
 */

const valid = (s: string): boolean => [...s].every((ch) => {
  const c = ch.charCodeAt(0);
  return ch.length === 1 && (c === 9 || (c >= 32 && c !== 127 && c <= 255));
});

/** Mostly valid text, sometimes with a forbidden character at a random place. */
const value = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 300 }),
  fc.tuple(fc.string({ maxLength: 150 }), fc.constantFrom('\r', '\n', '\0', '\x7f', '\u0100', '\u2028', '\ud83d\ude00'), fc.string({ maxLength: 150 })).map(([a, bad, b]) => a + bad + b),
);

function write(w: HeadWriter, v: string): Buffer | InvalidHeaderError {
  try {
    return w.start().header('x-v', v).take();
  } catch (e) {
    if (e instanceof InvalidHeaderError) return e;
    throw e;
  }
}

t.test('a value is written as its latin1 bytes exactly when it is field-content, first time and again', async (t) => {
  const w = new HeadWriter();
  fc.assert(fc.property(fc.array(value, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 12 }), (values, repeats) => {
    // Some values are written again (the identity cache of long values must not change the answer).
    const sequence = [...values, ...repeats.map((i) => values[i % values.length]!)];
    for (const v of sequence) {
      const out = write(w, v);
      if (valid(v)) {
        if (!(out instanceof Buffer) || !out.equals(Buffer.from(`x-v: ${v}\r\n`, 'latin1'))) return false;
      } else if (!(out instanceof InvalidHeaderError)) return false;
    }
    return true;
  }), { numRuns: 500 });
  t.pass('held for 500 generated sequences');
});

t.test('a long value seen valid does not vouch for another of the same length', async (t) => {
  const w = new HeadWriter();
  const ok = 'a'.repeat(100);
  const bad = `${'a'.repeat(50)}\r\n${'a'.repeat(48)}`;
  t.equal(ok.length, bad.length);
  t.ok(write(w, ok) instanceof Buffer);
  t.ok(write(w, bad) instanceof InvalidHeaderError, 'CRLF refused after an equally long valid value');
  const big = 'Q'.repeat(1500);
  for (let i = 0; i < 3; i++) t.same(write(w, big), Buffer.from(`x-v: ${big}\r\n`, 'latin1'), 'a repeated 1.5 KB value (Istio peer metadata size) written whole');
});
