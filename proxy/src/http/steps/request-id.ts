import { randomFillSync } from 'node:crypto';

/**
 * x-request-id values: random (version 4) UUIDs, as crypto.randomUUID makes them, from
 * the same kind of batch of CSPRNG bytes (128 ids per refill), written as hex into one
 * scratch buffer and read out as one string. randomUUID concatenates 16 two-character
 * strings and 4 dashes, which left ~20 intermediate strings per request (~0.4 µs and a
 * few hundred bytes of garbage on the HTTP/1.1 path, proxy/test/http1/allocation.test.ts).
 */
const BATCH = 128;
const pool = Buffer.allocUnsafeSlow(16 * BATCH);
let used = BATCH;
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Where each of the 16 bytes' two hex digits go in xxxxxxxx-xxxx-4xxx-Nxxx-xxxxxxxxxxxx. */
const AT = Uint8Array.of(0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34);
const text = Buffer.from('00000000-0000-0000-0000-000000000000', 'latin1');

export function newRequestId(): string {
  if (used === BATCH) {
    randomFillSync(pool);
    used = 0;
  }
  const o = 16 * used++;
  for (let i = 0; i < 16; i++) {
    let b = pool[o + i]!;
    // RFC 9562: version 4 in the high nibble of byte 6, variant 10xx in byte 8.
    if (i === 6) b = (b & 0x0f) | 0x40;
    else if (i === 8) b = (b & 0x3f) | 0x80;
    const p = AT[i]!;
    text[p] = HEX[b >> 4]!;
    text[p + 1] = HEX[b & 15]!;
  }
  return text.toString('latin1', 0, 36);
}
