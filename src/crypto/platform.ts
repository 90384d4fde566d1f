/**
 * What crypto/ takes from the platform it runs on, in one module: random bytes, constant-time
 * comparison, base64url, SHA-256 and Ed25519 verification. This one is Node's (node:crypto).
 *
 * The browser build of the verifying code (the dashboard, web/) swaps this module for
 * crypto/web/platform.ts, where every digest and signature check is WebCrypto's. WebCrypto is
 * asynchronous and the verifiers are not, so code that verifies runs each step through
 * `settle`: here it simply runs the step; in the browser a step that needs a digest or a
 * verdict not yet computed throws a `CryptoPending`, which `settle` computes with WebCrypto
 * before running the step again. A step must therefore change nothing before its last hash or
 * signature check (validation only reads), and code that catches every error inside a step
 * must let a pending one through (`isCryptoPending`).
 */
import * as nodeCrypto from 'node:crypto';
import { createHash, randomFillSync, timingSafeEqual } from 'node:crypto';

/** Fills `bytes` from the operating system's CSPRNG and returns it. */
export function fillRandom(bytes: Uint8Array): Uint8Array {
  return randomFillSync(bytes);
}

/**
 * Compares two byte strings in time that depends only on their lengths, never on where they
 * differ. Different lengths compare unequal (length is not treated as secret).
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** V8 keeps typed arrays up to this many bytes inside its heap. */
const IN_HEAP_MAX = 64;

/**
 * A Buffer with the bytes of `bytes`, for reading them through Node (toString and the like):
 * a view when they already have memory of their own, a copy in Node's buffer pool when small.
 * Reading a small typed array's `.buffer` would move it out of V8's heap with a malloc of its
 * own — a microsecond, freed only after a collection, and in bulk: glibc then stalls the thread
 * for milliseconds consolidating them. Not for secrets: the pool is shared and never wiped.
 */
export function bufferOf(bytes: Uint8Array): Buffer {
  return bytes.byteLength <= IN_HEAP_MAX ? Buffer.from(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function base64urlEncode(bytes: Uint8Array): string {
  return bufferOf(bytes).toString('base64url');
}

/** Decodes base64url leniently (the caller checks the alphabet and that it is canonical). */
export function base64urlDecode(text: string): Uint8Array {
  const bytes = Buffer.from(text, 'base64url');
  const out = new Uint8Array(bytes);
  bytes.fill(0);
  return out;
}

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

/** Public key objects are cached: verifiers check many signatures by few keys. */
const publicKeyCache = new Map<string, nodeCrypto.KeyObject>();
const PUBLIC_CACHE_LIMIT = 4096;

/** A public key object for a 32-byte Ed25519 key (the caller checks its length). */
export function ed25519PublicKeyObject(publicKey: Uint8Array): nodeCrypto.KeyObject {
  const id = Buffer.from(publicKey).toString('hex');
  let key = publicKeyCache.get(id);
  if (key === undefined) {
    // JWK import is several times faster than DER in node's OpenSSL 3 binding.
    key = nodeCrypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
    if (publicKeyCache.size >= PUBLIC_CACHE_LIMIT) publicKeyCache.clear();
    publicKeyCache.set(id, key);
  }
  return key;
}

/**
 * RFC 8032 verification of a 64-byte signature by a 32-byte public key (the caller has checked
 * both lengths and refused keys of small order). False for anything that does not verify.
 */
export function ed25519VerifyChecked(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return nodeCrypto.verify(null, message, ed25519PublicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** Runs one verification step (see the module's comment): on Node, at once. */
export async function settle<T>(step: () => T | Promise<T>): Promise<T> {
  return step();
}

/** Computes ahead what `step` will ask WebCrypto for (see crypto/web/platform.ts): nothing to do on Node. */
export async function prefetch(_step: () => void): Promise<void> {
  // On Node every answer is computed where it is asked for.
}

/** Whether `error` is a step's request for WebCrypto work (see the module's comment): never on Node. */
export function isCryptoPending(_error: unknown): boolean {
  return false;
}
