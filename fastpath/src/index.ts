/** The fast path's public surface: the only file other modules import. */
export type { FastPath, FastPathStatus } from './fastpath.js';
import type * as Runtime from './fastpath.js';

// The runtime (helper daemon, its build step) and the CLI load on first use: a proxy
// whose bootstrap has no pilotfish.fastpath extension never loads them (MAGLEV and the
// config decoder below are light and stay static).
export async function startFastPath(...args: Parameters<typeof Runtime.startFastPath>): Promise<Runtime.FastPath> {
  return (await import('./fastpath.js')).startFastPath(...args);
}
export type { FastPathConfig, FastPathService, FastPathInterception } from './config.js';
export { decodeFastPathConfig, isFastPathExtension, FASTPATH_TYPE } from './config.js';
export async function runFastPathCommand(...args: Parameters<typeof import('./cli.js').runFastPathCommand>): Promise<number> {
  return (await import('./cli.js')).runFastPathCommand(...args);
}
export type { FastPathObserve } from './config.js';
export type { FlowRecord, Resolver } from './observe.js';
export { parseFlowFilter, matchesFilter } from './observe.js';
export { serveFlows, flowsAdminRoute } from './flows-endpoint.js';
export { buildMaglevTable, maglevSlots, maglevKeyHashes, maglevSlotFor, flowHash, encodeFlowKey, isPrime } from './maglev.js';
export type { MaglevBackend, MaglevKeyHashes, FlowTuple } from './maglev.js';
