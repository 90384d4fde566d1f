/**
 * The ledger's storage backend. Domain code sees only `LogStore`; the embedded SQLite store is
 * the default, and other backends (etcd) implement the same interface.
 */
import type { EventId, Subject } from './events.js';
import type { SignedTreeHead } from './head.js';
import type { LedgerView, LogRecord, SubjectRecord } from './state.js';

/** One accepted event with what the store indexes it by. */
export interface StoredEvent {
  readonly record: LogRecord;
  readonly id: EventId;
  readonly subject: Subject;
  /** Canonical JSON of the event. */
  readonly canonical: string;
  /** RFC 9162 leaf hash of the record. */
  readonly leaf: Uint8Array;
}

/** A group commit: events with consecutive global sequence numbers, the records they changed, the new head. */
export interface AppendBatch {
  readonly events: readonly StoredEvent[];
  readonly subjects: readonly SubjectRecord[];
  readonly head: SignedTreeHead;
}

export interface LogStore extends LedgerView {
  /** The most events one append may carry, if the backend bounds it. */
  readonly maxBatch?: number;
  /** Number of events in the log (the next global sequence number). */
  size(): Promise<number>;
  /** Leaf hashes of events [from, to), to rebuild the Merkle tree at start-up. */
  leaves(from: number, to: number): Promise<Uint8Array[]>;
  /** Events [from, to) in log order. */
  range(from: number, to: number): Promise<LogRecord[]>;
  /** Every event of one subject, in order, up to global sequence number `untilGseq` (exclusive). */
  subjectLog(subject: Subject, untilGseq?: number): Promise<LogRecord[]>;
  latestHead(): Promise<SignedTreeHead | undefined>;
  /**
   * Appends a batch durably and atomically: after a crash it is all there or not at all. The
   * batch's first event must have the log's current size as its global sequence number; if
   * another writer appended first, nothing is written and LEDGER_CONFLICT is thrown.
   */
  append(batch: AppendBatch): Promise<void>;
  /** Every subject record, for audits. */
  subjects(): Promise<SubjectRecord[]>;
  /** Replaces every subject record (reindex) in one transaction. */
  replaceSubjects(records: readonly SubjectRecord[]): Promise<void>;
  close(): Promise<void>;
}
