export * from './wallet.js';
export * from './secret.js';
export type { WalletItem, Tags } from './items.js';
export type { KeyHandle, KeyInfo } from './keys.js';
export { KEY_TYPES } from './keys.js';
export { openUnattendedWallet } from './unattended.js';
