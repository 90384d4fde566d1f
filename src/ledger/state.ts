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

/**
 * A view that reads each record from `base` at most once, and can read ahead: a networked store
 * (etcd) answers the reads a whole batch needs in one round trip instead of one per event.
 */
export class ReadAheadView implements LedgerView {
  readonly #base: LedgerView;
  readonly #subjects = new Map<Subject, Promise<SubjectRecord | undefined>>();

  constructor(base: LedgerView) {
    this.#base = base;
  }

  subject(subject: Subject): Promise<SubjectRecord | undefined> {
    let found = this.#subjects.get(subject);
    if (found === undefined) {
      found = this.#base.subject(subject);
      this.#subjects.set(subject, found);
    }
    return found;
  }

  eventAt(subject: Subject, seq: number): Promise<LedgerEvent | undefined> {
    return this.#base.eventAt(subject, seq);
  }

  /** Starts reading the records of `subjects` and, for DIDs, of their controlling policies. */
  async readAhead(subjects: Iterable<Subject>): Promise<void> {
    const records = await Promise.all([...new Set(subjects)].map((s) => this.subject(s).catch(() => undefined)));
    const controllers = records.flatMap((r) => (r?.kind === 'did' ? [r.controller as Subject] : []));
    await Promise.all(controllers.map((s) => this.subject(s).catch(() => undefined)));
  }
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
