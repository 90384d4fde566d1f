/**
 * JSON Web Algorithms (RFC 7518) that JOSE envelopes need, composed from node:crypto:
 * the Concat KDF of section 4.6.2, AES Key Wrap (RFC 3394, section 4.4), and the content
 * encryption algorithms A256CBC-HS512 (section 5.2.5), A256GCM (section 5.3) and XC20P
 * (XChaCha20-Poly1305, which DIDComm allows; from @noble/ciphers, as node:crypto lacks it).
 * Nothing here is a new primitive: each function only arranges AES, SHA-2 and HMAC exactly as
 * the RFC specifies. Failures to authenticate throw `JwaError`, never a partial result.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { abytes, concatBytes, u32be, utf8 } from './bytes.js';

/** A ciphertext, its key or its tag failed to authenticate. Carries no detail on purpose. */
export class JwaError extends Error {
  constructor(message = 'authentication failed') {
    super(message);
    this.name = 'JwaError';
  }
}

const lengthPrefixed = (data: Uint8Array): Uint8Array => concatBytes(u32be(data.length), data);

export interface ConcatKdfInfo {
  /** The `alg` (key wrapping modes) or `enc` (direct mode) header value. */
  readonly algorithm: string;
  readonly apu?: Uint8Array;
  readonly apv?: Uint8Array;
  /** Extra SuppPubInfo after keydatalen; ECDH-1PU puts the length-prefixed tag here. */
  readonly suppPubExtra?: Uint8Array;
}

/**
 * Concat KDF (NIST SP 800-56A single-step, with SHA-256) as RFC 7518 section 4.6.2 fills it:
 * OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo, each length-prefixed but the last.
 */
export function concatKdf(z: Uint8Array, keyBits: number, info: ConcatKdfInfo): Uint8Array {
  const otherInfo = concatBytes(
    lengthPrefixed(utf8(info.algorithm)),
    lengthPrefixed(info.apu ?? new Uint8Array(0)),
    lengthPrefixed(info.apv ?? new Uint8Array(0)),
    u32be(keyBits),
    info.suppPubExtra ?? new Uint8Array(0),
  );
  const out = new Uint8Array(Math.ceil(keyBits / 256) * 32);
  for (let counter = 1; (counter - 1) * 32 < out.length; counter++) {
    out.set(createHash('sha256').update(u32be(counter)).update(z).update(otherInfo).digest(), (counter - 1) * 32);
  }
  return out.subarray(0, keyBits / 8);
}

const KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

/** AES-256 Key Wrap (RFC 3394) of a content key under a 32-byte key-encrypting key. */
export function aesKeyWrap(kek: Uint8Array, key: Uint8Array): Uint8Array {
  abytes(kek, 32, 'key-encrypting key');
  const cipher = createCipheriv('id-aes256-wrap', kek, KW_IV);
  return new Uint8Array(Buffer.concat([cipher.update(key), cipher.final()]));
}

/** Unwraps a content key; throws `JwaError` when the integrity check fails. */
export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Uint8Array {
  abytes(kek, 32, 'key-encrypting key');
  if (wrapped.length < 24 || wrapped.length % 8 !== 0) throw new JwaError('wrapped key has the wrong length');
  try {
    const decipher = createDecipheriv('id-aes256-wrap', kek, KW_IV);
    return new Uint8Array(Buffer.concat([decipher.update(wrapped), decipher.final()]));
  } catch {
    throw new JwaError('key unwrap failed');
  }
}

export type ContentEncryption = 'A256CBC-HS512' | 'A256GCM' | 'XC20P';
export const CONTENT_ENCRYPTIONS: readonly ContentEncryption[] = ['A256CBC-HS512', 'A256GCM', 'XC20P'];
export const CONTENT_KEY_BYTES: Record<ContentEncryption, number> = { 'A256CBC-HS512': 64, A256GCM: 32, XC20P: 32 };
export const CONTENT_IV_BYTES: Record<ContentEncryption, number> = { 'A256CBC-HS512': 16, A256GCM: 12, XC20P: 24 };
const TAG_BYTES: Record<ContentEncryption, number> = { 'A256CBC-HS512': 32, A256GCM: 16, XC20P: 16 };

export interface Encrypted {
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

function cbcHmacTag(macKey: Uint8Array, aad: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const al = new Uint8Array(8);
  new DataView(al.buffer).setBigUint64(0, BigInt(aad.length) * 8n);
  return new Uint8Array(createHmac('sha512', macKey).update(aad).update(iv).update(ciphertext).update(al).digest().subarray(0, 32));
}

/** Encrypts with `enc` under `key`; the IV is the caller's (fresh and random for every message). */
export function encryptContent(enc: ContentEncryption, key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Encrypted {
  abytes(key, CONTENT_KEY_BYTES[enc], 'content encryption key');
  abytes(iv, CONTENT_IV_BYTES[enc], 'initialization vector');
  if (enc === 'XC20P') {
    const sealed = xchacha20poly1305(key, iv, aad).encrypt(plaintext);
    return { ciphertext: sealed.subarray(0, sealed.length - 16), tag: sealed.subarray(sealed.length - 16) };
  }
  if (enc === 'A256GCM') {
    const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(aad);
    const ciphertext = new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final()]));
    return { ciphertext, tag: new Uint8Array(cipher.getAuthTag()) };
  }
  const cipher = createCipheriv('aes-256-cbc', key.subarray(32), iv);
  const ciphertext = new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final()]));
  return { ciphertext, tag: cbcHmacTag(key.subarray(0, 32), aad, iv, ciphertext) };
}

/** Decrypts and authenticates; throws `JwaError` on any mismatch, before releasing plaintext. */
export function decryptContent(enc: ContentEncryption, key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, aad: Uint8Array): Uint8Array {
  if (key.length !== CONTENT_KEY_BYTES[enc] || iv.length !== CONTENT_IV_BYTES[enc] || tag.length !== TAG_BYTES[enc]) {
    throw new JwaError('content key, IV or tag has the wrong length');
  }
  try {
    if (enc === 'XC20P') return xchacha20poly1305(key, iv, aad).decrypt(concatBytes(ciphertext, tag));
    if (enc === 'A256GCM') {
      const decipher = createDecipheriv('aes-256-gcm', key, iv).setAAD(aad).setAuthTag(tag);
      return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
    }
    const expected = cbcHmacTag(key.subarray(0, 32), aad, iv, ciphertext);
    if (!timingSafeEqual(expected, tag)) throw new JwaError();
    const decipher = createDecipheriv('aes-256-cbc', key.subarray(32), iv);
    return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
  } catch {
    throw new JwaError();
  }
}
