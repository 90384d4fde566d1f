/**
 * Event validation: schema, then structure (seq, prev, existence), then signatures, then
 * authority against the subject's current state. Validation only reads; a rejected event
 * changes nothing and throws a DkmsError with a specific code.
 */
import { decodePublicKey, ed25519Verify, fromBase64url } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { applyPolicyChange, checkDidAuthority } from '../policy/authority.js';
import { eventId, isInception, policyChangeOf, prepareEvent, type EventId, type LedgerEvent, type PreparedEvent, type Subject } from './events.js';
import type { DidRecord, LedgerView, PolicyRecord, Stamp, SubjectRecord } from './state.js';

export interface Accepted {
  readonly event: LedgerEvent;
  readonly id: EventId;
  readonly subject: Subject;
  /** Canonical JSON of the event. */
  readonly canonical: string;
  /** The subject's record after the event. */
  readonly record: SubjectRecord;
}

/**
 * Checks every signature over the event's signing bytes and returns the set of keys that
 * signed. `verified`, when given, holds each signature's result computed elsewhere (a worker).
 */
export function verifySignatures(event: LedgerEvent, bytes: Uint8Array, verified?: readonly boolean[]): Set<string> {
  const signers = new Set<string>();
  for (const [i, { kid, sig }] of event.sigs.entries()) {
    if (signers.has(kid)) throw new DkmsError('EVENT_MALFORMED', `sigs: ${kid} signs twice`);
    const valid = verified === undefined ? ed25519Verify(decodePublicKey(kid, 'ed25519').publicKey, bytes, fromBase64url(sig)) : verified[i] === true;
    if (!valid) {
      throw new DkmsError('EVENT_BAD_SIGNATURE', `the signature by ${kid} does not verify`);
    }
    signers.add(kid);
  }
  return signers;
}

async function checkStructure(event: LedgerEvent, id: EventId, subject: Subject, current: SubjectRecord | undefined, view: LedgerView): Promise<void> {
  if (isInception(event)) {
    if (current !== undefined) throw new DkmsError('EVENT_REPLAY', `${subject} already exists: this event was accepted before`);
    return;
  }
  if (current === undefined) throw new DkmsError('SUBJECT_NOT_FOUND', `no subject ${subject}`);
  if (current.kind === 'did' && current.deactivated) throw new DkmsError('SUBJECT_DEACTIVATED', `${subject} is deactivated for good`);
  if (event.seq <= current.seq) {
    const stored = await view.eventAt(subject, event.seq);
    if (stored !== undefined && eventId(stored) === id) throw new DkmsError('EVENT_REPLAY', `${subject} seq ${event.seq}: this event was accepted before`);
    if (stored !== undefined && stored.prev === event.prev) {
      throw new DkmsError('EVENT_FORK', `${subject} seq ${event.seq} already holds another event: this would fork the chain`);
    }
    throw new DkmsError('EVENT_STALE_SEQ', `${subject} is at seq ${current.seq}; seq ${event.seq} is stale`);
  }
  if (event.seq > current.seq + 1) throw new DkmsError('EVENT_SEQ_GAP', `${subject} is at seq ${current.seq}; the next event must have seq ${current.seq + 1}`);
  if (event.prev !== current.head) throw new DkmsError('EVENT_BAD_PREV', `prev must be ${current.head}, the id of ${subject}'s latest event`);
}

async function controllingPolicy(view: LedgerView, address: Subject): Promise<PolicyRecord> {
  const record = await view.subject(address);
  if (record === undefined || record.kind !== 'policy') throw new DkmsError('POLICY_NOT_FOUND', `no policy ${address}`);
  return record;
}

function nextRecord(event: LedgerEvent, id: EventId, subject: Subject, current: SubjectRecord | undefined, stamp: Stamp) {
  return { seq: event.seq, head: id, created: current?.created ?? stamp, updated: stamp };
}

/**
 * Validates one untrusted event against the view at ledger position `stamp` and returns what
 * the ledger would record. Throws a coded DkmsError for anything it refuses. A caller that
 * has parsed the event and checked its signatures already passes them in.
 */
export async function validateEvent(
  raw: unknown,
  view: LedgerView,
  stamp: Stamp,
  ready?: { prepared: PreparedEvent; verified?: readonly boolean[] },
): Promise<Accepted> {
  const prepared = ready?.prepared ?? prepareEvent(raw);
  const { event, id, subject, canonical } = prepared;
  const current = await view.subject(subject);
  await checkStructure(event, id, subject, current, view);
  const signers = verifySignatures(event, prepared.signingBytes, ready?.verified);
  const base = nextRecord(event, id, subject, current, stamp);

  const change = policyChangeOf(event);
  if (change !== undefined) {
    const policy = applyPolicyChange(current?.kind === 'policy' ? current.policy : undefined, change, signers, stamp.time);
    return { event, id, subject, canonical, record: { ...base, kind: 'policy', subject: subject as PolicyRecord['subject'], policy } };
  }
  // checkStructure has shown that a non-inception DID event's subject is an existing DID.
  const did = current as DidRecord | undefined;
  const policy = await controllingPolicy(view, event.type === 'did.create' ? (event.policy as Subject) : (did as DidRecord).controller);
  checkDidAuthority(policy.policy, signers, event.type);
  const services = event.type === 'did.create' || event.type === 'did.update' ? event.services : (did?.services ?? []);
  return {
    event,
    id,
    subject,
    canonical,
    record: {
      ...base,
      kind: 'did',
      subject: subject as DidRecord['subject'],
      controller: policy.subject,
      services,
      deactivated: event.type === 'did.deactivate',
    },
  };
}
