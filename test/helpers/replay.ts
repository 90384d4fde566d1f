/** What a ledger client holds once it has verified a read of some records: for tests of what is built from it. */
import type { LogRecord } from '../../src/ledger/state.js';
import { Replay } from '../../src/ledger/replay.js';
import type { StateStep } from '../../src/ledger/verified-cache.js';

/** The records replayed from inception, each subject's states after each of its events, as client.ts replayFrom keeps them. */
export async function verifiedRead(records: readonly LogRecord[]): Promise<{ history: readonly LogRecord[]; steps: Record<string, StateStep[]> }> {
  const replay = new Replay();
  const steps: Record<string, StateStep[]> = {};
  for (const record of records) {
    const accepted = await replay.apply(record);
    (steps[accepted.subject] ??= []).push({ gseq: record.gseq, time: record.time, record: accepted.record });
  }
  return { history: records, steps };
}
