import type * as net from 'node:net';
import * as tls from 'node:tls';
import type { Diagnostics, NetworkFilterConfig } from '../../../config/src/index.js';
import { typeName } from '../../../config/src/index.js';
import type { ConnectionInfo } from '../net/connection-info.js';
import {
  networkFilterFactory, type ConnectionSummary, type DataVerdict, type NetworkConnection, type NetworkFilter,
  type NetworkFilterContext, type UpstreamInfo,
} from './network-filter.js';

type Hook = (chunk: Buffer, end: boolean) => DataVerdict | Promise<DataVerdict>;

/**
 * A filter chain's non-terminal network filters, built once per chain (per listener
 * update) and shared by the connections that start while it is current. The chain handlers
 * (HttpChain, TcpProxyChain) call start() per connection.
 */
export class NetworkFilterChain {
  /** True when some filter has onData/onWrite: tcp_proxy must run bytes through the hooks instead of piping. */
  readonly hasByteHooks: boolean;
  private active = 0;
  private retired = false;

  constructor(
    readonly filters: readonly NetworkFilter[],
    /** Counts a filter hook that threw or rejected (the connection is closed). */
    private readonly onFilterError: (filter: NetworkFilter, error: unknown) => void = () => undefined,
  ) {
    this.hasByteHooks = filters.some((f) => f.onData !== undefined || f.onWrite !== undefined);
  }

  static readonly EMPTY = new NetworkFilterChain([]);

  get isEmpty(): boolean {
    return this.filters.length === 0;
  }

  /**
   * Starts a connection through the filters: the ConnectionRun's `admitted` settles
   * true when every onNewConnection continued. `socket` is what the chain reads and writes
   * (the TLS socket when the chain terminated TLS).
   */
  start(socket: net.Socket, info: ConnectionInfo): ConnectionRun {
    this.active++;
    return new ConnectionRun(this, socket, info);
  }

  /** A connection started on this chain is gone. */
  released(): void {
    this.active--;
    if (this.retired && this.active === 0) this.disposeFilters();
  }

  /** The chain was replaced by a listener update: dispose the filters once its last connection is gone. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    if (this.active === 0) this.disposeFilters();
  }

  private disposeFilters(): void {
    for (const f of this.filters) {
      try {
        f.dispose?.();
      } catch (e) {
        this.onFilterError(f, e);
      }
    }
  }

  /** @internal */
  reportError(filter: NetworkFilter, error: unknown): void {
    this.onFilterError(filter, error);
  }
}

/**
 * Builds a chain's filters from their configs through the registered factories. Problems
 * go to `diag` (under `path`[i].typed_config); undefined when there were any.
 */
export function buildNetworkFilterChain(
  configs: readonly NetworkFilterConfig[], diag: Diagnostics, path: string, ctx: NetworkFilterContext,
  onFilterError?: (filter: NetworkFilter, error: unknown) => void,
): NetworkFilterChain | undefined {
  if (configs.length === 0) return NetworkFilterChain.EMPTY;
  const before = diag.errors.length;
  const filters: NetworkFilter[] = [];
  configs.forEach((c, i) => {
    const factory = networkFilterFactory(c.typeUrl);
    const p = `${path}[${i}]`;
    if (!factory) {
      diag.error(p, `network filter "${c.name}" (${typeName(c.typeUrl)}) has no implementation registered in this proxy`);
      return;
    }
    const f = factory(c, diag, `${p}.typed_config`, ctx);
    if (f) filters.push(f);
  });
  if (diag.errors.length > before) {
    for (const f of filters) f.dispose?.();
    return undefined;
  }
  return new NetworkFilterChain(filters, onFilterError);
}

function isPromise<T>(v: unknown): v is Promise<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * One connection going through a chain's filters: the NetworkConnection the filters see,
 * onNewConnection in order, the byte pipes of a tcp_proxy chain, onClose once.
 */
export class ConnectionRun implements NetworkConnection {
  readonly tls: boolean;
  readonly negotiatedProtocol: string;
  readonly startTime = Date.now();
  upstream: UpstreamInfo | undefined;
  terminationDetails: string | undefined;
  /** Bytes written to the client by filters (conn.write), added to the summary's bytesSent. */
  private written = 0;
  private closedByFilter = false;
  private finished = false;
  /** Resolves true when every onNewConnection continued, false when one stopped or closed the connection. */
  readonly admitted: boolean | Promise<boolean>;

  constructor(private readonly chain: NetworkFilterChain, private readonly socket: net.Socket, readonly info: ConnectionInfo) {
    this.tls = socket instanceof tls.TLSSocket;
    this.negotiatedProtocol = this.tls ? ((socket as tls.TLSSocket).alpnProtocol || '') : '';
    this.admitted = this.runNewConnection(0);
  }

