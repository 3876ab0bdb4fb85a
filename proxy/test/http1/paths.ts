import { startProxyYaml, type Scope } from '../helpers.js';
import type { Http1Path } from '../../src/http1/raw-chain.js';

/** Both HTTP/1.1 paths, for tests that must hold on each. */
export const HTTP1_PATHS: readonly Http1Path[] = ['node', 'raw'];

/** startProxyYaml with plaintext HTTP chains on the given HTTP/1.1 path (PILOTFISH_HTTP1 while the chains are built). */
export async function startProxyOn(path: Http1Path, t: Scope, yaml: string): ReturnType<typeof startProxyYaml> {
  const before = process.env.PILOTFISH_HTTP1;
  process.env.PILOTFISH_HTTP1 = path;
  try {
    return await startProxyYaml(t, yaml);
  } finally {
    if (before === undefined) delete process.env.PILOTFISH_HTTP1;
    else process.env.PILOTFISH_HTTP1 = before;
  }
}
