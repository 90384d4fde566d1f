/**
 * The cryptographic core as the browser build sees it (the dashboard's build swaps
 * crypto/index.ts for this module): the platform-free modules, over crypto/web/platform.ts.
 * Only what verifying ledger answers needs: no keys are made, and nothing is signed or sealed.
 */
export * from '../bytes.js';
export * from '../encoding.js';
export * from '../canonical.js';
export * from '../ed25519-verify.js';
export { sha256, settle, isCryptoPending, prefetch } from './platform.js';
