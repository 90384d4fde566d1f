/**
 * Ed25519 (RFC 8032) over node:crypto, with keys as raw 32-byte strings: a private key is the
 * 32-byte seed, a public key the 32-byte encoded point, a signature 64 bytes.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { abytes, concatBytes, wipe } from './bytes.js';
import { fromHex } from './encoding.js';
import { ed25519PublicKeyObject as publicKeyObject } from './platform.js';

export { ed25519Verify, isSmallOrderEd25519 } from './ed25519-verify.js';

const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');
const SPKI_PREFIX = fromHex('302a300506032b6570032100');

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

/** A public key object, cached: verifiers check many signatures by few keys. */
export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  return publicKeyObject(abytes(publicKey, 32, 'Ed25519 public key'));
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
