/**
 * Turns endpoint diffs into map writes, in time proportional to what changed:
 * per service it keeps the endpoint set, the backend ids it handed out and the last
 * Maglev table written, and emits only the backend entries and table slots that
 * differ. Pure (no I/O): the caller ships the ops to the kernel in order.
 */
import type { Endpoint, EndpointDiff } from '../../config/src/index.js';
import {
  MAGLEV_MAX, MAX_BACKENDS, SVC_F_USERSPACE,
  encodeAddr, encodeService, encodeSockAddr, encodeU32,
} from './abi.js';
import type { FastPathService } from './config.js';
import { buildMaglevTable, diffTables } from './maglev.js';

export type MapName = 'services' | 'backends' | 'maglev' | 'be_stats';

export type MapOp =
  | { readonly op: 'U'; readonly map: MapName; readonly key: Buffer; readonly value: Buffer }
  | { readonly op: 'D'; readonly map: MapName; readonly key: Buffer }
  /** Many updates, packed key||value back to back (a table rebuild's changed slots). */
  | { readonly op: 'B'; readonly map: MapName; readonly entries: Buffer; readonly count: number }
  /** Zero a per-CPU entry on every CPU (a reused backend id's counters start again). */
  | { readonly op: 'Z'; readonly map: MapName; readonly key: Buffer };

/** How many map entries the ops write or delete. */
export function entryCount(ops: readonly MapOp[], map?: MapName): number {
  return ops.reduce((n, o) => (map && o.map !== map ? n : n + (o.op === 'B' ? o.count : 1)), 0);
}

function slotBatch(base: number, slots: readonly number[], table: Uint32Array): MapOp | undefined {
  if (slots.length === 0) return undefined;
  const b = Buffer.allocUnsafe(slots.length * 8);
  slots.forEach((s, i) => {
    b.writeUInt32LE(base + s, i * 8);
    b.writeUInt32LE(table[s]!, i * 8 + 4);
  });
  return { op: 'B', map: 'maglev', entries: b, count: slots.length };
}

/** Hands out backend ids 1..MAX_BACKENDS-1 (0 means "empty slot" in the table). */
export class IdAllocator {
  private next = 1;
  private readonly free: number[] = [];
  constructor(private readonly limit = MAX_BACKENDS) {}
  take(): number | undefined {
    if (this.free.length > 0) return this.free.pop();
    return this.next < this.limit ? this.next++ : undefined;
  }
  give(id: number): void {
    this.free.push(id);
  }
}

/** Endpoints Maglev should spread new flows over: healthy ones, else degraded ones, lowest priority first. */
export function eligible(endpoints: Iterable<Endpoint>, family: 4 | 6): Endpoint[] {
  const all = [...endpoints].filter((e) => {
    try {
      return encodeAddr(e.address).family === family && e.weight > 0;
    } catch {
      return false;
    }
  });
  for (const health of ['healthy', 'degraded'] as const) {
    const set = all.filter((e) => e.health === health);
    if (set.length === 0) continue;
    const prio = Math.min(...set.map((e) => e.priority));
    return set.filter((e) => e.priority === prio);
  }
  return [];
}

export class ServiceState {
  readonly family: 4 | 6;
  readonly endpoints = new Map<string, Endpoint>();
  /** endpoint key -> backend id, for endpoints currently in the table */
  readonly ids = new Map<string, number>();
  private table: Uint32Array;
  private readonly keyBytes: Buffer;
  private written = false;

  constructor(readonly spec: FastPathService, readonly id: number, private readonly alloc: IdAllocator) {
    this.family = encodeAddr(spec.address).family;
    this.table = new Uint32Array(spec.maglevTableSize);
    this.keyBytes = encodeSockAddr({ address: spec.address, port: spec.port, proto: spec.protocol });
  }

  get backendCount(): number {
    return this.ids.size;
  }

  /** Records the diff; returns nothing (rebuilds are batched by plan()). */
  apply(diff: EndpointDiff): void {
    for (const key of diff.removed) this.endpoints.delete(key);
    for (const e of diff.added) this.endpoints.set(e.key, e);
    for (const e of diff.changed) this.endpoints.set(e.key, e);
  }

