/**
 * dkms, decentralized key management, as a library: the things most programs use, in one
 * import. Each part has its own entry point with the rest of its API:
 *
 * | Entry point | What it gives |
 * | --- | --- |
 * | `dkms` | this: wallet, ledger client, DID resolution, edge agent, errors, and starting a ledger node or an agency in this process |
 * | `dkms/wallet` | the encrypted wallet: items, keys, profiles, export and import |
 * | `dkms/ledger` | the verifying ledger client, event builders, event and record types, policy shapes, the node |
 * | `dkms/didcomm` | DIDComm v2 envelopes: anoncrypt, authcrypt, signed messages, forwards |
 * | `dkms/agent` | edge agents: provisioning, pairing, connections, revocation, receiving |
 * | `dkms/agency` | the agency client and request signing |
 * | `dkms/resolver` | a did:dkms method for the `did-resolver` package |
 *
 * Every failure a caller can act on is a {@link DkmsError} with a stable `code`.
 *
 * @example
 * ```ts
 * import { LedgerClient, resolveDid, startLedger } from 'dkms';
 *
 * const node = await startLedger(dataDir, { port: 0 });
 * const ledger = new LedgerClient({ url: node.url, trustedKeys: [node.node.key] });
 * const { didDocument } = await resolveDid(ledger, did); // verified against the ledger's proofs
 * ```
 * @module dkms
 */

// Errors: one class, a stable code each.
export { DkmsError, ERROR_CODES, isDkmsError } from './errors.js';
export type { ErrorCode } from './errors.js';

// The wallet.
export { Wallet, passphraseSecret, rawSecret } from './wallet/index.js';
export type { KeyAgreementKey, KeyInfo, PublicKeyForms, Signer, WalletSecret } from './wallet/index.js';

// The ledger, read verified, and DIDs resolved from it.
export { LedgerClient } from './ledger/client.js';
export type { LedgerClientOptions } from './ledger/client.js';
export type { Did, PolicyAddress } from './ledger/events.js';
export { resolveDid } from './did/resolve.js';
export type { DidRecordReader, ResolvedDid } from './did/resolve.js';
export type { DidDocument, DidDocumentMetadata, VerificationMethod } from './did/document.js';

// Edge agents.
export { EdgeAgent } from './agent/edge-agent.js';
export type { AgentWallet } from './agent/edge-agent.js';

// Running a ledger node or an agency in this process, on a local address.
export { DEFAULT_LEDGER_PORT, startLedger } from './server/ledger-service.js';
export type { LedgerServiceOptions, RunningLedger } from './server/ledger-service.js';
export { DEFAULT_AGENCY_PORT, startAgency } from './server/agency-service.js';
export type { AgencyServiceOptions, RunningAgency } from './server/agency-service.js';
