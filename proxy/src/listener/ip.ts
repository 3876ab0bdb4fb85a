import { isIPv4, isIPv6 } from 'node:net';
import type { CidrRange } from '../../../config/src/index.js';

/**
 * IP addresses as 16 bytes (IPv4 in the first 4, flagged by `v4`) for prefix matching of
 * filter_chain_match ranges. IPv4-mapped IPv6 ("::ffff:10.0.0.1", what a dual-stack
 * socket reports) counts as the IPv4 address, as Envoy matches it.
 */
export interface ParsedIp {
  readonly v4: boolean;
  readonly bytes: Uint8Array;
}

export function parseIp(address: string): ParsedIp | undefined {
  if (isIPv4(address)) return { v4: true, bytes: v4Bytes(address) };
  if (!isIPv6(address)) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { v4: true, bytes: v4Bytes(mapped[1]!) };
  return { v4: false, bytes: v6Bytes(address) };
}

function v4Bytes(a: string): Uint8Array {
  const out = new Uint8Array(16);
  a.split('.').forEach((p, i) => (out[i] = Number(p)));
  return out;
}

function v6Bytes(a: string): Uint8Array {
  const out = new Uint8Array(16);
  let text = a;
  // An embedded IPv4 tail ("::1.2.3.4", "64:ff9b::1.2.3.4") becomes two groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const b = v4Bytes(tail[1]!);
    text = text.slice(0, -tail[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const r = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...new Array<string>(8 - h.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export interface CompiledCidr {
  readonly v4: boolean;
  readonly bytes: Uint8Array;
  readonly prefixLen: number;
}

export function compileCidr(r: CidrRange): CompiledCidr | undefined {
  const ip = parseIp(r.addressPrefix);
  if (!ip) return undefined;
  return { v4: ip.v4, bytes: ip.bytes, prefixLen: Math.min(r.prefixLen, ip.v4 ? 32 : 128) };
}

export function cidrContains(c: CompiledCidr, ip: ParsedIp): boolean {
  if (c.v4 !== ip.v4) return false;
  const full = c.prefixLen >> 3;
  for (let i = 0; i < full; i++) if (c.bytes[i] !== ip.bytes[i]) return false;
  const bits = c.prefixLen & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (c.bytes[full]! & mask) === (ip.bytes[full]! & mask);
}

export function isLoopback(ip: ParsedIp): boolean {
  if (ip.v4) return ip.bytes[0] === 127;
  for (let i = 0; i < 15; i++) if (ip.bytes[i] !== 0) return false;
  return ip.bytes[15] === 1;
}

export function sameIp(a: ParsedIp, b: ParsedIp): boolean {
  if (a.v4 !== b.v4) return false;
  for (let i = 0; i < 16; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}
