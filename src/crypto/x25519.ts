/** X25519 key agreement (RFC 7748) over node:crypto, with raw 32-byte keys. */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { DkmsError } from '../errors.js';
import { abytes, concatBytes, wipe } from './bytes.js';
import { fromHex } from './encoding.js';
import type { KeyPair } from './ed25519.js';

const PKCS8_PREFIX = fromHex('302e020100300506032b656e04220420');
const SPKI_PREFIX = fromHex('302a300506032b656e032100');

/** A private key object (for keys used many times: import once, agree often). */
export function x25519PrivateKeyObject(scalar: Uint8Array): KeyObject {
  const der = concatBytes(PKCS8_PREFIX, abytes(scalar, 32, 'X25519 private key'));
  try {
    return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
  } finally {
    wipe(der);
  }
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  // JWK import is an order of magnitude faster than DER in node's OpenSSL 3 binding.
  return createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(abytes(publicKey, 32, 'X25519 public key')).toString('base64url') },
    format: 'jwk',
  });
}

function rawPublic(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length));
}

// Keys are generated straight into DER: exporting a freshly generated KeyObject was seen to
// deadlock Node 20 (a garbage collection during the export waits on the lock it holds).
export function x25519Generate(): KeyPair {
  const { privateKey: der, publicKey } = generateKeyPairSync('x25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  const scalar = new Uint8Array(der.subarray(PKCS8_PREFIX.length));
  der.fill(0);
  return { privateKey: scalar, publicKey: new Uint8Array(publicKey.subarray(SPKI_PREFIX.length)) };
}

export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return rawPublic(createPublicKey(x25519PrivateKeyObject(privateKey)));
}

/** A one-time key pair whose private half never leaves OpenSSL (envelopes' ephemeral keys). */
export interface EphemeralX25519 {
  readonly publicKey: Uint8Array;
  agree(peerPublicKey: Uint8Array): Uint8Array;
}

export function x25519Ephemeral(): EphemeralX25519 {
  // Only the public half encoded: Node returns it as DER bytes and keeps the private half a KeyObject
  // (@types/node types only the both-or-neither forms).
  const { privateKey, publicKey } = generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' } }) as unknown as {
    privateKey: KeyObject;
    publicKey: Buffer;
  };
  return { publicKey: new Uint8Array(publicKey.subarray(SPKI_PREFIX.length)), agree: (peer) => x25519AgreeKey(privateKey, peer) };
}

/**
 * The shared secret X25519(privateKey, peerPublicKey). A peer key of small order yields the
 * all-zero value, which is refused (RFC 7748 section 6.1) rather than used as a key.
 */
export function x25519Agree(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  return x25519AgreeKey(x25519PrivateKeyObject(privateKey), peerPublicKey);
}

/** As x25519Agree, with a private key object (see x25519PrivateKeyObject). */
export function x25519AgreeKey(privateKey: KeyObject, peerPublicKey: Uint8Array): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = new Uint8Array(diffieHellman({ privateKey, publicKey: publicKeyObject(peerPublicKey) }));
  } catch (e) {
    if (e instanceof DkmsError) throw e;
    throw new DkmsError('BAD_INPUT', 'X25519 agreement failed: the peer public key is unusable');
  }
  if (shared.every((b) => b === 0)) {
    throw new DkmsError('BAD_INPUT', 'X25519 peer public key has small order');
  }
  return shared;
}
