import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { createRequire } from 'node:module';
import type { Bootstrap } from './model.js';
import { decodeBootstrap } from './bootstrap.js';
import { Diagnostics, type Validation } from './validation.js';

// The YAML parser (~2 MB of RSS) is required on the first YAML text: JSON bootstraps
// (Istio's envoy-rev.json) never load it.
const require = createRequire(import.meta.url);
let yaml: typeof import('yaml') | undefined;

/** Parses YAML or JSON text into plain data, reporting syntax errors with line numbers. */
export function parseConfigText(text: string, format: 'yaml' | 'json', diag: Diagnostics): unknown {
  try {
    if (format === 'json') return JSON.parse(text) as unknown;
    // merge: `<<: *anchor` merge keys, which Envoy's YAML loader (yaml-cpp) honours.
    return (yaml ??= require('yaml') as typeof import('yaml')).parse(text, { prettyErrors: true, uniqueKeys: true, maxAliasCount: 100, merge: true }) as unknown;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] ?? String(e) : String(e);
    diag.error('', `cannot parse ${format.toUpperCase()}: ${msg}`);
    return undefined;
  }
}

/** Reads and decodes an Envoy v3 bootstrap file (.yaml, .yml or .json). */
export function loadBootstrapFile(file: string): Validation<Bootstrap> {
  const diag = new Diagnostics();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    diag.error('', `cannot read config file "${file}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    return diag.result<Bootstrap>(undefined as never);
  }
  const format = extname(file).toLowerCase() === '.json' ? 'json' : 'yaml';
  const json = parseConfigText(text, format, diag);
  if (json === undefined) {
    if (diag.errors.length === 0) diag.error('', 'the config file is empty');
    return diag.result<Bootstrap>(undefined as never);
  }
  const bootstrap = decodeBootstrap(json, diag);
  return diag.result(bootstrap as Bootstrap);
}
