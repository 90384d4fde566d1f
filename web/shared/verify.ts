/**
 * Everything the dashboard verifies with, in one module: the ledger client the CLI uses (built
 * for the browser, with WebCrypto underneath), the head and cosignature checks, and the browser
 * self-test. Tests build this module alone and run it in Node.
 */
export { LedgerClient, type ResolvedDidRecord, type ResolvedPolicy, type VerifiedHistory } from '../../src/ledger/client.js';
export { verifyCosignature, bareHead, type ServedHead, type SignedTreeHead } from '../../src/ledger/head.js';
export { DkmsError } from '../../src/errors.js';
export { settle } from '../../src/crypto/index.js';
export { checkWebCrypto, type SelfTest } from './self-test.js';
