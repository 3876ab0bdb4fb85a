import type { HashPolicy } from '../../../../config/src/index.js';
import { hash53 } from '../../cluster/hash.js';
import { firstValue, type HeaderMap } from '../headers.js';

const TWO32 = 4294967296;
const LOW21 = 0x1fffff;

/** One policy's key, or undefined when the request has none (the policy then adds nothing). */
export function hashKey(p: HashPolicy, headers: HeaderMap, path: string, sourceAddress: string): string | undefined {
  switch (p.kind) {
    case 'header': {
      const raw = headers[p.name];
      return Array.isArray(raw) ? raw.join(',') : raw;
    }
    case 'source_ip':
      return sourceAddress || undefined;
    case 'cookie':
      return readCookie(firstValue(headers.cookie), p.name);
    case 'query_parameter': {
      const q = path.indexOf('?');
      return q < 0 ? undefined : new URLSearchParams(path.slice(q + 1)).get(p.name) ?? undefined;
    }
  }
}

/**
 * The request hash for ring hash / Maglev, combining the route's hash policies as Envoy's
 * HashPolicyImpl::generateHash does: for each policy with a key,
 * `hash = rotl64(hash, 1) ^ key_hash` (the first one: `0 ^ key_hash`), and a terminal
 * policy stops the walk once a hash exists. Differences, on purpose: a key's hash is
 * hash53 (not xxHash64), so it has 53 bits; the 64-bit rotate-xor is done on two 32-bit
 * halves (no BigInt, no allocation) and the result is cut to its low 53 bits, the range
 * the load balancers take. One policy therefore yields exactly hash53(key). Positional
 * arguments: the request path allocates no argument object.
 */
export function requestHash(policies: readonly HashPolicy[], headers: HeaderMap, path: string, sourceAddress: string): number | undefined {
  let have = false;
  let hi = 0;
  let lo = 0;
  for (const p of policies) {
    const v = hashKey(p, headers, path, sourceAddress);
    if (v !== undefined) {
      const x = hash53(v);
      const xHi = Math.floor(x / TWO32);
      const xLo = x >>> 0;
      if (have) {
        const rHi = ((hi << 1) | (lo >>> 31)) >>> 0;
        const rLo = ((lo << 1) | (hi >>> 31)) >>> 0;
        hi = (rHi ^ xHi) >>> 0;
        lo = (rLo ^ xLo) >>> 0;
      } else {
        hi = xHi;
        lo = xLo;
        have = true;
      }
    }
    if (p.terminal && have) break;
  }
  return have ? (hi & LOW21) * TWO32 + lo : undefined;
}

/** A cookie's value from a Cookie header; undefined when absent. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
