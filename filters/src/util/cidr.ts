import { BlockList, isIP } from 'node:net';
import type { Diagnostics } from '../../../config/src/index.js';
import { int, isObj, str } from './fields.js';

/** envoy.config.core.v3.CidrRange, compiled to a test over a peer address. */
export type IpTest = (ip: string) => boolean;

/** IPv4-mapped IPv6 ("::ffff:10.0.0.1", what dual-stack sockets report) as IPv4. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export function compileCidr(v: unknown, diag: Diagnostics, path: string): IpTest | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be a CidrRange');
    return undefined;
  }
  const addr = str(v, 'address_prefix', diag, path);
  const fam = addr === undefined ? 0 : isIP(addr);
  if (fam === 0) {
    diag.error(`${path}.address_prefix`, `invalid IP address ${JSON.stringify(addr)}`);
    return undefined;
  }
  const max = fam === 4 ? 32 : 128;
  const len = int(v, 'prefix_len', diag, path, { min: 0, max }) ?? max;
  const list = new BlockList();
  const type = fam === 4 ? 'ipv4' : 'ipv6';
  list.addSubnet(addr!, len, type);
  return (ip) => {
    const n = normalizeIp(ip);
    const f = isIP(n);
    return f !== 0 && list.check(n, f === 4 ? 'ipv4' : 'ipv6');
  };
}
