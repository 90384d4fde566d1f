/**
 * Text encodings: base64url without padding (strict), base58btc, hex, and multibase
 * multicodec public keys as did:key writes them (`z6Mk…` Ed25519, `z6LS…` X25519).
 */
import { base58, hex as scureHex } from '@scure/base';
import { badInput } from '../errors.js';
import { abytes, concatBytes, randomBytes } from './bytes.js';
import { base64urlDecode, base64urlEncode } from './platform.js';

const BASE64URL = /^[A-Za-z0-9_-]*$/;

export function toBase64url(bytes: Uint8Array): string {
  abytes(bytes);
  return base64urlEncode(bytes);
}

/** Parses unpadded base64url; any other alphabet, padding or a non-canonical tail is BAD_INPUT. */
export function fromBase64url(text: string, what = 'value'): Uint8Array {
  if (typeof text !== 'string' || !BASE64URL.test(text)) throw badInput(`${what} is not base64url`);
  // The platform's decoder may be lenient; the alphabet check above and this round trip make it
  // strict: one encoding per value, no impossible lengths, no tails whose unused bits are set.
  let bytes: Uint8Array;
  try {
    bytes = base64urlDecode(text);
  } catch {
    throw badInput(`${what} is not base64url`);
  }
  if (base64urlEncode(bytes) !== text) {
    bytes.fill(0);
    throw badInput(`${what} is not canonical base64url`);
  }
  return bytes;
}

export function toBase58btc(bytes: Uint8Array): string {
  return base58.encode(abytes(bytes));
}

export function fromBase58btc(text: string, what = 'value'): Uint8Array {
  try {
    return base58.decode(text);
  } catch {
    throw badInput(`${what} is not base58btc`);
  }
}

export function toHex(bytes: Uint8Array): string {
  return scureHex.encode(abytes(bytes));
}

export function fromHex(text: string, what = 'value'): Uint8Array {
  try {
    return scureHex.decode(text.toLowerCase());
  } catch {
    throw badInput(`${what} is not hex`);
  }
}

export type KeyType = 'ed25519' | 'x25519';
export const KEY_TYPES: readonly KeyType[] = ['ed25519', 'x25519'];

/** A public key as multibase base58btc of its multicodec-prefixed bytes. */
export type MultibaseKey = string & { readonly __brand: 'MultibaseKey' };

// Multicodec varints: ed25519-pub 0xed, x25519-pub 0xec.
const MULTICODEC: Record<KeyType, Uint8Array> = {
  ed25519: Uint8Array.of(0xed, 0x01),
  x25519: Uint8Array.of(0xec, 0x01),
};

export function encodePublicKey(type: KeyType, publicKey: Uint8Array): MultibaseKey {
  abytes(publicKey, 32, `${type} public key`);
  return `z${base58.encode(concatBytes(MULTICODEC[type], publicKey))}` as MultibaseKey;
}

/** Parses a multibase public key; `expected` restricts the accepted key type. */
export function decodePublicKey(text: string, expected?: KeyType): { type: KeyType; publicKey: Uint8Array } {
  if (typeof text !== 'string' || !text.startsWith('z')) {
    throw badInput('public key must be multibase base58btc (starting with z)');
  }
  const bytes = fromBase58btc(text.slice(1), 'public key');
  for (const type of Object.keys(MULTICODEC) as KeyType[]) {
    const prefix = MULTICODEC[type];
    if (bytes[0] === prefix[0] && bytes[1] === prefix[1]) {
      if (bytes.length !== 34) throw badInput(`${type} public key must be 32 bytes`);
      if (expected !== undefined && type !== expected) {
        throw badInput(`expected an ${expected} public key, got ${type}`);
      }
      return { type, publicKey: bytes.slice(2) };
    }
  }
  throw badInput('public key has an unknown multicodec prefix');
}

/**
 * A new random id of `bytes` random bytes (128 bits by default), base64url, that never begins
 * with '-': ids are shown to people and typed back as command arguments, where a leading '-'
 * reads as an option. (Drawn again when it would, a 64th of the time: 0.02 of its 128 bits lost.)
 */
export function randomId(bytes = 16): string {
  for (;;) {
    const id = toBase64url(randomBytes(bytes));
    if (!id.startsWith('-')) return id;
  }
}
