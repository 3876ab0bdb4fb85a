import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, formatProblem, type Bootstrap, type HttpConnectionManager } from '../../../config/src/index.js';
import { startProxy, type RunningProxy } from '../../src/cli/proxy-command.js';
import { Logger } from '../../src/log.js';
import type { Scope } from '../helpers.js';

/**
 * Starts a proxy from YAML with HCM fields set on the decoded model. Lets the HCM
 * features be tested through a real proxy before (and independently of) their YAML
 * decoders; YAML-level tests sit next to these once the decoders exist.
 */
export async function startProxyPatched(t: Scope, yaml: string, patch: Partial<HttpConnectionManager>): Promise<RunningProxy & { port(): number }> {
  const diag = new Diagnostics();
  const decoded = decodeBootstrap(parseYaml(yaml), diag);
  if (!decoded) throw new Error(diag.errors.map(formatProblem).join('\n'));
  const b: Bootstrap = {
    ...decoded,
    staticResources: {
      ...decoded.staticResources,
      listeners: decoded.staticResources.listeners.map((l) => ({
        ...l,
        filterChains: l.filterChains.map((fc) => (fc.network.kind === 'http' ? { ...fc, network: { ...fc.network, ...patch } } : fc)),
      })),
    },
  };
  const running = await startProxy(b, new Logger('error'), { adminPort: 0, drainTimeMs: 200, onQuit: () => undefined });
  t.teardown(() => running.stop(0));
  return Object.assign(running, {
    port(): number {
      const p = running.server.boundPorts.values().next().value;
      if (p === undefined) throw new Error('no listener');
      return p;
    },
  });
}
