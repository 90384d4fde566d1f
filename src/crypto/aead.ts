/**
 * Authenticated encryption: AES-256-GCM with a random 96-bit nonce and a self-describing
 * header. Layout: `version(1) ‖ keyVersion(u32be) ‖ nonce(12) ‖ ciphertext ‖ tag(16)`.
 * The header is authenticated with the caller's associated data, so neither the version nor
 * the key version can be changed without detection.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { badInput } from '../errors.js';
import { abytes, concatBytes, readU32be, randomBytes, u32be } from './bytes.js';

export const AEAD_VERSION_AES256GCM = 1;
const HEADER = 5;
const NONCE = 12;
const TAG = 16;
export const AEAD_OVERHEAD = HEADER + NONCE + TAG;

/** Thrown by `open` when the ciphertext does not authenticate; callers map it to their own code. */
export class AeadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AeadError';
  }
}

function gcm(key: Uint8Array, nonce: Uint8Array, header: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  // GCM authenticates its associated data as one stream: two updates equal one of the concatenation.
  cipher.setAAD(header);
  if (aad.length > 0) cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  cipher.final();
  return concatBytes(header, nonce, body, cipher.getAuthTag());
}

function header(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, keyVersion: number): Uint8Array {
  abytes(key, 32, 'AEAD key');
  abytes(plaintext, undefined, 'plaintext');
  abytes(aad, undefined, 'associated data');
  if (!Number.isInteger(keyVersion) || keyVersion < 0 || keyVersion > 0xffffffff) throw badInput('key version must be a 32-bit unsigned integer');
  return concatBytes(Uint8Array.of(AEAD_VERSION_AES256GCM), u32be(keyVersion));
}

/** Encrypts with a fresh random nonce. */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array = new Uint8Array(0), keyVersion = 0): Uint8Array {
  return gcm(key, randomBytes(NONCE), header(key, plaintext, aad, keyVersion), aad, plaintext);
}

/**
 * Deterministic encryption for searchable fields: the nonce is derived from the plaintext by
 * the caller (an HMAC under a separate key), so equal plaintexts give equal ciphertexts and
 * a nonce never repeats under one key for different plaintexts (the SIV construction).
 */
export function sealWithNonce(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, keyVersion = 0): Uint8Array {
  return gcm(key, abytes(nonce, NONCE, 'nonce'), header(key, plaintext, aad, keyVersion), aad, plaintext);
}

/** The nonce of a sealed value; for deterministic encryption it identifies the plaintext. */
export function nonceOf(sealed: Uint8Array): Uint8Array {
  if (sealed.length < AEAD_OVERHEAD) throw new AeadError('ciphertext too short');
  return sealed.subarray(HEADER, HEADER + NONCE);
}

/** The key version recorded in a sealed value's header. */
export function keyVersionOf(sealed: Uint8Array): number {
  if (sealed.length < AEAD_OVERHEAD) throw new AeadError('ciphertext too short');
  return readU32be(sealed, 1);
}

export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array = new Uint8Array(0)): Uint8Array {
  abytes(key, 32, 'AEAD key');
  if (!(sealed instanceof Uint8Array) || sealed.length < AEAD_OVERHEAD) throw new AeadError('ciphertext too short');
  if (sealed[0] !== AEAD_VERSION_AES256GCM) throw new AeadError('unknown ciphertext version');
  const header = sealed.subarray(0, HEADER);
  const nonce = sealed.subarray(HEADER, HEADER + NONCE);
  const body = sealed.subarray(HEADER + NONCE, sealed.length - TAG);
  const tag = sealed.subarray(sealed.length - TAG);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(header);
  if (aad.length > 0) decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const out = decipher.update(body);
  try {
    decipher.final();
  } catch {
    out.fill(0);
    throw new AeadError('ciphertext does not authenticate');
  }
  const plaintext = new Uint8Array(out);
  out.fill(0);
  return plaintext;
}
