/**
 * Hashing for consistent-hash load balancing. Two 32-bit multiply-xorshift lanes
 * (cyrb53-style, MurmurHash-like finalisers) combined into a 53-bit value: 64-bit
 * quality where it matters for a ring of up to millions of points, while staying a
 * JS number (no BigInt, no allocation).
 */

const TWO32 = 4294967296;

/** 53-bit hash of a string. Stable across processes and versions: ring positions depend on it. */
export function hash53(s: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return TWO32 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * Spreads any non-negative request hash (32-bit from a header hash, or 53-bit) over the
 * whole 53-bit space, so that small or clustered hash values still land all around the
 * ring.
 */
export function mix53(n: number): number {
  const out = new Float64Array(1);
  mix53Into({ hash: n }, out);
  return out[0]!;
}

/**
 * mix53 for the request path: reads `src.hash` and writes `dst[0]`; false when there
 * is no hash (undefined or NaN). Doubles passed
 * to or returned from a call V8 does not inline are boxed (an allocation per pick);
 * fields of long-lived objects are not.
 */
export function mix53Into(src: { readonly hash?: number }, dst: Float64Array): boolean {
  const n = src.hash;
  if (typeof n !== 'number' || n !== n) return false; // absent or NaN
  const lo = n >>> 0;
  const hi = Math.floor(n / TWO32) >>> 0;
  let h1 = Math.imul(lo ^ 0x9e3779b9, 2654435761) ^ hi;
  let h2 = Math.imul(hi ^ 0x85ebca6b, 1597334677) ^ lo;
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  dst[0] = TWO32 * (2097151 & h2) + (h1 >>> 0);
  // MAGLEV looks up the unmixed hash (lb/hashed.ts RAW_HASH); a length-1 dst ignores it.
  dst[1] = n;
  return true;
}

export const HASH_SPACE = 2 ** 53;
