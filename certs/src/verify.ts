/**
 * Peer chain verification done by pilotfish itself (OpenSSL is told to accept any chain),
 * so that the result can be cached: chain to the trust bundle (per SPIFFE trust domain),
 * validity of every certificate on the path, SAN policy, pinned hashes.
 *
 * Cache soundness: a success depends only on the leaf (its key is proven by the TLS
 * handshake itself) - if one valid path existed, it still does until the first
 * notAfter on it - so successes are keyed by the leaf's fingerprint and live no
 * longer than that notAfter. Failures depend on the intermediates the peer sent, so
 * they are keyed by the whole presented chain and live briefly. Any change of trust
 * bundle or SAN policy flushes everything.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type { LRUCache } from 'lru-cache';
import { identityOf, type PeerIdentity } from './identity.js';
import { sansMatch, sansOf, type CompiledSanMatcher } from './match.js';
import type { FailReason, TlsStats } from './stats.js';

export interface TrustPolicy {
  /** Anchors for any peer not covered by a trust-domain bundle. */
  readonly anchors: readonly X509Certificate[];
  /** SPIFFE trust domain -> its bundle; SPIFFE peers of these domains must chain to their own. */
  readonly domains: ReadonlyMap<string, readonly X509Certificate[]>;
  readonly sanMatchers: readonly CompiledSanMatcher[];
  readonly certificateHashes: ReadonlySet<string>;
  readonly allowExpired: boolean;
  readonly acceptUntrusted: boolean;
  readonly maxVerifyDepth: number;
  /** Digest of everything above; equal keys mean equal policies. */
  readonly key: string;
}

export type VerifyResult =
  | { readonly ok: true; readonly identity: PeerIdentity; readonly cached: boolean }
  | { readonly ok: false; readonly reason: FailReason; readonly detail: string; readonly cached: boolean };

export interface VerifierOptions {
  /** Entries kept (default 10,000). */
  readonly max?: number;
  /** Upper bound for a success's TTL (default 10 min); the leaf's notAfter bounds it further. */
  readonly maxTtlMs?: number;
  /** TTL of cached failures (default 5 s). 0 disables failure caching. */
  readonly negativeTtlMs?: number;
  /** false turns the cache off (benchmarks, debugging). */
  readonly enabled?: boolean;
  readonly now?: () => number;
}

type Entry =
  | { readonly ok: true; readonly identity: PeerIdentity }
  | { readonly ok: false; readonly reason: FailReason; readonly detail: string };

const INTERMEDIATE_POOL = 256;

// lru-cache is required with the first verifier (a TLS context that checks peers), not
// when certs/ is imported: a plaintext proxy loads certs/ for its decoders only.
const require = createRequire(import.meta.url);
const lru = (): typeof import('lru-cache') => require('lru-cache') as typeof import('lru-cache');

export class PeerVerifier {
  private policy: TrustPolicy | undefined;
  private readonly cache: LRUCache<string, Entry>;
  /** Intermediates seen on verified chains: a resumed session carries only the leaf. */
  private readonly intermediates: LRUCache<string, X509Certificate> = new (lru().LRUCache)<string, X509Certificate>({ max: INTERMEDIATE_POOL });
  private readonly maxTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly enabled: boolean;
  private readonly now: () => number;

  constructor(private readonly stats: TlsStats, o: VerifierOptions = {}) {
    this.cache = new (lru().LRUCache)<string, Entry>({ max: o.max ?? 10_000, ttlAutopurge: false, allowStale: false });
    this.maxTtlMs = o.maxTtlMs ?? 600_000;
    this.negativeTtlMs = o.negativeTtlMs ?? 5_000;
    this.enabled = o.enabled ?? true;
    this.now = o.now ?? Date.now;
  }

