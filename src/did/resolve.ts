/**
 * Resolving a did:dkms DID to its DID document: the ledger client verifies the DID's chain and
 * its controlling policy's (LedgerClient.resolveDidRecord), and the document is built here from
 * that verified state (document.ts). The ledger knows nothing of DID documents.
 */
import type { Did } from '../ledger/events.js';
import type { AsOf, LedgerClient, ResolvedDidRecord } from '../ledger/client.js';
import { didDocument, didDocumentMetadata, type DidDocument, type DidDocumentMetadata } from './document.js';

export interface ResolvedDid extends ResolvedDidRecord {
  readonly didDocument: DidDocument;
  readonly didDocumentMetadata: DidDocumentMetadata;
}

/** What resolution needs of a ledger client. */
export type DidRecordReader = Pick<LedgerClient, 'resolveDidRecord'>;

/** Documents already built, by the verified DID record and policy record they were built from (the client shares frozen records between its reads). */
const built = new WeakMap<object, WeakMap<object, Documents>>();

interface Documents {
  readonly didDocument: DidDocument;
  readonly didDocumentMetadata: DidDocumentMetadata;
}

function frozen<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) frozen(inner);
  }
  return value;
}

/** Resolves `did` through `ledger` (as of `at`/`time` when given), with its document and document metadata. */
export async function resolveDid(ledger: DidRecordReader, did: Did, options: AsOf = {}): Promise<ResolvedDid> {
  const resolved = await ledger.resolveDidRecord(did, options);
  let byPolicy = built.get(resolved.record);
  if (byPolicy === undefined) built.set(resolved.record, (byPolicy = new WeakMap()));
  let documents = byPolicy.get(resolved.policy);
  if (documents === undefined) {
    // Frozen: shared by every caller that resolves the same state.
    documents = frozen({ didDocument: didDocument(resolved.record, resolved.policy), didDocumentMetadata: didDocumentMetadata(resolved.record) });
    byPolicy.set(resolved.policy, documents);
  }
  return { ...resolved, ...documents };
}
