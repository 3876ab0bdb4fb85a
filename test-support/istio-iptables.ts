import { execFileSync } from 'node:child_process';

/** The uid Istio's sidecar runs as; its own traffic is not intercepted again. */
export const ISTIO_PROXY_UID = 1337;

/**
 * The nat rules Istio's init container writes for a sidecar pod (istio-iptables,
 * REDIRECT mode): inbound TCP to 15006 except Istio's own ports, outbound TCP to 15001
 * except the proxy's (uid 1337), localhost, and 127.0.0.6 (inbound clusters' source).
 */
export function istioIptables(ns: string, proxyUid = ISTIO_PROXY_UID): void {
  const ipt = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', ...args], { stdio: 'pipe' });
  for (const c of ['ISTIO_INBOUND', 'ISTIO_REDIRECT', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT']) ipt('-N', c);
  for (const p of ['15008', '15090', '15021', '15020']) ipt('-A', 'ISTIO_INBOUND', '-p', 'tcp', '--dport', p, '-j', 'RETURN');
  ipt('-A', 'ISTIO_INBOUND', '-p', 'tcp', '-j', 'ISTIO_IN_REDIRECT');
  ipt('-A', 'ISTIO_IN_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15006');
  ipt('-A', 'ISTIO_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15001');
  ipt('-A', 'ISTIO_OUTPUT', '-s', '127.0.0.6/32', '-o', 'lo', '-j', 'RETURN');
  ipt('-A', 'ISTIO_OUTPUT', '-m', 'owner', '--uid-owner', String(proxyUid), '-j', 'RETURN');
  ipt('-A', 'ISTIO_OUTPUT', '-d', '127.0.0.1/32', '-j', 'RETURN');
  ipt('-A', 'ISTIO_OUTPUT', '-j', 'ISTIO_REDIRECT');
  ipt('-A', 'PREROUTING', '-p', 'tcp', '-j', 'ISTIO_INBOUND');
  ipt('-A', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT');
}
