/**
 * The encrypted wallet (`dkms/wallet`): items and keys in one SQLite file, under a key derived
 * from a passphrase (Argon2id) or a raw 32-byte key. Private keys never leave it: a
 * {@link Wallet} signs and agrees with them by name, and hands out only public keys,
 * {@link Signer}s and {@link KeyAgreementKey}s that use them in place.
 *
 * @example
 * ```ts
 * import { Wallet, passphraseSecret } from 'dkms/wallet';
 *
 * const wallet = await Wallet.create(path, passphraseSecret('a long passphrase'));
 * const main = wallet.createKey('main', 'ed25519');
 * const signature = wallet.sign('main', message);
 * wallet.close();
 * ```
 * @module dkms/wallet
 */
export { DEFAULT_PROFILE, Wallet } from './wallet.js';
export type {
  CreateOptions,
  CustodyBinding,
  FindQuery,
  OpenOptions,
  ProtectionChange,
  SecretCheck,
  TokenBinding,
  WalletInfo,
  WalletProtection,
} from './wallet.js';
export type { TokenAccess, Unlock } from './protection.js';
export type { CustodyFactor } from './keyring.js';
export { MIN_PASSPHRASE_LENGTH, passphraseSecret, rawSecret } from './secret.js';
export type { WalletSecret } from './secret.js';
export type { WalletItem, Tags } from './items.js';
export type { KeyInfo, KeyLocation } from './keys.js';
export { KEY_TYPES } from './keys.js';
export type { KdfTier, KeyAgreementKey, KeyType, MultibaseKey, PublicKeyForms, Signer } from '../crypto/index.js';
