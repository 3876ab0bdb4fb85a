import type { HttpConnectionManager } from '../../../config/src/index.js';
import { startProxyYaml, type Scope } from '../helpers.js';

const FIELDS: Record<string, string> = {
  normalizePath: 'normalize_path',
  mergeSlashes: 'merge_slashes',
  pathWithEscapedSlashesAction: 'path_with_escaped_slashes_action',
  forwardClientCertDetails: 'forward_client_cert_details',
  setCurrentClientCertDetails: 'set_current_client_cert_details',
};

/**
 * Starts a proxy from a bootstrapYaml() document with HCM options given as model fields:
 * they are written into the HCM's YAML (so the decoders are exercised too), after its
 * stat_prefix line.
 */
export async function startProxyPatched(t: Scope, yaml: string, patch: Partial<HttpConnectionManager>): ReturnType<typeof startProxyYaml> {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(patch)) {
    const name = FIELDS[k];
    if (name === undefined) throw new Error(`startProxyPatched: no YAML mapping for ${k}`);
    lines.push(`          ${name}: ${JSON.stringify(v)}`);
  }
  const anchor = '          stat_prefix: ingress\n';
  if (!yaml.includes(anchor)) throw new Error('startProxyPatched: expects a bootstrapYaml() document');
  return startProxyYaml(t, yaml.replace(anchor, `${anchor}${lines.join('\n')}\n`));
}
