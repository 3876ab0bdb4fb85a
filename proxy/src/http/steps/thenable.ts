/** A filter verdict is either a value or a promise of one; this tells which, once, for every phase. */
export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== undefined && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
