import type { StreamInfo } from './api.js';

/**
 * One filter's per-request state: an index into the request's `filterState` array, handed
 * out while the chain is built. Replaces a WeakMap per filter: a lookup is an array read,
 * and the state goes away with the request object, without a streamComplete to forget.
 */
export class StreamSlot<T> {
  constructor(readonly index: number) {}

  get(info: StreamInfo): T | undefined {
    return info.filterState?.[this.index] as T | undefined;
  }

  set(info: StreamInfo, value: T): void {
    (info.filterState ??= [])[this.index] = value;
  }

  clear(info: StreamInfo): void {
    const s = info.filterState;
    if (s !== undefined && s.length > this.index) s[this.index] = undefined;
  }
}
