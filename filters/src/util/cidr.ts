import { BlockList, isIP } from 'node:net';
import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';

/** envoy.config.core.v3.CidrRange, compiled to a test over a peer address. */
export type IpTest = (ip: string) => boolean;

/** IPv4-mapped IPv6 ("::ffff:10.0.0.1", what dual-stack sockets report) as IPv4. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export function compileCidr(v: unknown, diag: Diagnostics, path: string): IpTest | undefined {
  const r = ObjectReader.of(v, path, diag);
  if (!r) return undefined;
  const addr = r.string('address_prefix');
  const fam = addr === undefined ? 0 : isIP(addr);
  const max = fam === 6 ? 128 : 32;
  const len = r.has('prefix_len') ? r.int('prefix_len', max, 0, max) : max;
  r.finish();
  if (fam === 0) {
    diag.error(r.child('address_prefix'), `invalid IP address ${JSON.stringify(addr)}`);
    return undefined;
  }
  const list = new BlockList();
  const type = fam === 4 ? 'ipv4' : 'ipv6';
  list.addSubnet(addr!, len, type);
  return (ip) => {
    const n = normalizeIp(ip);
    const f = isIP(n);
    return f !== 0 && list.check(n, f === 4 ? 'ipv4' : 'ipv6');
  };
}
