/**
 * DID resolution of did:dkms (W3C DID Core section 7.1, DID Resolution): a DID URL in, a
 * resolution result out, built from what the ledger client verified and never from a node's
 * word. Resolution never throws; every failure is a result with `didResolutionMetadata.error`
 * and no document, its message starting with the dkms error code.
 *
 * Versions: a did:dkms DID's version is its latest event (`versionId` is that event's id, as in
 * did/document.ts). Its keys come from the controlling policy, which may change within a
 * version; `?versionId=X` resolves the last state of version X (just before the DID's next
 * event, or now), which is the document that was current while X was the latest, as a resolver
 * saw it when it was told `versionId: X`. `?versionTime=T` resolves the state after every event
 * accepted at or before T. Both are cut from the DID's full verified history, which also gives
 * the next version's id and time (`nextVersionId`, `nextUpdate`).
 */
import type { DIDDocument, DIDDocumentMetadata, DIDResolutionResult } from 'did-resolver';
import type { DidDocument } from '../did/document.js';
import { resolveDid, type DidRecordReader, type ResolvedDid } from '../did/resolve.js';
import { DkmsError, type ErrorCode } from '../errors.js';
import { eventId } from '../ledger/events.js';
import type { LogRecord } from '../ledger/state.js';
import { parseDkmsDidUrl, type DkmsDidUrl } from './did-url.js';

/** The errors a did:dkms resolution result can carry in `didResolutionMetadata.error`. */
export type DkmsResolutionError = 'invalidDid' | 'invalidDidUrl' | 'notFound' | 'representationNotSupported' | 'verificationFailed' | 'internalError';

/** The representations of a DID document this resolver produces; the first is the default. */
export const DOCUMENT_MEDIA_TYPES = ['application/did+ld+json', 'application/did+json', 'application/did'] as const;
export type DocumentMediaType = (typeof DOCUMENT_MEDIA_TYPES)[number];

export interface DkmsResolutionOptions {
  /** The representation wanted (one of DOCUMENT_MEDIA_TYPES; default application/did+ld+json). */
  readonly accept?: string;
}

/** Codes the client raises when a node's answer does not verify: the answer is refused, whatever it said. */
const UNVERIFIED = new Set<ErrorCode>([
  'LEDGER_BAD_RESPONSE',
  'LEDGER_BAD_HEAD',
  'LEDGER_INCONSISTENT',
  'LEDGER_BAD_PROOF',
  'LEDGER_BAD_CHAIN',
  'LEDGER_INCOMPLETE',
  'LEDGER_STALE',
  'LEDGER_BAD_MAP_PROOF',
  'LEDGER_UNWITNESSED',
]);

/** A result without a document. */
export function resolutionFailure(error: DkmsResolutionError, message: string): DIDResolutionResult {
  return { didResolutionMetadata: { error, message }, didDocument: null, didDocumentMetadata: {} };
}

/** The failure a dkms error stands for; its message starts with the code. */
function failureOf(e: unknown): DIDResolutionResult {
  if (!(e instanceof DkmsError)) return resolutionFailure('internalError', `INTERNAL: ${e instanceof Error ? e.message : String(e)}`);
  const message = `${e.code}: ${e.message}`;
  if (e.code === 'SUBJECT_NOT_FOUND') return resolutionFailure('notFound', message);
  if (UNVERIFIED.has(e.code))
    return resolutionFailure('verificationFailed', `${e.code}: the ledger node's answer does not verify, so nothing of it is used: ${e.message}`);
  return resolutionFailure('internalError', message);
}

/** A mutable copy (did-resolver's types; callers may change what they get without touching the shared frozen one). */
function w3cDocument(doc: DidDocument): DIDDocument {
  return {
    '@context': [...doc['@context']],
    id: doc.id,
    controller: doc.controller,
    verificationMethod: doc.verificationMethod.map((m) => ({ ...m })),
    authentication: [...doc.authentication],
    assertionMethod: [...doc.assertionMethod],
    keyAgreement: [...doc.keyAgreement],
    service: doc.service.map((s) => ({ ...s })),
  };
}

/** The DID's own events (a DID read also holds its policy's), in log order. */
const didEvents = (history: readonly LogRecord[]): LogRecord[] => history.filter((r) => r.event.type.startsWith('did.'));

/** Where the version asked for ends: before global sequence number `at` (the head's size: now). */
function versionEnd(url: DkmsDidUrl, current: ResolvedDid): number {
  const own = didEvents(current.history);
  const { size } = current.head;
  if (url.versionId !== undefined) {
    const i = own.findIndex((r) => eventId(r.event) === url.versionId);
    if (i < 0) throw new DkmsError('SUBJECT_NOT_FOUND', `${url.did} has no version ${url.versionId} (not one of its events)`);
    return own[i + 1]?.gseq ?? size;
  }
  const time = Date.parse(url.versionTime ?? '');
  const at = current.history.find((r) => Date.parse(r.time) > time)?.gseq ?? size;
  if (at <= (own[0]?.gseq ?? -1)) throw new DkmsError('SUBJECT_NOT_FOUND', `${url.did} did not exist yet at ${url.versionTime ?? ''}`);
  return at;
}

function success(resolved: ResolvedDid, contentType: DocumentMediaType, next: LogRecord | undefined): DIDResolutionResult {
  const metadata: DIDDocumentMetadata = { ...resolved.didDocumentMetadata };
  if (next !== undefined) {
    metadata.nextVersionId = eventId(next.event);
    metadata.nextUpdate = next.time;
  }
  return { didResolutionMetadata: { contentType }, didDocument: w3cDocument(resolved.didDocument), didDocumentMetadata: metadata };
}

async function resolveVersion(ledger: DidRecordReader, url: DkmsDidUrl, contentType: DocumentMediaType): Promise<DIDResolutionResult> {
  const current = await resolveDid(ledger, url.did);
  if (url.versionId === undefined && url.versionTime === undefined) return success(current, contentType, undefined);
  const at = versionEnd(url, current);
  // Cut at the first read's head at the latest: what came after it is not in the history the next version is taken from.
  const resolved = at >= current.head.size ? current : await resolveDid(ledger, url.did, { at });
  return success(
    resolved,
    contentType,
    didEvents(current.history).find((r) => r.gseq >= at),
  );
}

/**
 * Resolves a did:dkms DID URL through `ledger` (a LedgerClient, which verifies every answer).
 * Never throws: failures are results with `didResolutionMetadata.error` (DkmsResolutionError)
 * and `message`, and `didDocument: null`.
 *
 * @example await resolveDkmsDidUrl(client, 'did:dkms:4Hx…?versionTime=2026-01-01T00:00:00Z')
 */
export async function resolveDkmsDidUrl(ledger: DidRecordReader, didUrl: string, options: DkmsResolutionOptions = {}): Promise<DIDResolutionResult> {
  const parsed = parseDkmsDidUrl(didUrl);
  if (!parsed.ok) return resolutionFailure(parsed.error, `BAD_INPUT: ${parsed.message}`);
  const accept = options.accept ?? DOCUMENT_MEDIA_TYPES[0];
  const contentType = DOCUMENT_MEDIA_TYPES.find((t) => t === accept);
  if (contentType === undefined)
    return resolutionFailure('representationNotSupported', `BAD_INPUT: a did:dkms document is served as ${DOCUMENT_MEDIA_TYPES.join(', ')}, not ${accept}`);
  try {
    return await resolveVersion(ledger, parsed.url, contentType);
  } catch (e) {
    return failureOf(e);
  }
}
