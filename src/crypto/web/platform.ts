/**
 * The browser's platform module (see crypto/platform.ts, which the dashboard's build swaps for
 * this one): random bytes from `crypto.getRandomValues`, base64url from @scure/base, and every
 * SHA-256 digest and Ed25519 verdict from WebCrypto (`crypto.subtle`). No hash or curve
 * arithmetic of our own or of a library runs here.
 *
 * WebCrypto answers later; the verifiers ask now. So `sha256` and `ed25519VerifyChecked` answer
 * from what WebCrypto has already computed, and for anything else throw a `CryptoPending` that
 * holds the work to do. `settle(step)` runs the step, does the pending work when it is asked
 * for, and runs the step again, until it ends without asking: each round adds one WebCrypto
 * answer, so a step of d hashes ends after d + 1 rounds. Steps only read (the verifiers and
 * validation change nothing before their last check), so running one again is safe.
 *
 * Answers are kept by their exact input, bounded in total size, the oldest dropped first. Where a
 * verifier will ask for many independent answers (the events of a chain), `prefetch` computes
 * them in parallel beforehand.
 */
import { base64urlnopad } from '@scure/base';
import { DkmsError } from '../../errors.js';

/** A step's request for one WebCrypto answer it does not have yet. */
class CryptoPending extends Error {
  constructor(readonly work: () => Promise<void>) {
    super('a WebCrypto answer is still to be computed (run this step through settle)');
  }
}

export function fillRandom(bytes: Uint8Array): Uint8Array {
  // getRandomValues gives at most 65,536 bytes per call.
  for (let at = 0; at < bytes.length; at += 65_536) crypto.getRandomValues(bytes.subarray(at, Math.min(bytes.length, at + 65_536)));
  return bytes;
}

/** Constant-time in the contents (the lengths are not secret). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

export function base64urlEncode(bytes: Uint8Array): string {
  return base64urlnopad.encode(bytes);
}

export function base64urlDecode(text: string): Uint8Array {
  return base64urlnopad.decode(text);
}

/** Node's Buffer: never in the browser (crypto/bytes.ts re-exports this name for Node callers). */
export function bufferOf(_bytes: Uint8Array): never {
  throw new DkmsError('INTERNAL', 'Buffer is not available in the browser');
}

/** Each byte as one UTF-16 unit: a Map key that names exactly these bytes. */
function keyOf(...parts: Uint8Array[]): string {
  let key = '';
  for (const part of parts) {
    for (let at = 0; at < part.length; at += 8192) key += String.fromCharCode(...part.subarray(at, at + 8192));
  }
  return key;
}

/** Known answers, by input; the oldest are dropped past 32 M characters of keys. */
class Answers<T> {
  readonly #map = new Map<string, T>();
  #chars = 0;

  get(key: string): T | undefined {
    return this.#map.get(key);
  }

  set(key: string, value: T): void {
    if (this.#map.has(key)) return;
    this.#map.set(key, value);
    this.#chars += key.length;
    for (const [old] of this.#map) {
      if (this.#chars <= 32 * 1024 * 1024) break;
      this.#map.delete(old);
      this.#chars -= old.length;
    }
  }
}

const digests = new Answers<Uint8Array>();
const verdicts = new Answers<boolean>();

/** While `prefetch` runs its step: the work asked for, by input (placeholders answer meanwhile). */
let collecting: Map<string, () => Promise<void>> | undefined;

/** Work the step needs: thrown as a request, or (prefetching) noted and a placeholder answered. */
function ask<T>(key: string, work: () => Promise<void>, placeholder: T): T {
  if (collecting === undefined) throw new CryptoPending(work);
  collecting.set(key, work);
  return placeholder;
}

export function sha256(data: Uint8Array): Uint8Array {
  const key = keyOf(data);
  const known = digests.get(key);
  if (known !== undefined) return known.slice();
  // A copy now: callers may reuse the array they passed.
  const input = data.slice();
  return ask(`d${key}`, async () => digests.set(key, new Uint8Array(await crypto.subtle.digest('SHA-256', input))), new Uint8Array(32));
}

type CryptoKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

/** Imported public keys, by their bytes: verifiers check many signatures by few keys. */
const publicKeys = new Map<string, Promise<CryptoKey | undefined>>();

function importPublicKey(publicKey: Uint8Array): Promise<CryptoKey | undefined> {
  const key = keyOf(publicKey);
  let imported = publicKeys.get(key);
  if (imported === undefined) {
    // A string that is not a point on the curve is refused by the import: no signature by it verifies.
    imported = crypto.subtle.importKey('raw', publicKey.slice(), { name: 'Ed25519' }, false, ['verify']).catch(() => undefined);
    if (publicKeys.size >= 4096) publicKeys.clear();
    publicKeys.set(key, imported);
  }
  return imported;
}

/** As crypto/platform.ts: the caller has checked the lengths and refused keys of small order. */
export function ed25519VerifyChecked(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = keyOf(publicKey, signature, message);
  const known = verdicts.get(key);
  if (known !== undefined) return known;
  const [pk, msg, sig] = [publicKey.slice(), message.slice(), signature.slice()];
  const work = async () => {
    const cryptoKey = await importPublicKey(pk);
    const valid = cryptoKey === undefined ? false : await crypto.subtle.verify({ name: 'Ed25519' }, cryptoKey, sig, msg).catch(() => false);
    verdicts.set(key, valid);
  };
  return ask(`v${key}`, work, false);
}

/** More rounds than any verification step needs (a map proof: 258): past it, a step is looping. */
const MAX_ROUNDS = 100_000;

/** Runs `step` until it has every WebCrypto answer it asks for (see the module's comment). */
export async function settle<T>(step: () => T | Promise<T>): Promise<T> {
  for (let round = 0; ; round++) {
    try {
      return await step();
    } catch (e) {
      if (!(e instanceof CryptoPending)) throw e;
      if (round >= MAX_ROUNDS) throw new DkmsError('INTERNAL', `a verification step asked for more than ${MAX_ROUNDS} WebCrypto answers`);
      await e.work();
    }
  }
}

/**
 * Computes at once, in parallel, the WebCrypto answers `step` will ask for, so that the steps run
 * through `settle` afterwards find them and need one round each instead of one per answer. The
 * step runs once with placeholder answers (zeros for a digest, false for a verdict) only to learn
 * what it asks for: its result and its errors are dropped, and no placeholder is ever kept as an
 * answer, so it decides nothing. It must be synchronous and change nothing (a pure read of data:
 * on a placeholder it may take another branch and ask for less, never more than is harmless).
 */
export async function prefetch(step: () => void): Promise<void> {
  const asked = new Map<string, () => Promise<void>>();
  collecting = asked;
  try {
    step();
  } catch {
    // A placeholder may make the step refuse: what it asked for before is still worth computing.
  } finally {
    collecting = undefined;
  }
  await Promise.all([...asked.values()].map((work) => work()));
}

export function isCryptoPending(error: unknown): boolean {
  return error instanceof CryptoPending;
}
