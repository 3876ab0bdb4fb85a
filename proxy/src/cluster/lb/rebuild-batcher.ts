/**
 * Batches the table rebuilds of a set's consistent-hash subsets (RING_HASH, MAGLEV; see
 * hashed.ts): the first change after a quiet period rebuilds on a microtask; changes
 * within `intervalMs` of the last rebuild coalesce into one rebuild at its end. Made only
 * for those policies: its state and closures were ~250 bytes in every cluster.
 */
import type { HashedSubset, RebuildScheduler } from './hashed.js';
import type { LbHost } from './subset.js';

export class RebuildBatcher implements RebuildScheduler {
  private pending: HashedSubset<LbHost>[] = [];
  private armed = false;
  private timer: NodeJS.Timeout | undefined;
  private last = -Infinity;
  private readonly run = (): void => this.runNow();

  constructor(private readonly intervalMs: number) {}

  schedule(s: HashedSubset<LbHost>): void {
    this.pending.push(s);
    if (this.armed) return;
    this.armed = true;
    const wait = this.last + this.intervalMs - performance.now();
    if (wait <= 0) queueMicrotask(this.run);
    else {
      this.timer = setTimeout(this.run, wait);
      this.timer.unref();
    }
  }

  /** Rebuilds the pending tables now. */
  flush(): void {
    this.cancelTimer();
    this.runNow();
  }

  /** Cancels a pending timer (tables then rebuild on their next pick). */
  cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private runNow(): void {
    this.armed = false;
    this.timer = undefined;
    const list = this.pending;
    if (list.length === 0) return;
    this.pending = [];
    this.last = performance.now();
    for (const s of list) s.rebuild();
  }
}
