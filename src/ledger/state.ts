/**
 * Ledger state: one record per subject, a pure function of the log. Records are plain JSON so
 * that a reindex can be compared with the live state byte for byte.
 */
import type { PolicyRules } from '../policy/types.js';
import type { Did, EventId, LedgerEvent, PolicyAddress, Service, Subject } from './events.js';

/** Where and when the ledger accepted an event: its global sequence number and ledger time. */
export interface Stamp {
  readonly gseq: number;
  readonly time: string;
}

interface RecordBase {
  readonly seq: number;
  /** Id of the subject's latest event. */
  readonly head: EventId;
  readonly created: Stamp;
  readonly updated: Stamp;
}

export interface PolicyRecord extends RecordBase {
  readonly kind: 'policy';
  readonly subject: PolicyAddress;
  readonly policy: PolicyRules;
}

export interface DidRecord extends RecordBase {
  readonly kind: 'did';
  readonly subject: Did;
  /** The policy whose agents control this DID, fixed at creation. */
  readonly controller: PolicyAddress;
  readonly services: readonly Service[];
  readonly deactivated: boolean;
}

export type SubjectRecord = PolicyRecord | DidRecord;

/** One accepted event as the log holds it: the Merkle leaf is its canonical JSON. */
export interface LogRecord {
  readonly gseq: number;
  readonly time: string;
  readonly event: LedgerEvent;
}

/** What validation reads: the current records, and past events for replay and fork checks. */
export interface LedgerView {
  subject(subject: Subject): Promise<SubjectRecord | undefined>;
  eventAt(subject: Subject, seq: number): Promise<LedgerEvent | undefined>;
}

/** A view over `base` that also sees the records accepted earlier in the same batch. */
export class OverlayView implements LedgerView {
  readonly #base: LedgerView;
  readonly #records = new Map<Subject, SubjectRecord>();
  readonly #events = new Map<string, LedgerEvent>();

  constructor(base: LedgerView) {
    this.#base = base;
  }

  async subject(subject: Subject): Promise<SubjectRecord | undefined> {
    return this.#records.get(subject) ?? this.#base.subject(subject);
  }

  async eventAt(subject: Subject, seq: number): Promise<LedgerEvent | undefined> {
    return this.#events.get(`${subject}#${seq}`) ?? this.#base.eventAt(subject, seq);
  }

  put(record: SubjectRecord, event: LedgerEvent): void {
    this.#records.set(record.subject, record);
    this.#events.set(`${record.subject}#${record.seq}`, event);
  }

  /** The records changed in this batch, in the order they last changed. */
  changed(): SubjectRecord[] {
    return [...this.#records.values()];
  }
}
