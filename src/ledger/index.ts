/**
 * The ledger as a library (`dkms/ledger`): a verifying client, the builders that make and sign
 * events, the event and record types, the policy shapes those events carry, and the node itself
 * for whoever runs one in process.
 *
 * Every read through {@link LedgerClient} is verified before it returns: a signed, fresh tree
 * head consistent with the last one seen, map proofs that nothing was withheld, Merkle inclusion
 * of every event, and the whole chain replayed from inception. To serve a node over HTTP, use
 * `startLedger` from the package root (`dkms`).
 *
 * @example
 * ```ts
 * import { LedgerClient, policyCreate, signEvent, recoveryKeyDigest, ALL_FLAGS } from 'dkms/ledger';
 *
 * const ledger = new LedgerClient({ url, trustedKeys: [nodeKey] });
 * const event = signEvent(policyCreate([{ key, kx, flags: ALL_FLAGS }], { digests: [recoveryKeyDigest(recoveryKey)], threshold: 1 }), [signer]);
 * const { subject } = await ledger.submit(event); // policy:…
 * const { record } = await ledger.resolvePolicy(subject as PolicyAddress);
 * ```
 * @module dkms/ledger
 */

// The verifying client, what it returns, and how it reaches a node.
export { LedgerClient } from './client.js';
export type { AsOf, LedgerClientOptions, ResolvedDidRecord, ResolvedPolicy, VerifiedHistory, VerifiedLogPage } from './client.js';
export { VerifiedCache } from './verified-cache.js';
export type { StateStep, VerifiedRead } from './verified-cache.js';
export type { MapEntry } from './map.js';
export { fetchTransport, httpTransport } from './transport.js';
export type { LedgerTransport, TransportAnswer, TransportRequest } from './transport.js';
export type { Cosignature, ServedHead, SignedTreeHead, TreeHead } from './head.js';

// Making events: build, sign, co-sign.
export { addSignatures, didCreate, nextEvent, policyCreate, signEvent } from './build.js';
export type { Signer } from '../crypto/index.js';

// Events, subjects and the records the ledger keeps for them.
export { DID_PREFIX, LedgerEvent, MAX_EVENT_BYTES, POLICY_PREFIX, eventId, isDid, parseEvent, subjectOf } from './events.js';
export type { Did, EventId, PolicyAddress, Service, Subject, UnsignedEvent } from './events.js';
export type { DidRecord, LogRecord, PolicyRecord, Stamp, SubjectRecord } from './state.js';

// What a policy says: agents, flags, rules, the recovery commitment; and checking a signature against it.
export { ALL_FLAGS, FLAGS, flagNames, hasFlag, parseFlags } from '../policy/flags.js';
export type { FlagName } from '../policy/flags.js';
export { DEFAULT_RULES } from '../policy/types.js';
export type { Agent, PendingRecovery, PolicyChange, PolicyRules, RecoveryCommitment, Rules } from '../policy/types.js';
export { recoveryKeyDigest } from '../policy/authority.js';
export { verifyAgentSignature } from '../policy/verify.js';
export type { AgentSignature, AgentSignatureResult, PolicyHistory, VerifyFailure } from '../policy/verify.js';

// A node in this process: its log in an embedded SQLite file, its key in a wallet of its own.
export { LedgerNode } from './node.js';
export type { NodeOptions, Receipt, SubmitResult } from './node.js';
export { SqliteLogStore } from './sqlite-store.js';
export type { LogStore } from './store.js';
export { openNodeIdentity } from './node-key.js';
export type { NodeIdentity } from './node-key.js';
