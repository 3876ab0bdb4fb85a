import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../../src/index.js';

/**
 * A `pilotfish.filters.http.module` config value for inline source. Budgets are generous:
 * tests share two cores with everything else; the tests about budgets set their own.
 */
export function inline(source: string, version: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    inline_source: source, sha256: sha256Hex(source), version, api_version_range: '^1.0.0',
    time_budget_ms: 5000, rollback_after_failures: 0, memory_limit_mb: 32, ...extra,
  };
}

/** The same, from a file in `dir`. */
export function fromFile(dir: string, source: string, version: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const path = join(dir, `filter-${version}.js`);
  writeFileSync(path, source);
  const { inline_source: _s, ...rest } = inline(source, version, extra);
  return { ...rest, path };
}

/** Tags requests and responses with its version; 403 for x-deny; misbehaves on request. */
export const TAGGER = `
const version = VERSION;
exports.onRequest = (req, ctx) => {
  if (req.headers['x-deny']) return { status: 403, body: 'denied by ' + version };
  if (req.headers['x-throw']) throw new Error('runtime throw');
  if (req.headers['x-loop']) { for (;;) {} }
  if (req.headers['x-hog']) { const a = []; for (;;) a.push(new Array(1e5).fill(version)); }
  req.headers['x-filter-version'] = version;
  req.headers['x-seen-config'] = String(ctx.config.tag);
};
exports.onResponse = (res) => { res.headers['x-served-by'] = version; };
exports.probe = [
  { request: { headers: {} }, expect: { headers: { 'x-filter-version': version } } },
  { request: { headers: { 'x-deny': '1' } }, expect: { status: 403 } },
];
`;

export function tagger(version: string): string {
  return TAGGER.replace('VERSION', JSON.stringify(version));
}
