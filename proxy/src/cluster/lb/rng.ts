/**
 * The load balancers' random source: xorshift128 over an Int32Array. Math.random called
 * through a field is not inlined by V8 and its double result is boxed (16 bytes per
 * call); here state lives in a typed array and int30()/below() return small integers,
 * so a pick allocates nothing. For the same reason, request-path code that needs a
 * fraction computes `(int30() * TWO30 + int30()) / TWO60` inline rather than calling
 * next(), whose double result is boxed whenever V8 does not inline it. Not for
 * cryptography.
 */
export const TWO30 = 1073741824;
export const TWO60 = TWO30 * TWO30;

export class Rng {
  private readonly s = new Int32Array(4);

  /** `seed` supplies the initial state (default Math.random); pass a seeded one for tests. */
  constructor(seed: () => number = Math.random) {
    for (let i = 0; i < 4; i++) this.s[i] = Math.floor(seed() * 4294967296) | 0;
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 0x9e3779b9 | 0;
    for (let i = 0; i < 8; i++) this.int30();
  }

  /** Uniform integer in [0, 2^30). */
  int30(): number {
    const s = this.s;
    let t = s[3]!;
    const x = s[0]!;
    s[3] = s[2]!;
    s[2] = s[1]!;
    s[1] = x;
    t ^= t << 11;
    t ^= t >>> 8;
    s[0] = t ^ x ^ (x >>> 19);
    return s[0]! >>> 2;
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
