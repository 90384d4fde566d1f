/** RFC 8785 JSON Canonicalization Scheme, by the `canonicalize` library, with strict input. */
import canonicalizeLib from 'canonicalize';
import { badInput } from '../errors.js';
import { utf8 } from './bytes.js';

// With the u flag a surrogate matches only when it is not half of a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Deeper nesting than any dkms document has; also stops cycles. */
const MAX_DEPTH = 64;

function assertJson(value: unknown, path: string, depth = 0): void {
  if (depth > MAX_DEPTH) throw badInput(`${path} is nested more than ${MAX_DEPTH} levels deep`);
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw badInput(`${path} is not valid Unicode`);
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw badInput(`${path} is not a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw badInput(`${path}[${i}] is a hole in a sparse array`);
      assertJson(value[i], `${path}[${i}]`, depth + 1);
    }
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value)) {
      if (LONE_SURROGATE.test(k)) throw badInput(`${path} has a key that is not valid Unicode`);
      assertJson(v, `${path}.${k}`, depth + 1);
    }
    return;
  }
  throw badInput(`${path} is not JSON (${typeof value})`);
}

/** The canonical JSON text of `value`; anything JSON cannot represent exactly is BAD_INPUT. */
export function canonicalJson(value: unknown): string {
  assertJson(value, '$');
  const text = canonicalizeLib(value);
  if (typeof text !== 'string') throw badInput('$ is not JSON');
  return text;
}

export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalJson(value));
}
