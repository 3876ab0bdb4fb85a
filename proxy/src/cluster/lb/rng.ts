/**
 * The load balancers' random source: xorshift128 over four int32 fields. Math.random called
 * through a field is not inlined by V8 and its double result is boxed (16 bytes per
 * call); here the state is four int32s (Smis on 64-bit V8, never boxed) and
 * int30()/below() return small integers, so a pick allocates nothing. The state was an
 * Int32Array until every cluster's ~230 bytes for it (array, buffer, backing store)
 * counted. For the same reason, request-path code that needs a
 * fraction computes `(int30() * TWO30 + int30()) / TWO60` inline rather than calling
 * next(), whose double result is boxed whenever V8 does not inline it. Not for
 * cryptography.
 */
export const TWO30 = 1073741824;
export const TWO60 = TWO30 * TWO30;

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` supplies the initial state (default Math.random); pass a seeded one for tests. */
  constructor(seed: () => number = Math.random) {
    this.s0 = Math.floor(seed() * 4294967296) | 0;
    this.s1 = Math.floor(seed() * 4294967296) | 0;
    this.s2 = Math.floor(seed() * 4294967296) | 0;
    this.s3 = Math.floor(seed() * 4294967296) | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 0x9e3779b9 | 0;
    for (let i = 0; i < 8; i++) this.int30();
  }

  /** Uniform integer in [0, 2^30). */
  int30(): number {
    let t = this.s3;
    const x = this.s0;
    this.s3 = this.s2;
    this.s2 = this.s1;
    this.s1 = x;
    t ^= t << 11;
    t ^= t >>> 8;
    const r = (t ^ x ^ (x >>> 19)) | 0;
    this.s0 = r;
    return r >>> 2;
  }

  /** Uniform integer in [0, n) for 0 < n <= 2^30 (a Smi: no allocation). */
  below(n: number): number {
    return Math.floor((this.int30() * n) / TWO30);
  }

  /** Uniform double in [0, 1) with 60 random bits (boxed when not inlined: not for picks). */
  next(): number {
    return (this.int30() * TWO30 + this.int30()) / TWO60;
  }
}
