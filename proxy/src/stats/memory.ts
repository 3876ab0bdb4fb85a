import type { Gauge, StatsStore } from './stats.js';

/**
 * The process's memory, read once from Node (process.memoryUsage(): one call, ~20 µs,
 * which reads V8's heap statistics and the RSS). Both the server.memory_* gauges and the
 * overload manager's fixed_heap monitor use this, so what an operator alerts on and what
 * the overload manager acts on are the same numbers.
 */
export interface MemorySample {
  /** V8 heap in use (Envoy's server.memory_allocated: bytes the allocator handed out). */
  readonly allocated: number;
  /** V8 heap reserved from the OS (Envoy's server.memory_heap_size). */
  readonly heapSize: number;
  /** Resident set size of the process (Envoy's server.memory_physical_size). */
  readonly physical: number;
  /** Memory of C++ objects bound to JS objects, array buffers included (no Envoy equivalent). */
  readonly external: number;
  /** ArrayBuffers and Buffers (part of `external`): what socket and body buffers hold. */
  readonly arrayBuffers: number;
}

export function readMemory(): MemorySample {
  const m = process.memoryUsage();
  return { allocated: m.heapUsed, heapSize: m.heapTotal, physical: m.rss, external: m.external, arrayBuffers: m.arrayBuffers };
}

/**
 * Envoy's server memory gauges plus pilotfish's V8-specific ones, refreshed when the
 * stats are read (/stats, /stats/prometheus), never on the request path. A burst of
 * reads within `minIntervalMs` shares one sample.
 */
export class MemoryGauges {
  private readonly allocated: Gauge;
  private readonly heapSize: Gauge;
  private readonly physical: Gauge;
  private readonly external: Gauge;
  private readonly arrayBuffers: Gauge;
  private sampledAt = Number.NEGATIVE_INFINITY;

  constructor(store: StatsStore, private readonly minIntervalMs = 100) {
    const server = store.scope('server.', 'envoy_server_', {});
    this.allocated = server.gauge('memory_allocated');
    this.heapSize = server.gauge('memory_heap_size');
    this.physical = server.gauge('memory_physical_size');
    const own = store.scope('pilotfish.', 'pilotfish_', {});
    this.external = own.gauge('memory_external');
    this.arrayBuffers = own.gauge('memory_array_buffers');
    store.onCollect(() => this.refresh());
  }

  refresh(now = performance.now()): void {
    if (now - this.sampledAt < this.minIntervalMs) return;
    this.sampledAt = now;
    const m = readMemory();
    this.allocated.set(m.allocated);
    this.heapSize.set(m.heapSize);
    this.physical.set(m.physical);
    this.external.set(m.external);
    this.arrayBuffers.set(m.arrayBuffers);
  }
}
