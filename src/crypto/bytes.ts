/** Byte helpers: input assertions, concatenation, constant-time comparison, wiping. */
import { badInput } from '../errors.js';
import { fillRandom } from './platform.js';

export { bufferOf, equalBytes } from './platform.js';

/** Throws BAD_INPUT unless `value` is a Uint8Array (of `length` bytes, when given). */
export function abytes(value: unknown, length?: number, what = 'value'): Uint8Array {
  if (!(value instanceof Uint8Array)) throw badInput(`${what} must be bytes`);
  if (length !== undefined && value.length !== length) {
    throw badInput(`${what} must be ${length} bytes, got ${value.length}`);
  }
  return value;
}

// Small requests are served from a pool refilled by one CSPRNG call: per-call overhead
// dominates for nonces and item keys. Served bytes are zeroed in the pool.
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;

/** Cryptographically secure random bytes. */
export function randomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw badInput('length must be a non-negative integer');
  if (length > 64) return fillRandom(new Uint8Array(length));
  if (poolOffset + length > POOL_SIZE) {
    fillRandom(pool);
    poolOffset = 0;
  }
  const out = pool.slice(poolOffset, poolOffset + length);
  pool.fill(0, poolOffset, poolOffset + length);
  poolOffset += length;
  return out;
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Overwrites key material in place. */
export function wipe(...buffers: readonly (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * The length of `text` in UTF-8, without encoding it: 1 to 3 bytes per UTF-16 unit, 4 per
 * surrogate pair; a lone surrogate counts 3, as the U+FFFD that `utf8` writes for it.
 */
export function byteLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Decodes UTF-8, refusing malformed input with BAD_INPUT. */
export function fromUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw badInput('bytes are not valid UTF-8');
  }
}

export function u32be(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function readU32be(bytes: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > bytes.length) throw new RangeError('read past the end of the bytes');
  return ((bytes[offset] ?? 0) * 0x1000000 + (((bytes[offset + 1] ?? 0) << 16) | ((bytes[offset + 2] ?? 0) << 8) | (bytes[offset + 3] ?? 0))) >>> 0;
}

/** Length-prefixed concatenation (`u32be length ‖ bytes` per part): distinct lists never encode alike. */
export function framed(...parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const part of parts) total += 4 + part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    const n = part.length;
    out[offset] = n >>> 24;
    out[offset + 1] = (n >>> 16) & 0xff;
    out[offset + 2] = (n >>> 8) & 0xff;
    out[offset + 3] = n & 0xff;
    out.set(part, offset + 4);
    offset += 4 + n;
  }
  return out;
}

/** The parts of a `framed` encoding, as views into `bytes`; RangeError if it is malformed. */
export function unframe(bytes: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = readU32be(bytes, offset);
    if (offset + 4 + length > bytes.length) throw new RangeError('framed part runs past the end');
    parts.push(bytes.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return parts;
}