  get currentPolicy(): TrustPolicy | undefined {
    return this.policy;
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /** Installs a policy; a different policy flushes the cache. Returns whether it changed. */
  setPolicy(p: TrustPolicy): boolean {
    if (this.policy?.key === p.key) return false;
    this.policy = p;
    this.flush();
    return true;
  }

  flush(): void {
    if (this.cache.size > 0) this.stats['ssl.verify_cache_flush']++;
    this.cache.clear();
  }

  /** Milliseconds left on the cached success for a leaf (0 if none). */
  remainingTtl(leaf: X509Certificate): number {
    const key = `ok:${leaf.fingerprint256}`;
    return this.cache.has(key) ? this.cache.getRemainingTTL(key) : 0;
  }

  /**
   * Verifies a peer chain. `leaf.issuerCertificate` links (as produced by
   * getPeerX509Certificate) and/or `presented` give the intermediates the peer sent.
   */
  verify(leaf: X509Certificate, presented?: readonly X509Certificate[]): VerifyResult {
    const p = this.policy;
    if (!p) return { ok: false, reason: 'unknown_ca', detail: 'no trust bundle loaded yet', cached: false };
    const okKey = `ok:${leaf.fingerprint256}`;
    if (this.enabled) {
      const hit = this.cache.get(okKey);
      if (hit) {
        this.stats['ssl.verify_cache_hit']++;
        return { ...hit, cached: true };
      }
    }
    const chain = presented ?? issuerChain(leaf, p.maxVerifyDepth + 1);
    let failKey: string | undefined;
    if (this.enabled && this.negativeTtlMs > 0) {
      failKey = chain.length === 0 ? `no:${leaf.fingerprint256}` : `no:${chainDigest(leaf, chain)}`;
      const hit = this.cache.get(failKey);
      if (hit) {
        this.stats['ssl.verify_cache_hit']++;
        return { ...hit, cached: true };
      }
    }
    if (this.enabled) this.stats['ssl.verify_cache_miss']++;
    const now = this.now();
    const r = this.verifyUncached(p, leaf, chain, now);
    if (this.enabled) {
      if (r.ok) {
        const ttl = Math.min(this.maxTtlMs, r.notAfter - now);
        if (ttl > 0) this.cache.set(okKey, { ok: true, identity: r.identity }, { ttl });
        for (const c of r.path) this.intermediates.set(c.fingerprint256, c);
      } else if (failKey !== undefined) {
        // A not-yet-valid chain may turn good at notBefore; never cache past it.
        const ttl = Math.min(this.negativeTtlMs, r.validInMs ?? Infinity);
        if (ttl > 0) this.cache.set(failKey, { ok: false, reason: r.reason, detail: r.detail }, { ttl });
      }
    }
    return r.ok ? { ok: true, identity: r.identity, cached: false } : { ok: false, reason: r.reason, detail: r.detail, cached: false };
  }

  private verifyUncached(p: TrustPolicy, leaf: X509Certificate, presented: readonly X509Certificate[], now: number):
    | { ok: true; identity: PeerIdentity; notAfter: number; path: X509Certificate[] }
    | { ok: false; reason: FailReason; detail: string; validInMs?: number } {
    let identity: PeerIdentity;
    try {
      identity = identityOf(leaf);
    } catch (e) {
      return { ok: false, reason: 'malformed', detail: `unparseable certificate: ${(e as Error).message}` };
    }
    const spiffeSans = identity.uriSans.filter((u) => u.startsWith('spiffe://'));
    if (spiffeSans.length > 1) return { ok: false, reason: 'malformed', detail: `${spiffeSans.length} SPIFFE IDs in one certificate` };
    if (spiffeSans.length === 1 && identity.spiffeId === undefined) {
      return { ok: false, reason: 'malformed', detail: `invalid SPIFFE ID ${JSON.stringify(spiffeSans[0])}` };
    }
    if (leaf.ca) return { ok: false, reason: 'malformed', detail: 'peer presented a CA certificate as its leaf' };
    let anchors = p.anchors;
    if (p.domains.size > 0) {
      if (identity.trustDomain !== undefined && p.domains.has(identity.trustDomain)) anchors = p.domains.get(identity.trustDomain)!;
      else if (p.anchors.length === 0) {
        return identity.trustDomain === undefined
          ? { ok: false, reason: 'malformed', detail: 'no SPIFFE ID URI SAN (SPIFFE validation requires one)' }
          : { ok: false, reason: 'unknown_ca', detail: `no trust bundle for trust domain "${identity.trustDomain}"` };
      }
    }
    let path: X509Certificate[] = [];
    if (!p.acceptUntrusted) {
      const built = buildPath(leaf, presented, [...this.intermediates.values()], anchors, p.maxVerifyDepth);
      if (!built) return { ok: false, reason: 'unknown_ca', detail: `no path from "${oneLine(leaf.issuer)}" to a trusted CA` };
      path = built;
    }
    let notAfter = Infinity;
    for (const c of [leaf, ...path]) {
      const from = Date.parse(c.validFrom);
      const to = Date.parse(c.validTo);
      if (Number.isNaN(from) || Number.isNaN(to)) return { ok: false, reason: 'malformed', detail: 'unreadable validity dates' };
      if (!p.allowExpired) {
        if (now < from) return { ok: false, reason: 'not_yet_valid', detail: `"${oneLine(c.subject)}" valid from ${c.validFrom}`, validInMs: from - now };
        if (now > to) return { ok: false, reason: 'expired', detail: `"${oneLine(c.subject)}" expired ${c.validTo}` };
      }
      notAfter = Math.min(notAfter, to);
    }
    if (p.certificateHashes.size > 0 && !p.certificateHashes.has(identity.fingerprint)) {
      return { ok: false, reason: 'cert_hash', detail: `leaf hash ${identity.fingerprint} is not pinned` };
    }
    const needAll = p.sanMatchers.some((m) => m.sanType !== 'URI' && m.sanType !== 'DNS');
    const sans = needAll ? sansOf(leaf) : { uri: identity.uriSans, dns: identity.dnsSans, email: [], ip: [] };
    if (!sansMatch(sans, p.sanMatchers)) {
      return { ok: false, reason: 'san_mismatch', detail: `SANs [${[...identity.uriSans, ...identity.dnsSans].join(', ')}] match no policy matcher` };
    }
    // Intermediates only (anchors are part of the policy, not worth pooling).
    return { ok: true, identity, notAfter: p.allowExpired ? now + this.maxTtlMs : notAfter, path: path.slice(0, -1) };
  }
}

function oneLine(dn: string): string {
  return dn.replace(/\n/g, ', ');
}

function issuerChain(leaf: X509Certificate, max: number): X509Certificate[] {
  const out: X509Certificate[] = [];
  let c = leaf.issuerCertificate;
  while (c && out.length < max) {
    out.push(c);
    const next = c.issuerCertificate;
    if (!next || next === c || next.fingerprint256 === c.fingerprint256) break;
    c = next;
  }
  return out;
}

function chainDigest(leaf: X509Certificate, chain: readonly X509Certificate[]): string {
  const h = createHash('sha256').update(leaf.fingerprint256);
  for (const c of chain) h.update(c.fingerprint256);
  return h.digest('base64');
}

function issues(issuer: X509Certificate, c: X509Certificate): boolean {
  try {
    return c.checkIssued(issuer) && c.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Walks leaf -> ... -> anchor using presented (and pooled) intermediates. Returns the
 * path above the leaf ending with the anchor, or undefined. Intermediates must be CAs.
 */
function buildPath(leaf: X509Certificate, presented: readonly X509Certificate[], pool: readonly X509Certificate[],
  anchors: readonly X509Certificate[], maxDepth: number): X509Certificate[] | undefined {
  const leafFp = leaf.fingerprint256;
  // A leaf pinned directly in the bundle is its own anchor.
  if (anchors.some((a) => a.fingerprint256 === leafFp)) return [];
  const path: X509Certificate[] = [];
  const seen = new Set([leafFp]);
  let cur = leaf;
  for (let depth = 0; depth <= maxDepth; depth++) {
    const anchor = anchors.find((a) => issues(a, cur));
    if (anchor) {
      path.push(anchor);
      return path;
    }
    const next = [...presented, ...pool].find((i) => !seen.has(i.fingerprint256) && i.ca && issues(i, cur));
    if (!next) return undefined;
    seen.add(next.fingerprint256);
    path.push(next);
    cur = next;
  }
  return undefined;
}

export function policyKey(parts: {
  anchors: readonly X509Certificate[];
  domains: ReadonlyMap<string, readonly X509Certificate[]>;
  rest: unknown;
}): string {
  const h = createHash('sha256');
  for (const a of parts.anchors) h.update(a.raw);
  for (const [d, certs] of [...parts.domains].sort(([a], [b]) => (a < b ? -1 : 1))) {
    h.update(`\0${d}\0`);
    for (const c of certs) h.update(c.raw);
  }
  h.update(JSON.stringify(parts.rest));
  return h.digest('hex');
}

