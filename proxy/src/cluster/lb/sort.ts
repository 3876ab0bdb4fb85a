/**
 * Ordering by 53-bit hash for table builds. Large inputs use an LSD radix sort on the
 * top 32 bits (two 16-bit passes, O(n)) and fix the rare equal-prefix runs with a
 * comparator; a comparator sort over 100k+ items is several times slower.
 */
const RADIX_MIN = 4096;
const TWO21 = 2 ** 21;

/** Indices 0..n-1 ordered by `keys[i]` ascending, equal keys ordered by `tie`. */
export function orderByHash(keys: Float64Array, n: number, tie: (a: number, b: number) => number): Uint32Array {
  const cmp = (a: number, b: number): number => keys[a]! - keys[b]! || tie(a, b);
  if (n < RADIX_MIN) {
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    return order.sort(cmp);
  }
  const hi = new Uint32Array(n);
  for (let i = 0; i < n; i++) hi[i] = Math.floor(keys[i]! / TWO21);
  let src = new Uint32Array(n);
  for (let i = 0; i < n; i++) src[i] = i;
  let dst = new Uint32Array(n);
  const counts = new Uint32Array(65536);
  for (let shift = 0; shift <= 16; shift += 16) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(hi[src[i]!]! >>> shift) & 0xffff]!++;
    let sum = 0;
    for (let b = 0; b < 65536; b++) {
      const c = counts[b]!;
      counts[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const idx = src[i]!;
      dst[counts[(hi[idx]! >>> shift) & 0xffff]!++] = idx;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  // Runs sharing the top 32 bits: order by the full key, then by `tie` (insertion sort;
  // runs are almost always of length 1).
  for (let i = 1; i < n; i++) {
    const x = src[i]!;
    let j = i - 1;
    while (j >= 0 && hi[src[j]!] === hi[x] && cmp(src[j]!, x) > 0) {
      src[j + 1] = src[j]!;
      j--;
    }
    src[j + 1] = x;
  }
  return src;
}
