import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { Diagnostics } from '../../../config/src/index.js';
import type { FailurePolicy } from '../api.js';
import { int, isObj, raw, str, type Obj } from '../util/fields.js';

// semver (47 CommonJS files, ~20 ms to load) is required with the first user filter
// config, not at start: most proxies have none (bench/memory/, cli/test/lazy-loading.test.ts).
const require = createRequire(import.meta.url);
let semverModule: typeof import('semver') | undefined;
const semver = (): typeof import('semver') => (semverModule ??= require('semver') as typeof import('semver'));

/** The filter API that user modules are written against; modules declare a semver range. */
export const FILTER_API_VERSION = '1.0.0';

/** TypedStruct type_url of a hot-loaded user filter (the model unwraps TypedStruct). */
export const USER_FILTER_TYPE_URL = 'pilotfish.filters.http.module';

export interface UserFilterSpec {
  readonly version: string;
  readonly sha256: string;
  /** Where the code came from, for describe() and stack traces. */
  readonly origin: string;
  readonly source: string;
  readonly apiVersionRange: string;
  readonly failurePolicy: FailurePolicy;
  readonly failureStatus: number;
  readonly timeBudgetMs: number;
  readonly rollbackAfterFailures: number;
  readonly memoryLimitMb: number;
  readonly loadTimeoutMs: number;
  /** Share of requests sent to this version while the previous one keeps the rest. */
  readonly canaryPercent: number | undefined;
  /** Older good versions kept loaded for routes that pin them and for rollback. */
  readonly keepVersions: number;
  readonly moduleConfig: unknown;
  /** Set when the version comes from a watched manifest file (see decodeUserFilterSpec). */
  readonly manifestPath: string | undefined;
}

/**
 * `manifest: FILE` names a JSON file holding the version-specific fields (version, sha256,
 * path or inline_source, and any overrides); the filter config keeps the policy defaults.
 * The manifest is watched: writing a new one (module first, then the manifest, atomically
 * by rename) hot-swaps the filter. A module `path` in the manifest is relative to it.
 */
function mergeManifest(config: Obj, diag: Diagnostics, path: string): { merged: Obj; manifestPath: string | undefined } | undefined {
  const m = raw(config, 'manifest');
  if (m === undefined) return { merged: config, manifestPath: undefined };
  if (typeof m !== 'string' || m === '') {
    diag.error(`${path}.manifest`, 'must be a file path');
    return undefined;
  }
  const manifestPath = resolve(m);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    diag.error(`${path}.manifest`, `cannot read manifest ${manifestPath}: ${(err as Error).message}`);
    return undefined;
  }
  if (!isObj(parsed)) {
    diag.error(`${path}.manifest`, `manifest ${manifestPath} must hold a JSON object`);
    return undefined;
  }
  const { manifest: _m, ...base } = config;
  const merged: Record<string, unknown> = { ...base, ...parsed };
  if (typeof parsed.path === 'string') merged.path = resolve(dirname(manifestPath), parsed.path);
  else if (parsed.inline_source !== undefined) delete merged.path;
  if (typeof parsed.path === 'string') delete merged.inline_source;
  return { merged, manifestPath };
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Decodes the TypedStruct value, fetches the code and verifies it: sha256 and API version
 * range. Nothing of the module runs (or is even parsed) here. Returns undefined on error.
 */
export function decodeUserFilterSpec(configIn: Obj, diag: Diagnostics, path: string): UserFilterSpec | undefined {
  const before = diag.errors.length;
  const mm = mergeManifest(configIn, diag, path);
  if (mm === undefined) return undefined;
  const config = mm.merged;
  const file = str(config, 'path', diag, path);
  const inline = str(config, 'inline_source', diag, path);
  const version = str(config, 'version', diag, path);
  const sha = str(config, 'sha256', diag, path)?.toLowerCase();
  const range = str(config, 'api_version_range', diag, path);
  const fp = raw(config, 'failure_policy') ?? 'FAIL_CLOSED';
  const timeBudgetMs = int(config, 'time_budget_ms', diag, path, { min: 1, max: 60_000 }) ?? 50;
  const rollbackAfterFailures = int(config, 'rollback_after_failures', diag, path, { min: 0 }) ?? 10;
  const memoryLimitMb = int(config, 'memory_limit_mb', diag, path, { min: 8, max: 4096 }) ?? 64;
  const loadTimeoutMs = int(config, 'load_timeout_ms', diag, path, { min: 10, max: 120_000 }) ?? 5_000;
  const failureStatus = int(config, 'failure_status', diag, path, { min: 200, max: 599 }) ?? 500;
  const canaryPercent = int(config, 'canary_percent', diag, path, { min: 0, max: 100 });
  const keepVersions = int(config, 'keep_versions', diag, path, { min: 1, max: 32 }) ?? 3;
  const moduleConfig = raw(config, 'config');

  if ((file === undefined) === (inline === undefined)) diag.error(path, 'exactly one of path, inline_source is required');
  if (!version) diag.error(`${path}.version`, 'is required');
  if (!sha) diag.error(`${path}.sha256`, 'is required');
  else if (!/^[0-9a-f]{64}$/.test(sha)) diag.error(`${path}.sha256`, 'must be 64 hex digits');
  if (fp !== 'FAIL_CLOSED' && fp !== 'FAIL_OPEN') diag.error(`${path}.failure_policy`, `must be FAIL_CLOSED or FAIL_OPEN, not ${JSON.stringify(fp)}`);
  if (moduleConfig !== undefined && !isObj(moduleConfig)) diag.error(`${path}.config`, 'must be an object');
  if (range === undefined) diag.error(`${path}.api_version_range`, 'is required');
  else if (semver().validRange(range) === null) diag.error(`${path}.api_version_range`, `invalid semver range "${range}"`);
  else if (!semver().satisfies(FILTER_API_VERSION, range)) {
    diag.error(`${path}.api_version_range`, `module needs filter API ${range}; this proxy provides ${FILTER_API_VERSION}`);
  }
  if (diag.errors.length > before) return undefined;

  // Fetched.
  let source: string;
  let origin: string;
  if (file !== undefined) {
    origin = resolve(file);
    try {
      source = readFileSync(origin, 'utf8');
    } catch (err) {
      diag.error(`${path}.path`, `cannot read ${origin}: ${(err as Error).message}`);
      return undefined;
    }
  } else {
    source = inline!;
    origin = `inline:${version}`;
  }
  // Verified: integrity first, before the text is even parsed.
  const actual = sha256Hex(source);
  if (actual !== sha) {
    diag.error(`${path}.sha256`, `integrity check failed: expected ${sha}, got ${actual}`);
    return undefined;
  }
  // Parsing happens in the worker, before anything runs: compiling here would leave a
  // Script behind in the proxy's isolate on every reload (measured: ~1 KB each, forever).
  return {
    version: version!, sha256: sha!, origin, source, apiVersionRange: range!,
    failurePolicy: fp as FailurePolicy, failureStatus, timeBudgetMs, rollbackAfterFailures,
    memoryLimitMb, loadTimeoutMs, canaryPercent, keepVersions, moduleConfig, manifestPath: mm.manifestPath,
  };
}

/** Per-route config for a user filter: pin a version (must be loaded) for this route. */
export interface UserFilterPerRoute {
  readonly version: string | undefined;
}

export function decodeUserFilterPerRoute(config: Obj, diag: Diagnostics, path: string): UserFilterPerRoute {
  return { version: str(config, 'version', diag, path) };
}
