import { ENUMS } from './enums.js';
import { isIP } from 'node:net';
import type { CidrRange, SocketAddress } from './model.js';
import type { ObjectReader } from './reader.js';
import { decodeInternalAddress, internalSocketAddress } from './internal.js';

/**
 * A host name a DNS cluster may hand to the resolver. Envoy passes the string to c-ares
 * unchanged, so beyond RFC 1123 labels it also takes underscores (docker-compose service
 * names like `web_service`, SRV-style `_http._tcp` labels). Whitespace, slashes, colons and
 * empty labels are never valid in a name a resolver can answer.
 */
const HOSTNAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

export function isHostname(s: string): boolean {
  return HOSTNAME.test(s);
}

/** How an address string is classified: an IP literal, a host name a resolver can take, or neither. */
export function classifyHost(s: string): 'ip' | 'hostname' | 'invalid' {
  if (isIP(s) !== 0) return 'ip';
  return isHostname(s) ? 'hostname' : 'invalid';
}

/**
 * envoy.config.core.v3.Address: `socket_address`, or `pipe` (a Unix domain socket: path,
 * mode) decoded as a SocketAddress with `pipe` set, address = path and port 0.
 * `envoy_internal_address` names an internal listener (`internal` set). Static and EDS addresses must
 * be IP literals; DNS clusters may name hosts (`allowHostname`).
 */
export function decodeAddress(r: ObjectReader, allowHostname: boolean): SocketAddress | undefined {
  const which = r.oneof(['socket_address', 'pipe', 'envoy_internal_address'], true, 'an address,');
  if (which === 'envoy_internal_address') {
    // An internal listener of this proxy, by name (config/src/internal.ts).
    const ia = r.object('envoy_internal_address');
    r.finish();
    if (!ia) r.diag.error(r.child('envoy_internal_address'), 'must not be null');
    const internal = ia ? decodeInternalAddress(ia) : undefined;
    return internal ? internalSocketAddress(internal) : undefined;
  }
  const before = r.diag.errors.length;
  if (which === 'pipe') {
    const p = r.object('pipe');
    r.finish();
    if (!p && r.diag.errors.length === before) r.diag.error(r.child('pipe'), 'must not be null');
    return p ? decodePipe(p) : undefined;
  }
  const sa = which === 'socket_address' ? r.object('socket_address') : undefined;
  r.finish();
  if (!sa) {
    if (which !== undefined && r.diag.errors.length === before) r.diag.error(r.child(which), 'must not be null');
    return undefined;
  }
  return decodeSocketAddress(sa, allowHostname);
}

function decodePipe(p: ObjectReader): SocketAddress | undefined {
  const path = p.requiredString('path');
  // mode: file permission bits for the socket file (proto: uint32, lte 0777).
  const mode = p.int('mode', 0, 0, 0o777);
  p.finish();
  if (path === undefined || path === '') return undefined;
  if (path.includes('\0')) {
    p.diag.error(p.child('path'), 'must not contain NUL');
    return undefined;
  }
  if (path.startsWith('@') && p.has('mode') && mode !== 0) {
    // Envoy refuses a mode on abstract sockets: they have no file to chmod.
    p.diag.error(p.child('mode'), 'cannot be set for an abstract socket (path starting with "@")');
    return undefined;
  }
  return { address: path, port: 0, protocol: 'TCP', pipe: { path, mode } };
}

function decodeSocketAddress(sa: ObjectReader, allowHostname: boolean): SocketAddress | undefined {
  const address = sa.requiredString('address');
  const protocol = sa.enumOf('protocol', ENUMS['core.SocketAddress.Protocol'], 'TCP');
  const named = sa.string('named_port');
  if (named !== undefined) sa.diag.error(sa.child('named_port'), 'named ports are not supported; use port_value');
  const port = sa.int('port_value', 0, 0, 65535);
  // Accepted without effect (safe): ipv4_compat asks for a dual-stack socket on "::", which
  // is how Node listens on "::" anyway.
  sa.accept('ipv4_compat');
  if (sa.has('resolver_name')) {
    sa.accept('resolver_name');
    sa.diag.warn(sa.child('resolver_name'), 'not supported by pilotfish; ignored (the system resolver is used)');
  }
  sa.finish();
  if (address === undefined || address === '') return undefined;
  const kind = classifyHost(address);
  if (!allowHostname && kind !== 'ip') {
    sa.diag.error(sa.child('address'), `expected an IP address, got "${address}" (use a STRICT_DNS or LOGICAL_DNS cluster for host names)`);
    return undefined;
  }
  if (kind === 'invalid') {
    sa.diag.error(sa.child('address'), `"${address}" is neither an IP address nor a host name`);
    return undefined;
  }
  return { address, port, protocol };
}

/**
 * envoy.config.core.v3.CidrRange (also xds.core.v3.CidrRange): address_prefix must be an
 * IP literal, prefix_len (a UInt32Value; plain numbers accepted too) at most 32 for IPv4
 * and 128 for IPv6. Absent prefix_len is 0, as proto3 reads it.
 */
export function decodeCidrRange(r: ObjectReader): CidrRange | undefined {
  const before = r.diag.errors.length;
  const addressPrefix = r.requiredString('address_prefix');
  const prefixLen = r.int('prefix_len', 0, 0, 128);
  r.finish();
  if (addressPrefix === undefined || addressPrefix === '' || r.diag.errors.length > before) return undefined;
  const family = isIP(addressPrefix);
  if (family === 0) {
    r.diag.error(r.child('address_prefix'), `expected an IP address, got "${addressPrefix}"`);
    return undefined;
  }
  if (family === 4 && prefixLen > 32) {
    r.diag.error(r.child('prefix_len'), `must be at most 32 for an IPv4 address, got ${prefixLen}`);
    return undefined;
  }
  return { addressPrefix, prefixLen };
}