  write(data: Uint8Array): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.written += data.length;
    this.socket.write(data);
  }

  close(details?: string): void {
    if (details !== undefined && this.terminationDetails === undefined) this.terminationDetails = details;
    this.closedByFilter = true;
    this.socket.destroy();
  }

  /** True once a filter closed the connection (or it closed underneath the filters). */
  get stopped(): boolean {
    return this.closedByFilter || this.socket.destroyed;
  }

  private runNewConnection(from: number): boolean | Promise<boolean> {
    const filters = this.chain.filters;
    for (let i = from; i < filters.length; i++) {
      const f = filters[i]!;
      if (!f.onNewConnection) continue;
      let v: ReturnType<NonNullable<NetworkFilter['onNewConnection']>>;
      try {
        v = f.onNewConnection(this);
      } catch (e) {
        this.fail(f, e);
        return false;
      }
      if (isPromise<string>(v)) {
        return v.then(
          (r) => (r === 'stop' || this.stopped ? false : this.runNewConnection(i + 1)),
          (e: unknown) => {
            this.fail(f, e);
            return false;
          },
        );
      }
      if (v === 'stop' || this.stopped) return false;
    }
    return !this.stopped;
  }

  private fail(f: NetworkFilter, e: unknown): void {
    this.chain.reportError(f, e);
    this.close(`network_filter_error[${f.name}]`);
  }

  /**
   * The read (client -> upstream) pipe: onData in filter order. `emit` gets what passes,
   * `emitEnd` the client's half-close after the last chunk. `source` is paused while a
   * hook holds the pipe with a promise.
   */
  readPipe(emit: (chunk: Buffer) => void, emitEnd: () => void): BytePipe {
    const hooks: Hook[] = [];
    for (const f of this.chain.filters) {
      if (f.onData) hooks.push((c, e) => f.onData!(c, e, this));
    }
    return new BytePipe(hooks, this.chain.filters.filter((f) => f.onData), emit, emitEnd, this.socket, (f, e) => this.fail(f, e), () => this.stopped);
  }

  /** The write (upstream -> client) pipe: onWrite in reverse filter order (Envoy's write filters). */
  writePipe(emit: (chunk: Buffer) => void, emitEnd: () => void, source: net.Socket): BytePipe {
    const fs = this.chain.filters.filter((f) => f.onWrite).reverse();
    const hooks: Hook[] = fs.map((f) => (c, e) => f.onWrite!(c, e, this));
    return new BytePipe(hooks, fs, emit, emitEnd, source, (f, e) => this.fail(f, e), () => this.stopped);
  }

  /** The connection is gone: onClose once on every filter; releases the chain. */
  finish(summary: Omit<ConnectionSummary, 'bytesSent'> & { readonly bytesSent: number }): void {
    if (this.finished) return;
    this.finished = true;
    const s: ConnectionSummary = { ...summary, bytesSent: summary.bytesSent + this.written };
    for (const f of this.chain.filters) {
      if (!f.onClose) continue;
      try {
        f.onClose(this, s);
      } catch (e) {
        this.chain.reportError(f, e);
      }
    }
    this.chain.released();
  }
}

/**
 * One direction of a tcp_proxy connection through byte hooks: chunks in order, each
 * through every hook; a hook's promise holds later chunks (queued, the source paused)
 * until it settles.
 */
export class BytePipe {
  private readonly queue: { chunk: Buffer; end: boolean }[] = [];
  private busy = false;
  private ended = false;
  /** Hooks that returned 'detach' are skipped from then on. */
  private readonly active: boolean[];
  private activeCount: number;

  constructor(
    private readonly hooks: readonly Hook[],
    private readonly filters: readonly NetworkFilter[],
    private readonly emit: (chunk: Buffer) => void,
    private readonly emitEnd: () => void,
    private readonly source: net.Socket,
    private readonly fail: (f: NetworkFilter, e: unknown) => void,
    private readonly stopped: () => boolean,
  ) {
    this.active = hooks.map(() => true);
    this.activeCount = hooks.length;
  }

  /** True when every hook detached and nothing is held or queued: the bytes may bypass this pipe. */
  get detached(): boolean {
    return this.activeCount === 0 && !this.busy && this.queue.length === 0;
  }

  /** A chunk from the source (`end`: the source half-closed; the chunk may then be empty). */
  push(chunk: Buffer, end: boolean): void {
    if (this.ended) return;
    if (end) this.ended = true;
    if (this.busy) {
      this.queue.push({ chunk, end });
      return;
    }
    this.run(chunk, end, 0);
  }

  private run(chunk: Buffer, end: boolean, from: number): void {
    let data = chunk;
    for (let i = from; i < this.hooks.length; i++) {
      if (this.stopped()) return;
      if (data.length === 0 && !end) return;
      if (!this.active[i]) continue;
      let v: DataVerdict | Promise<DataVerdict>;
      try {
        v = this.hooks[i]!(data, end);
      } catch (e) {
        this.fail(this.filters[i]!, e);
        return;
      }
      if (isPromise<DataVerdict>(v)) {
        this.busy = true;
        this.source.pause();
        const held = data;
        v.then(
          (r) => {
            this.busy = false;
            const next = this.apply(r, held, i);
            if (next !== undefined) this.run(next, end, i + 1);
            this.drainQueue();
          },
          (e: unknown) => this.fail(this.filters[i]!, e),
        );
        return;
      }
      const next = this.apply(v, data, i);
      if (next === undefined) return;
      data = next;
    }
    if (this.stopped()) return;
    if (data.length > 0) this.emit(data);
    if (end) this.emitEnd();
  }

  /** The chunk after a verdict, or undefined when the chain stops for this chunk. */
  private apply(v: DataVerdict, data: Buffer, i: number): Buffer | undefined {
    if (v === undefined) return data;
    if (v === 'stop') return undefined;
    if (v === 'detach') {
      if (this.active[i]) {
        this.active[i] = false;
        this.activeCount--;
      }
      return data;
    }
    if (v.data === null) return Buffer.alloc(0);
    return Buffer.isBuffer(v.data) ? v.data : Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  }

  private drainQueue(): void {
    while (!this.busy && this.queue.length > 0 && !this.stopped()) {
      const { chunk, end } = this.queue.shift()!;
      this.run(chunk, end, 0);
    }
    if (!this.busy && !this.stopped()) this.source.resume();
  }
}
