/** The fast path's public surface: the only file other modules import. */
export type { FastPath, FastPathStatus } from './fastpath.js';
export { startFastPath, NoopFastPath } from './fastpath.js';
export type { FastPathConfig, FastPathService, FastPathInterception } from './config.js';
export { decodeFastPathConfig, isFastPathExtension, FASTPATH_TYPE } from './config.js';
export { runFastPathCommand } from './cli.js';
export type { FastPathObserve } from './config.js';
export type { FlowRecord, Resolver } from './observe.js';
export { parseFlowFilter, matchesFilter } from './observe.js';
export { serveFlows, flowsAdminRoute } from './flows-endpoint.js';
export { buildMaglevTable, maglevSlots, maglevKeyHashes, maglevSlotFor, flowHash, encodeFlowKey, isPrime } from './maglev.js';
export type { MaglevBackend, MaglevKeyHashes, FlowTuple } from './maglev.js';
