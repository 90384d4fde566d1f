/**
 * Ed25519 (RFC 8032) over node:crypto, with keys as raw 32-byte strings: a private key is the
 * 32-byte seed, a public key the 32-byte encoded point, a signature 64 bytes.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { abytes, concatBytes, wipe } from './bytes.js';
import { fromHex } from './encoding.js';

const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');
const SPKI_PREFIX = fromHex('302a300506032b6570032100');

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

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** A private key object (for keys used many times: import once, sign often). */
export function ed25519PrivateKeyObject(seed: Uint8Array): KeyObject {
  const der = concatBytes(PKCS8_PREFIX, abytes(seed, 32, 'Ed25519 private key'));
  try {
    return createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.length), format: 'der', type: 'pkcs8' });
  } finally {
    wipe(der);
  }
}

/** Public key objects are cached: verifiers check many signatures by few keys. */
const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_CACHE_LIMIT = 4096;

export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  abytes(publicKey, 32, 'Ed25519 public key');
  const id = Buffer.from(publicKey).toString('hex');
  let key = publicKeyCache.get(id);
  if (key === undefined) {
    // JWK import is several times faster than DER in node's OpenSSL 3 binding.
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
    if (publicKeyCache.size >= PUBLIC_CACHE_LIMIT) publicKeyCache.clear();
    publicKeyCache.set(id, key);
  }
  return key;
}

function rawPublic(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length));
}

// Generated straight into DER: exporting a freshly generated KeyObject was seen to deadlock Node 20.
export function ed25519Generate(): KeyPair {
  const { privateKey: der, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  const seed = new Uint8Array(der.subarray(PKCS8_PREFIX.length));
  der.fill(0);
  return { privateKey: seed, publicKey: new Uint8Array(publicKey.subarray(SPKI_PREFIX.length)) };
}

export function ed25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return rawPublic(createPublicKey(ed25519PrivateKeyObject(privateKey)));
}

export function ed25519Sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519SignKey(ed25519PrivateKeyObject(privateKey), message);
}

/** As ed25519Sign, with a private key object (see ed25519PrivateKeyObject). */
export function ed25519SignKey(privateKey: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, abytes(message, undefined, 'message'), privateKey));
}

/** True only for a valid signature; malformed keys or signatures are simply invalid. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32 || isSmallOrderEd25519(publicKey)) return false;
  try {
    return verify(null, abytes(message, undefined, 'message'), ed25519PublicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}
