/**
 * The encrypted wallet (`dkms/wallet`): items and keys in one SQLite file, under a key derived
 * from a passphrase (Argon2id) or a raw 32-byte key. Private keys never leave it: a
 * {@link Wallet} signs and agrees with them by name, and hands out only public keys and
 * {@link KeyHandle}s.
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
export * from './wallet.js';
export * from './secret.js';
export type { WalletItem, Tags } from './items.js';
export type { KeyHandle, KeyInfo } from './keys.js';
export { KEY_TYPES } from './keys.js';
export { openUnattendedWallet } from './unattended.js';
export type { KdfTier, KeyType, MultibaseKey } from '../crypto/index.js';
