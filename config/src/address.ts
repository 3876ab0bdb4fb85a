import { isIP } from 'node:net';
import type { SocketAddress } from './model.js';
import type { ObjectReader } from './reader.js';

/**
 * envoy.config.core.v3.Address: only `socket_address` (pilotfish has no pipes or
 * internal listeners). Static and EDS addresses must be IP literals; DNS clusters
 * may name hosts (`allowHostname`).
 */
export function decodeAddress(r: ObjectReader, allowHostname: boolean): SocketAddress | undefined {
  const sa = r.object('socket_address');
  if (!sa) {
    if (r.has('pipe') || r.has('envoy_internal_address')) {
      r.accept('pipe', 'envoy_internal_address');
      r.diag.error(r.path, 'only socket_address is supported');
    } else r.diag.error(r.child('socket_address'), 'is required');
    r.finish();
    return undefined;
  }
  r.finish();
  const address = sa.requiredString('address');
  const protocol = sa.enumOf('protocol', ['TCP', 'UDP'] as const, 'TCP');
  const named = sa.string('named_port');
  if (named !== undefined) sa.diag.error(sa.child('named_port'), 'named ports are not supported; use port_value');
  const port = sa.int('port_value', 0, 0, 65535);
  sa.accept('ipv4_compat');
  sa.accept('resolver_name');
  sa.finish();
  if (address === undefined || address === '') return undefined;
  if (!allowHostname && isIP(address) === 0) {
    sa.diag.error(sa.child('address'), `expected an IP address, got "${address}" (use a STRICT_DNS or LOGICAL_DNS cluster for host names)`);
    return undefined;
  }
  if (allowHostname && isIP(address) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(address)) {
    sa.diag.error(sa.child('address'), `"${address}" is neither an IP address nor a host name`);
    return undefined;
  }
  return { address, port, protocol };
}
