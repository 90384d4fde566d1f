/** SHA-256, HMAC-SHA-256 and HKDF-SHA-256 (RFC 5869), all on node:crypto. */
import { createHmac, hkdfSync } from 'node:crypto';
import { abytes } from './bytes.js';
import { badInput } from '../errors.js';

export { sha256 } from './platform.js';

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
