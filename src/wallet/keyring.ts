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

export const KeyringHeader = z.strictObject({
  format: z.literal(1),
  kdf: KdfParams,
  /** Incremented by each rekey; recorded in every wrapped KEK's ciphertext header. */
  keyVersion: z.number().int().min(0).max(0xffffffff),
  createdAt: z.string().max(40),
  rekeyedAt: z.string().max(40).optional(),
});
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
