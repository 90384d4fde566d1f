/**
 * The ledger's storage backend. Domain code sees only `LogStore`; the embedded SQLite store is
 * the default, and other backends (etcd) implement the same interface.
 */
import type { EventId, Subject } from './events.js';
import type { SignedTreeHead } from './head.js';
import type { MapWrite, StoredMapNode } from './map.js';
import type { MerkleNode } from './merkle.js';
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
  /** Merkle nodes above the leaves that the batch completes (a store with `derived` keeps them). */
  readonly tree: readonly MerkleNode[];
  /** The subject map's changed nodes (a store with `derived` keeps them). */
  readonly map: readonly MapWrite[];
}

/** What the last stored head says, as far as a store can tell (heads of older formats have no `map`). */
export interface StoredHead {
  readonly size: number;
  readonly root: string;
  readonly map?: string;
}

/**
 * Data derived from the log that proofs read, kept by a backend that can serve it synchronously
 * (the embedded store): then a node opens in constant time instead of rehashing the log. Written
 * with each append, in the same transaction.
 */
export interface DerivedStore {
  /** How many events of the log the derived data covers. */
  derivedSize(): number;
  /** Merkle node (level, index): level 0 is the leaf hash of event `index`. */
  treeNode(level: number, index: number): Uint8Array | undefined;
  mapNode(path: Uint8Array): StoredMapNode | undefined;
  /** Runs `read` (treeNode and mapNode calls) as one read transaction: a proof's dozens of point reads then start one, not one each. */
  reading<T>(read: () => T): T;
  /** Stores derived data for the events up to `size` in one transaction (catching up after an upgrade). */
  writeDerived(tree: readonly MerkleNode[], map: readonly MapWrite[], size: number): void;
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
  /**
   * Events of one subject, in order: those with global sequence number below `untilGseq` and,
   * when `afterSeq` is given, with seq above it.
   */
  subjectLog(subject: Subject, untilGseq?: number, afterSeq?: number): Promise<LogRecord[]>;
  latestHead(): Promise<StoredHead | undefined>;
  /** Every stored head (one per append), in order of size, for audits. */
  heads(): Promise<StoredHead[]>;
  /** Present when the backend keeps the derived data itself. */
  readonly derived?: DerivedStore;
  /**
   * Appends a batch durably and atomically: after a crash it is all there or not at all. The
   * batch's first event must have the log's current size as its global sequence number; if
   * another writer appended first, nothing is written and LEDGER_CONFLICT is thrown.
   */
  append(batch: AppendBatch): Promise<void>;
  /**
   * Like `append`, but resolves as soon as the batch is written (later reads and appends see
   * it), with `durable` resolving once it is on disk. A node validates and writes the next batch
   * while the disk syncs this one (group commit that does not block on the sync); it answers
   * submitters and serves the new head only once `durable` resolved. Optional: a store without it
   * is durable when `append` resolves.
   */
  appendWritten?(batch: AppendBatch): Promise<{ readonly durable: Promise<void> }>;
  /** Every subject record, for audits. */
  subjects(): Promise<SubjectRecord[]>;
  /** Replaces every subject record (reindex) in one transaction. */
  replaceSubjects(records: readonly SubjectRecord[]): Promise<void>;
  close(): Promise<void>;
}
