/**
 * The wallet's key hierarchy (docs/architecture.md "Key hierarchy"): store key → profile KEKs → per-item keys.
 * The keyring holds the KDF parameters and the profile KEKs wrapped by the store key, with a
 * digest over both so that damage is told apart from a wrong secret.
 */
import { z } from 'zod';
import {
  AeadError,
  canonicalBytes,
  canonicalJson,
  equalBytes,
  hkdf,
  keyVersionOf,
  open,
  randomBytes,
  seal,
  sha256,
  toBase64url,
  utf8,
  wipe,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { KdfParams } from './secret.js';
import type { StoredKeyring } from './store.js';

const b64 = (bytes: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .length(Math.ceil((bytes * 4) / 3));

/** The wallet's store key has a part sealed by an AES key in a PKCS#11 token (see protection.ts). */
export const TokenFactor = z.strictObject({
  /** The module it was bound with: where to look first (another path may be given when opening). */
  module: z.string().min(1).max(4096),
  token: z.string().min(1).max(32),
  key: z.string().min(1).max(128),
  /** The token part, sealed by the token's key: nonce ‖ ciphertext ‖ tag. */
  sealed: b64(12 + 32 + 16),
});
export type TokenFactor = z.infer<typeof TokenFactor>;

/** The wallet is under custodians: their set (opaque here, checked by its digest) and its mode. */
export const CustodyFactor = z.strictObject({
  set: z.string().min(1).max(64),
  epoch: z.number().int().min(1).max(0xffffffff),
  mode: z.enum(['unseal', 'approval']),
  /** The custody set's canonical JSON, as the custody part wrote it. */
  document: z.string().min(2).max(200_000),
});
export type CustodyFactor = z.infer<typeof CustodyFactor>;

export const KeyringHeader = z
  .strictObject({
    /** 1: the store key comes from the passphrase (or raw key) alone. 2: from the factors below, with a generation. */
    format: z.union([z.literal(1), z.literal(2)]),
    kdf: KdfParams.optional(),
    /** Format 2: the wallet's own id (16 bytes), which the token's counter and the custodians know it by. */
    id: b64(16).optional(),
    token: TokenFactor.optional(),
    custody: CustodyFactor.optional(),
    /** Format 2: raised by every change to keys or protection; a token or custodians remember the highest seen. */
    generation: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Format 2: HMAC of the generation under a key from the store key, so an old copy cannot claim a newer one. */
    generationMac: b64(32).optional(),
    /** The labels of the tokens keys of this wallet live in: so that their PIN is asked for before the wallet opens. */
    keyTokens: z.array(z.string().min(1).max(32)).max(16).optional(),
    /** Incremented by each rekey; recorded in every wrapped KEK's ciphertext header. */
    keyVersion: z.number().int().min(0).max(0xffffffff),
    createdAt: z.string().max(40),
    rekeyedAt: z.string().max(40).optional(),
  })
  .refine((h) =>
    h.format === 1
      ? h.kdf !== undefined && h.token === undefined && h.custody === undefined && h.id === undefined && h.generation === undefined
      : h.id !== undefined &&
        h.generation !== undefined &&
        h.generationMac !== undefined &&
        (h.kdf !== undefined || h.token !== undefined || h.custody?.mode === 'unseal'),
  );
export type KeyringHeader = z.infer<typeof KeyringHeader>;

export const STORE_KEY_LABEL = 'dkms/wallet/v1/store-key';

/** A profile's unwrapped key-encrypting keys, one per purpose, derived from its root. */
export interface ProfileKeys {
  /** Wraps per-item keys. */
  readonly wrap: Uint8Array;
  /** Encrypts searchable fields deterministically. */
  readonly searchEnc: Uint8Array;
  /** Derives the deterministic nonces of searchable fields. */
  readonly searchMac: Uint8Array;
}

export function profileKeys(root: Uint8Array): ProfileKeys {
  const none = new Uint8Array(0);
  return {
    wrap: hkdf(root, none, 'dkms/wallet/v1/item-wrap'),
    searchEnc: hkdf(root, none, 'dkms/wallet/v1/search-enc'),
    searchMac: hkdf(root, none, 'dkms/wallet/v1/search-mac'),
  };
}

export function wipeProfileKeys(keys: ProfileKeys): void {
  wipe(keys.wrap, keys.searchEnc, keys.searchMac);
}

const kekAad = (profile: string): Uint8Array => utf8(`dkms/wallet/v1/kek:${profile}`);

export function newProfileRoot(): Uint8Array {
  return randomBytes(32);
}

export function wrapProfileRoot(storeKey: Uint8Array, profile: string, root: Uint8Array, keyVersion: number): Uint8Array {
  return seal(storeKey, root, kekAad(profile), keyVersion);
}

function digestOf(header: string, profiles: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const wrapped = [...profiles].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, kek]) => [name, toBase64url(kek)]);
  return sha256(canonicalBytes({ header, profiles: wrapped }));
}

export function buildKeyring(header: KeyringHeader, profiles: ReadonlyMap<string, Uint8Array>): StoredKeyring {
  const text = canonicalJson(header);
  return { header: text, profiles, digest: digestOf(text, profiles) };
}

/** Parses the stored keyring; any inconsistency is damage, reported as WALLET_TAMPERED. */
export function parseKeyring(stored: StoredKeyring, path: string): KeyringHeader {
  const tampered = () => new DkmsError('WALLET_TAMPERED', `wallet ${path}: the keyring is damaged or was altered`);
  if (!equalBytes(digestOf(stored.header, stored.profiles), stored.digest)) throw tampered();
  let header: KeyringHeader;
  try {
    header = KeyringHeader.parse(JSON.parse(stored.header));
  } catch {
    throw tampered();
  }
  for (const kek of stored.profiles.values()) {
    try {
      if (keyVersionOf(kek) !== header.keyVersion) throw tampered();
    } catch (e) {
      if (e instanceof AeadError) throw tampered();
      throw e;
    }
  }
  return header;
}

/**
 * Unwraps a profile's root KEK. The keyring's digest has already shown it intact, so a
 * failure here means the secret was wrong.
 */
export function unwrapProfileRoot(storeKey: Uint8Array, profile: string, wrapped: Uint8Array): Uint8Array {
  try {
    return open(storeKey, wrapped, kekAad(profile));
  } catch (e) {
    if (e instanceof AeadError) throw new DkmsError('WALLET_BAD_PASSPHRASE', 'wrong passphrase or key for this wallet');
    throw e;
  }
}
