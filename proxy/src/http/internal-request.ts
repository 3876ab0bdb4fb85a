/**
 * Envoy's internal/external request classification (conn_manager_utility.cc
 * mutateRequestHeaders): a request is internal when, after XFF handling, exactly one
 * address speaks for the client and that address is internal. Internal requests get
 * `x-envoy-internal: true`; external ones lose the x-envoy-* control headers a client must
 * not set for the hops behind us, and edge requests (use_remote_address) are tagged with
 * `x-envoy-external-address`.
 */
import { BlockList, isIP } from 'node:net';
import type { CidrRange } from '../../../config/src/index.js';
import type { HeaderMap } from './headers.js';

/** Envoy's default internal ranges (RFC 1918, loopback, IPv6 ULA fd00::/8 and ::1). */
const DEFAULT_RANGES: readonly CidrRange[] = [
  { addressPrefix: '10.0.0.0', prefixLen: 8 }, { addressPrefix: '172.16.0.0', prefixLen: 12 },
  { addressPrefix: '192.168.0.0', prefixLen: 16 }, { addressPrefix: '127.0.0.0', prefixLen: 8 },
  { addressPrefix: 'fd00::', prefixLen: 8 }, { addressPrefix: '::1', prefixLen: 128 },
];

/** Headers only an internal request may carry (removed from external ones). */
export const INTERNAL_ONLY = [
  'x-envoy-internal', 'x-envoy-retry-on', 'x-envoy-retry-grpc-on', 'x-envoy-max-retries', 'x-envoy-upstream-alt-stat-name',
  'x-envoy-upstream-rq-timeout-ms', 'x-envoy-upstream-rq-per-try-timeout-ms', 'x-envoy-upstream-rq-timeout-alt-response',
  'x-envoy-expected-rq-timeout-ms', 'x-envoy-force-trace',
] as const;
/** Removed from edge requests as well. */
export const EDGE_ONLY = ['x-envoy-decorator-operation', 'x-envoy-downstream-service-cluster', 'x-envoy-downstream-service-node'] as const;

/*
 * INTERNAL_ONLY and EDGE_ONLY removed with one named property access per header: each
 * gets its own inline cache, where `h[LIST[i]]` was one keyed site seeing every name of
 * the list (megamorphic: a stub-cache probe per name, ~10 per request). The lists stay
 * the reference (the tests check these functions against them).
 */
export function clearInternalOnly(h: HeaderMap): void {
  if (h['x-envoy-internal'] !== undefined) h['x-envoy-internal'] = undefined;
  if (h['x-envoy-retry-on'] !== undefined) h['x-envoy-retry-on'] = undefined;
  if (h['x-envoy-retry-grpc-on'] !== undefined) h['x-envoy-retry-grpc-on'] = undefined;
  if (h['x-envoy-max-retries'] !== undefined) h['x-envoy-max-retries'] = undefined;
  if (h['x-envoy-upstream-alt-stat-name'] !== undefined) h['x-envoy-upstream-alt-stat-name'] = undefined;
  if (h['x-envoy-upstream-rq-timeout-ms'] !== undefined) h['x-envoy-upstream-rq-timeout-ms'] = undefined;
  if (h['x-envoy-upstream-rq-per-try-timeout-ms'] !== undefined) h['x-envoy-upstream-rq-per-try-timeout-ms'] = undefined;
  if (h['x-envoy-upstream-rq-timeout-alt-response'] !== undefined) h['x-envoy-upstream-rq-timeout-alt-response'] = undefined;
  if (h['x-envoy-expected-rq-timeout-ms'] !== undefined) h['x-envoy-expected-rq-timeout-ms'] = undefined;
  if (h['x-envoy-force-trace'] !== undefined) h['x-envoy-force-trace'] = undefined;
}

export function clearEdgeOnly(h: HeaderMap): void {
  if (h['x-envoy-decorator-operation'] !== undefined) h['x-envoy-decorator-operation'] = undefined;
  if (h['x-envoy-downstream-service-cluster'] !== undefined) h['x-envoy-downstream-service-cluster'] = undefined;
  if (h['x-envoy-downstream-service-node'] !== undefined) h['x-envoy-downstream-service-node'] = undefined;
}

/** Dotted-quad IPv4 to an unsigned 32-bit number; -1 when it is not one. No allocation. */
function ipv4(a: string): number {
  let n = 0;
  let part = -1;
  let dots = 0;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c === 46) {
      if (part < 0 || ++dots > 3) return -1;
      n = n * 256 + part;
      part = -1;
    } else if (c >= 48 && c <= 57) {
      part = part < 0 ? c - 48 : part * 10 + c - 48;
      if (part > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || part < 0) return -1;
  return n * 256 + part;
}

export class InternalAddresses {
  /** IPv4 ranges as [network, mask] (unsigned); IPv6 goes to node's BlockList (allocates per check). */
  private readonly v4: number[] = [];
  private readonly v6 = new BlockList();
  private hasV6 = false;

  /** internal_address_config.cidr_ranges; empty = Envoy's defaults. */
  constructor(ranges: readonly CidrRange[]) {
    for (const r of ranges.length > 0 ? ranges : DEFAULT_RANGES) {
      if (isIP(r.addressPrefix) === 6) {
        this.v6.addSubnet(r.addressPrefix, r.prefixLen, 'ipv6');
        this.hasV6 = true;
      } else {
        const mask = r.prefixLen === 0 ? 0 : (0xffffffff << (32 - r.prefixLen)) >>> 0;
        this.v4.push((ipv4(r.addressPrefix) & mask) >>> 0, mask);
      }
    }
  }

  isInternal(address: string): boolean {
    // IPv4-mapped IPv6 (dual-stack sockets) is the IPv4 address.
    const a = address.startsWith('::ffff:') ? address.slice(7) : address;
    const n = ipv4(a);
    if (n >= 0) {
      for (let i = 0; i < this.v4.length; i += 2) if (((n & this.v4[i + 1]!) >>> 0) === this.v4[i]) return true;
      return false;
    }
    return this.hasV6 && isIP(a) === 6 && this.v6.check(a, 'ipv6');
  }
}

/**
 * Envoy's getLastAddressFromXFF: the address `skip` entries from the right of XFF, when
 * it is a valid IP; undefined otherwise.
 */
export function xffAddress(xff: string | undefined, skip: number): string | undefined {
  if (xff === undefined || xff === '') return undefined;
  const parts = xff.split(',');
  if (skip >= parts.length) return undefined;
  const a = parts[parts.length - 1 - skip]!.trim();
  return isIP(a) !== 0 ? a : undefined;
}

/**
 * Classifies the request and applies the header consequences. `xff` is the request's
 * XFF before this hop appended to it. Returns whether the request is an edge request.
 */
export function classifyRequest(
  headers: HeaderMap, xff: string | undefined, remote: string, useRemoteAddress: boolean, trustedHops: number, internal: InternalAddresses,
): boolean {
  let address: string | undefined;
  let single: boolean;
  if (useRemoteAddress) {
    single = xff === undefined;
    if (trustedHops > 0) address = xffAddress(xff, trustedHops - 1);
    address ??= remote;
  } else {
    address = xffAddress(xff, trustedHops);
    single = xff !== undefined && xff.indexOf(',') < 0;
  }
  if (single && address !== undefined && address !== '' && internal.isInternal(address)) {
    headers['x-envoy-internal'] = 'true';
    return false;
  }
  clearInternalOnly(headers);
  if (!useRemoteAddress) return false;
  clearEdgeOnly(headers);
  if (address !== undefined && address !== '') headers['x-envoy-external-address'] = address;
  return true;
}
