/**
 * Replaying events: state is a pure function of the log, so re-validating accepted events in
 * log order rebuilds it exactly. Used for reindex and audits, for reads "as of" a point in the
 * past, and by clients to check a chain from its inception.
 */
import { canonicalBytes, utf8 } from '../crypto/index.js';
import { leafHash } from './merkle.js';
import { OverlayView, type LedgerView, type LogRecord, type SubjectRecord } from './state.js';
import { validateEvent, type Accepted } from './validate.js';

const EMPTY: LedgerView = { subject: async () => undefined, eventAt: async () => undefined };

/** The RFC 9162 leaf hash of a log record: the hash of its canonical JSON. */
export function recordLeaf(record: LogRecord): Uint8Array {
  return leafHash(canonicalBytes({ gseq: record.gseq, time: record.time, event: record.event }));
}

/**
 * The same leaf hash from the event's canonical JSON, already computed, without canonicalizing
 * it again: in the record the key "event" sorts before "gseq" and "time".
 */
export function recordLeafFromCanonical(record: LogRecord, canonicalEvent: string): Uint8Array {
  return leafHash(utf8(`{"event":${canonicalEvent},"gseq":${record.gseq},"time":${JSON.stringify(record.time)}}`));
}

export class Replay {
  readonly view: OverlayView;

  constructor(base: LedgerView = EMPTY) {
    this.view = new OverlayView(base);
  }

  /** Re-validates one accepted record; throws the code the ledger would have refused it with. */
  async apply(record: LogRecord): Promise<Accepted> {
    const accepted = await validateEvent(record.event, this.view, { gseq: record.gseq, time: record.time });
    this.view.put(accepted.record, accepted.event);
    return accepted;
  }

  async applyAll(records: Iterable<LogRecord>): Promise<void> {
    for (const record of records) await this.apply(record);
  }

  records(): SubjectRecord[] {
    return this.view.changed();
  }
}
