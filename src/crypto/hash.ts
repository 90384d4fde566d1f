/** SHA-256, HMAC-SHA-256 and HKDF-SHA-256 (RFC 5869), all on node:crypto. */
import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { abytes } from './bytes.js';
import { badInput } from '../errors.js';

/**
 * One-shot hashing (Node 20.12+). Asked for a string, it returns one without making a Buffer:
 * measured 4× faster per small input than asking it for a Buffer (0.33 µs against 1.5 µs), and
 * 6× faster than a Hash object. 'binary' (Latin-1) maps each byte of the digest to one character.
 */
const oneShot = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'binary') => string }).hash;

export function sha256(data: Uint8Array): Uint8Array {
  if (oneShot === undefined) return new Uint8Array(createHash('sha256').update(data).digest());
  const digest = oneShot('sha256', data, 'binary');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = digest.charCodeAt(i);
  return out;
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHmac('sha256', abytes(key, undefined, 'HMAC key'))
      .update(data)
      .digest(),
  );
}

/**
 * HKDF-SHA-256 extract-and-expand. `info` is the label that keeps derived keys of different
 * purposes apart; use a distinct one per purpose.
 */
export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array | string, length = 32): Uint8Array {
  abytes(ikm, undefined, 'HKDF input key');
  abytes(salt, undefined, 'HKDF salt');
  if (!Number.isSafeInteger(length) || length < 1 || length > 255 * 32) {
    throw badInput('HKDF output length must be 1..8160 bytes');
  }
  const infoBytes = typeof info === 'string' ? new TextEncoder().encode(info) : info;
  return new Uint8Array(hkdfSync('sha256', ikm, salt, infoBytes, length));
}
