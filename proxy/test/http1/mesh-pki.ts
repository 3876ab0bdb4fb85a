import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueWorkload, mintRoot } from '../../../certs/src/index.js';
import type { Scope } from '../helpers.js';

/**
 * A sidecar's outbound mTLS hop, as the raw pool's TLS tests need it: a root, the upstream
 * workload's certificate (SPIFFE ID UPSTREAM_ID) and the proxy's own (PROXY_ID), with the
 * proxy's certificate, key and the root written to `dir` for an UpstreamTlsContext.
 */
export const UPSTREAM_ID = 'spiffe://example.org/ns/default/sa/reviews';
export const PROXY_ID = 'spiffe://example.org/ns/default/sa/productpage';

export interface MeshPki {
  dir: string;
  ca: Awaited<ReturnType<typeof mintRoot>>;
  upstream: Awaited<ReturnType<typeof issueWorkload>>;
}

export async function makeMeshPki(t: Scope): Promise<MeshPki> {
  const dir = mkdtempSync(join(tmpdir(), 'pf-raw-up-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const upstream = await issueWorkload({ ca, dns: ['reviews.test'], spiffeId: UPSTREAM_ID });
  const proxy = await issueWorkload({ ca, dns: ['productpage.test'], spiffeId: PROXY_ID });
  writeFileSync(join(dir, 'cert.pem'), proxy.chainPem);
  writeFileSync(join(dir, 'key.pem'), proxy.keyPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  return { dir, ca, upstream };
}
