/**
 * Ed25519 verification as dkms does it everywhere (the node, clients, the browser): lengths
 * checked and keys of small order refused here, the RFC 8032 check by the platform.
 */
import { ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { abytes } from './bytes.js';
import { fromHex } from './encoding.js';
import { ed25519VerifyChecked } from './platform.js';

const P = 2n ** 255n - 19n;

/** The y coordinate of an encoded point, without the sign bit of x. */
function yOf(encoded: Uint8Array): bigint {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? (encoded[i] ?? 0) & 0x7f : (encoded[i] ?? 0));
  return y;
}

/**
 * The y coordinates of the eight points of small order (noble-curves' list), and their
 * non-canonical forms y + p. A point's order does not depend on the sign of x.
 */
const SMALL_ORDER_Y = new Set(
  ED25519_TORSION_SUBGROUP.flatMap((hex) => {
    const y = yOf(fromHex(hex));
    return y + P < 2n ** 255n ? [y, y + P] : [y];
  }),
);

/**
 * True for a public key of small order. Such a key has no secret: signatures "by" it can be
 * made by anyone (the identity point verifies a fixed signature over every message), so dkms
 * never accepts one.
 */
export function isSmallOrderEd25519(publicKey: Uint8Array): boolean {
  return publicKey.length === 32 && SMALL_ORDER_Y.has(yOf(publicKey));
}

/** True only for a valid signature; malformed keys or signatures are simply invalid. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32 || isSmallOrderEd25519(publicKey)) return false;
  return ed25519VerifyChecked(publicKey, abytes(message, undefined, 'message'), signature);
}
