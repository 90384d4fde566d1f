/** The cryptographic core: everything above it imports from here. */
export * from './bytes.js';
export * from './hash.js';
export * from './encoding.js';
export * from './canonical.js';
export * from './ed25519.js';
export * from './x25519.js';
export * from './aead.js';
export * from './argon2id.js';
export * from './jwa.js';
export * from './key-handle.js';
export * from './shamir.js';
export { settle, isCryptoPending, prefetch } from './platform.js';
