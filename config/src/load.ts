import { readFileSync } from 'node:fs';
import { dirname, extname, sep } from 'node:path';
import { createRequire } from 'node:module';
import type { Bootstrap } from './model.js';
import { decodeBootstrap } from './bootstrap.js';
import { Diagnostics, type Validation } from './validation.js';

/**
 * Parses YAML with the `yaml` package, loaded for this call only. A bootstrap is parsed
 * once, at start (JSON bootstraps, Istio's envoy-rev.json, never load it), and a proxy
 * never needs the parser again; kept loaded, its ~290 KB of source, the functions compiled
 * from it and its module records stay in the heap for the life of every sidecar. Loaded
 * through a require of its own and dropped from the module cache afterwards, all of it is
 * garbage once the parse returns (the result is plain data).
 */
function parseYaml(text: string): unknown {
  const require = createRequire(import.meta.url);
  try {
    const yaml = require('yaml') as typeof import('yaml');
    // merge: `<<: *anchor` merge keys, which Envoy's YAML loader (yaml-cpp) honours.
    return yaml.parse(text, { prettyErrors: true, uniqueKeys: true, maxAliasCount: 100, merge: true }) as unknown;
  } finally {
    const root = dirname(require.resolve('yaml/package.json')) + sep;
    for (const file of Object.keys(require.cache)) if (file.startsWith(root)) delete require.cache[file];
  }
}

/** Parses YAML or JSON text into plain data, reporting syntax errors with line numbers. */
export function parseConfigText(text: string, format: 'yaml' | 'json', diag: Diagnostics): unknown {
  try {
    if (format === 'json') return JSON.parse(text) as unknown;
    return parseYaml(text);
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
