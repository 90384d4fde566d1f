/**
 * The versions of a DID's document, for the explorer: every distinct document the DID had, and
 * the event that made each. A document is derived from the DID's state and its controlling
 * policy's (src/did/document.ts), so a policy event can make a new version too (granting PROVE
 * adds a key to every DID of the owner), and an event of either that leaves the document as it
 * was makes none.
 *
 * These are versions of the document, not the DID's `versionId`s of a DID URL, which count the
 * DID's own events only (docs/ledger.md, "Resolving did:dkms elsewhere").
 */
import { canonicalJson } from '../../src/crypto/index.js';
import { didDocument, type DidDocument } from '../../src/did/document.js';
import { badInput } from '../../src/errors.js';
import type { LogRecord, SubjectRecord } from '../../src/ledger/state.js';
import type { StateStep } from '../../src/ledger/verified-cache.js';

export interface DidVersion {
  /** 1 for the document the DID was created with, then 2, 3… */
  readonly version: number;
  readonly gseq: number;
  readonly time: string;
  /** The event that made this version: of the DID, or of its controlling policy. */
  readonly cause: { readonly subject: string; readonly type: string };
  readonly document: DidDocument;
}

/** Walks a subject's states forward, in log order: the state after the last step at or before a gseq. */
class Cursor {
  #next = 0;
  #state: SubjectRecord | undefined;

  constructor(readonly steps: readonly StateStep[]) {}

  at(gseq: number): SubjectRecord | undefined {
    for (let step = this.steps[this.#next]; step !== undefined && step.gseq <= gseq; step = this.steps[++this.#next]) this.#state = step.record;
    return this.#state;
  }
}

/**
 * Every distinct DID document `did` had: one per event of the DID or of its controlling policy
 * that changed the document, in log order (canonical JSON compared). Policy events before the
 * DID's creation make no version; records of other subjects in `history` are passed over. A DID
 * absent from `steps` has no versions.
 *
 * @param history verified log records (`VerifiedRead.history`), in log order.
 * @param steps the verified states of the DID and its policy after each of their events (`VerifiedRead.steps`).
 * @throws DkmsError `BAD_INPUT` when `steps` hold the DID but not its controlling policy's states, or
 *   `history` is not in log order.
 * @example
 *   const read = client.cache.get(did);
 *   const versions = read === undefined ? [] : didVersions(did, read.history, read.steps);
 *   const last = versions.at(-1)?.document;
 */
export function didVersions(did: string, history: readonly LogRecord[], steps: Readonly<Record<string, readonly StateStep[]>>): DidVersion[] {
  const didSteps = steps[did] ?? [];
  const first = didSteps[0]?.record;
  if (first === undefined) return [];
  if (first.kind !== 'did') throw badInput(`the states of ${did} are not a DID's`);
  const policySteps = steps[first.controller];
  if (policySteps === undefined) throw badInput(`the states of ${did} come without those of its controlling policy ${first.controller}`);
  const subjects = new Map<number, string>();
  for (const step of didSteps) subjects.set(step.gseq, did);
  for (const step of policySteps) subjects.set(step.gseq, first.controller);

  const didAt = new Cursor(didSteps);
  const policyAt = new Cursor(policySteps);
  const versions: DidVersion[] = [];
  let shown: string | undefined;
  let last = -1;
  for (const record of history) {
    if (record.gseq <= last) throw badInput(`history is not in log order: event ${record.gseq} after event ${last}`);
    last = record.gseq;
    const subject = subjects.get(record.gseq);
    const state = didAt.at(record.gseq);
    const policy = policyAt.at(record.gseq);
    if (subject === undefined || state === undefined) continue;
    if (state.kind !== 'did' || policy?.kind !== 'policy') throw badInput(`at event ${record.gseq}, ${did} has no DID state under a policy state`);
    const document = didDocument(state, policy);
    const text = canonicalJson(document);
    if (text === shown) continue;
    shown = text;
    versions.push({ version: versions.length + 1, gseq: record.gseq, time: record.time, cause: { subject, type: record.event.type }, document });
  }
  return versions;
}