  /**
   * The writes that bring the kernel from the last plan to the current endpoint set.
   * Order is the safety argument: new backends exist before a slot names them, the
   * service entry comes after the slots, dead backends go last.
   */
  plan(): MapOp[] {
    const ops: MapOp[] = [];
    const want = eligible(this.endpoints.values(), this.family);
    const wantKeys = new Set(want.map((e) => e.key));
    const dropped: number[] = [];
    for (const [key, id] of this.ids) {
      if (!wantKeys.has(key)) {
        this.ids.delete(key);
        dropped.push(id);
      }
    }
    for (const e of want) {
      let id = this.ids.get(e.key);
      const fresh = id === undefined;
      if (fresh) {
        id = this.alloc.take();
        if (id === undefined) continue; // out of ids: the endpoint stays out of the table
        this.ids.set(e.key, id);
      }
      // keys are "address:port", so a known key never needs its backend entry rewritten
      if (fresh) {
        ops.push({ op: 'Z', map: 'be_stats', key: encodeU32(id!) });
        ops.push({ op: 'U', map: 'backends', key: encodeU32(id!), value: encodeSockAddr({ address: e.address, port: e.port }) });
      }
    }
    const next = buildMaglevTable(
      want.filter((e) => this.ids.has(e.key)).map((e) => ({ key: e.key, weight: e.weight, id: this.ids.get(e.key)! })),
      this.spec.maglevTableSize,
    );
    // the array map starts zeroed, like this.table, so the first plan is a diff too
    const slots = diffTables(this.table, next);
    const batch = slotBatch(this.id * MAGLEV_MAX, slots, next);
    if (batch) ops.push(batch);
    this.table = next;
    if (!this.written || slots.length > 0 || dropped.length > 0) {
      ops.push({ op: 'U', map: 'services', key: this.keyBytes, value: this.serviceValue() });
    }
    this.written = true;
    for (const id of dropped) {
      ops.push({ op: 'D', map: 'backends', key: encodeU32(id) });
      this.alloc.give(id);
    }
    return ops;
  }

  /** Everything this service wrote, undone (slots zeroed so a reused row starts clean). */
  teardown(): MapOp[] {
    const ops: MapOp[] = [{ op: 'D', map: 'services', key: this.keyBytes }];
    const empty = new Uint32Array(this.table.length);
    const batch = slotBatch(this.id * MAGLEV_MAX, diffTables(this.table, empty), empty);
    if (batch) ops.push(batch);
    for (const id of this.ids.values()) {
      ops.push({ op: 'D', map: 'backends', key: encodeU32(id) });
      this.alloc.give(id);
    }
    this.ids.clear();
    this.table = new Uint32Array(this.table.length);
    return ops;
  }

  tableSnapshot(): Uint32Array {
    return this.table.slice();
  }

  private serviceValue(): Buffer {
    return encodeService({
      id: this.id,
      tableSize: this.spec.maglevTableSize,
      flags: this.spec.userspace ? SVC_F_USERSPACE : 0,
      backendCount: this.ids.size,
    });
  }
}


/** All services, routed by cluster name. */
export class ServiceRegistry {
  private readonly alloc = new IdAllocator();
  readonly byCluster = new Map<string, ServiceState[]>();
  readonly all: ServiceState[] = [];
  private readonly dirty = new Set<ServiceState>();

  constructor(services: readonly FastPathService[]) {
    services.forEach((spec, i) => {
      const st = new ServiceState(spec, i, this.alloc);
      this.all.push(st);
      const list = this.byCluster.get(spec.cluster) ?? [];
      list.push(st);
      this.byCluster.set(spec.cluster, list);
      this.dirty.add(st);
    });
  }

  /** Cheap: records the diff; returns whether any service cares about the cluster. */
  apply(diff: EndpointDiff): boolean {
    const list = this.byCluster.get(diff.cluster);
    if (!list) return false;
    for (const st of list) {
      st.apply(diff);
      this.dirty.add(st);
    }
    return true;
  }

  /** Map writes for everything changed since the last call. */
  plan(): MapOp[] {
    const ops: MapOp[] = [];
    for (const st of this.dirty) for (const o of st.plan()) ops.push(o);
    this.dirty.clear();
    return ops;
  }

  get backendCount(): number {
    return this.all.reduce((n, s) => n + s.backendCount, 0);
  }
}
