/**
 * GF(2^8) as AES defines it (reduction polynomial x^8 + x^4 + x^3 + x + 1, 0x11b), written from
 * the definition, without tables: a test oracle for Shamir shares, never used by src/.
 */

const POLYNOMIAL = 0x11b;

function assertByte(a: number): void {
  if (!Number.isInteger(a) || a < 0 || a > 255) throw new RangeError(`${a} is not a field element`);
}

/** Addition and subtraction alike: XOR. */
export function gfAdd(a: number, b: number): number {
  assertByte(a);
  assertByte(b);
  return a ^ b;
}

/** Shift-and-add multiplication, reducing by the polynomial whenever x^8 appears. */
export function gfMul(a: number, b: number): number {
  assertByte(a);
  assertByte(b);
  let product = 0;
  let x = a;
  for (let y = b; y !== 0; y >>= 1) {
    if (y & 1) product ^= x;
    x <<= 1;
    if (x & 0x100) x ^= POLYNOMIAL;
  }
  return product;
}

/** The inverse of a non-zero element: a^254, since a^255 = 1 in a field of 256 elements. */
export function gfInv(a: number): number {
  assertByte(a);
  if (a === 0) throw new RangeError('0 has no inverse');
  let result = 1;
  let base = a;
  for (let e = 254; e !== 0; e >>= 1) {
    if (e & 1) result = gfMul(result, base);
    base = gfMul(base, base);
  }
  return result;
}

export function gfDiv(a: number, b: number): number {
  return gfMul(a, gfInv(b));
}

export interface Point {
  readonly x: number;
  readonly y: number;
}

/** The value at `at` of the one polynomial of degree < points.length through `points` (Lagrange). */
export function interpolateAt(points: readonly Point[], at: number): number {
  if (new Set(points.map((p) => p.x)).size !== points.length) throw new RangeError('interpolation points must have distinct x');
  let sum = 0;
  for (const [i, p] of points.entries()) {
    let basis = 1;
    for (const [j, q] of points.entries()) {
      if (i !== j) basis = gfMul(basis, gfDiv(gfAdd(at, q.x), gfAdd(p.x, q.x)));
    }
    sum = gfAdd(sum, gfMul(p.y, basis));
  }
  return sum;
}

/**
 * Byte-wise interpolation over secret-sharing shares in the library's layout (value bytes, then
 * the x-coordinate as the last byte), plus extra points given as (x, whole value): the value at
 * `at`, one byte per value byte.
 */
export function interpolateSharesAt(shares: readonly Uint8Array[], extra: readonly { x: number; value: Uint8Array }[], at: number): Uint8Array {
  const length = (shares[0]?.length ?? (extra[0]?.value.length ?? 0) + 1) - 1;
  const out = new Uint8Array(length);
  for (let k = 0; k < length; k++) {
    const points = [...shares.map((s) => ({ x: s[length] ?? 0, y: s[k] ?? 0 })), ...extra.map((e) => ({ x: e.x, y: e.value[k] ?? 0 }))];
    out[k] = interpolateAt(points, at);
  }
  return out;
}
