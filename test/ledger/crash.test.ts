/**
 * Crash trials for the ledger node: a child process (crash-child.mjs, on the compiled node in
 * dist/) runs a real node on a data directory under concurrent write load (several owners,
 * each with a policy chain and a DID chain in flight at once, so every group commit holds
 * events of many subjects) and is SIGKILLed at a random moment. Trials alternate between
 * submitting in process (LedgerNode.submit) and over HTTP (POST /v1/events on startLedger).
 *
 * After every kill the parent reopens the data directory in process (src/) and checks that
 * - every event ever acknowledged is in the log at its acknowledged gseq, with the same id,
 *   subject, seq and time; the log is contiguous, and its time never goes backwards;
 * - the log before this trial is unchanged (a Merkle consistency proof from the head verified
 *   after the previous trial), and the head after reopening is the last stored one, signed by
 *   the node's key, over a root the parent recomputes from the events themselves;
 * - every event beyond the acknowledged ones is the one event its chain had in flight (each
 *   chain has at most one), complete and valid; refused events never appear; with in-process
 *   submission, the unacknowledged events are a suffix of the last committed batch;
 * - every stored tree head of this trial (one per batch) is signed and matches the tree at its size;
 * - `verify()` finds no problem and `reindex(false)` no difference.
 * One data directory is reused across the trials, so later kills land in larger stores and
 * every child continues chains from whatever state the previous kill left.
 *
 * The random delays come from a seeded generator; set DKMS_CRASH_SEED to replay a run. Every
 * failure message carries the seed, the trial, the mode and the delay.
 */
import { createHash } from 'node:crypto';
import { memorySigner, type Signer } from '../../src/crypto/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519PublicKey, fromBase64url, sha256, toBase64url } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { nextEvent, signEvent } from '../../src/ledger/build.js';
import { eventId, subjectOf, type Did } from '../../src/ledger/events.js';
import { verifyHeadSignature, type SignedTreeHead } from '../../src/ledger/head.js';
import { MemoryMerkle, rootAt, verifyConsistency, verifyInclusion } from '../../src/ledger/merkle.js';
import { MAP_EMPTY } from '../../src/ledger/map.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { recordLeaf } from '../../src/ledger/replay.js';
import type { LogRecord } from '../../src/ledger/state.js';
import { ledgerDir, openLedgerNode } from '../../src/server/ledger-service.js';
import { seededDelays } from '../helpers/seeded.js';
import { DistGuard } from '../helpers/dist-guard.js';
import { crashTimeout, crashTrials, killLiveChildren, runChild as runChildScript, type ChildRun } from '../helpers/kill-child.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, 'crash-child.mjs');

/** Trials alternate: even ones submit in process, odd ones over HTTP. */
const TRIALS = crashTrials(16);
/** Each owner runs two chains (policy, DID) at once: 16 events in flight. */
const OWNERS = 8;
/** The random kill delay, counted from the child's "ready". */
const MIN_DELAY_MS = 50;
const MAX_DELAY_MS = 400;
/** A child that is not ready by then is stuck; the trial fails rather than hangs. */

type Mode = 'direct' | 'http';

const { seed: SEED, between: delayBetween } = seededDelays('DKMS_CRASH_SEED');

/** The fixed keys the child signs with: crash-child.mjs derives the same. */
function fixedKey(owner: number, role: string): Signer {
  const privateKey = new Uint8Array(createHash('sha256').update(`dkms-ledger-crash/${SEED}/${owner}/${role}`).digest());
  return memorySigner(privateKey, ed25519PublicKey(privateKey));
}
const adminKeys = Array.from({ length: OWNERS }, (_, i) => fixedKey(i, 'admin').multikey);

// Running a child to its death.

const runChild = (config: object, delayMs: number): Promise<ChildRun> => runChildScript(CHILD, config, delayMs);

// What the child said.

interface Sub {
  readonly chain: string;
  readonly id: string;
  readonly subject: string;
  readonly seq: number;
}

interface Ack extends Sub {
  readonly gseq: number;
  readonly time: string;
}

interface Report {
  /** Per chain, the events it announced, in order; only the last may lack an ack. */
  readonly subs: Map<string, Sub[]>;
  readonly acks: Ack[];
  /** Ids of events the node refused, as it had to. */
  readonly refused: string[];
}

const CHAIN = '[pd]\\d+';
const SUB_LINE = new RegExp(`^sub (${CHAIN}) (\\S+) (\\S+) (\\d+)$`);
const ACK_LINE = new RegExp(`^ack (${CHAIN}) (\\d+) (\\S+) (\\S+) (\\d+) (\\S+)$`);
const REJ_LINE = new RegExp(`^rej (${CHAIN}) (\\S+) (\\S+)$`);

/** Parses the output of a child killed after "ready", checking that it is well formed. */
function reportOf(run: ChildRun, where: string): Report {
  const output = `${where}: exit ${String(run.code)} signal ${String(run.signal)}; stderr: ${run.stderr.trim() || '(none)'}${codeChangedNote()}`;
  expect(run.signal, `the child should die by our SIGKILL (${output})`).toBe('SIGKILL');
  expect(run.lines[0], `the child should have said ready (${output})`).toBe('ready');
  // A kill between a line's bytes would leave a prefix of a line; such a line says nothing.
  expect(run.partial, `a partial line should only be a prefix of a report (${output})`).toSatisfy((p: string) =>
    ['sub ', 'ack ', 'rej '].some((word) => word.startsWith(p) || p.startsWith(word)),
  );
  const subs = new Map<string, Sub[]>();
  const acked = new Set<string>();
  const acks: Ack[] = [];
  const refused: string[] = [];
  for (const line of run.lines.slice(1)) {
    let m: RegExpExecArray | null;
    if ((m = SUB_LINE.exec(line)) !== null) {
      const [, chain = '', id = '', subject = '', seq = ''] = m;
      const list = subs.get(chain) ?? [];
      const last = list.at(-1);
      if (last !== undefined && !acked.has(last.id)) expect.fail(`${where}: chain ${chain} submitted ${id} before ${last.id} was acknowledged`);
      list.push({ chain, id, subject, seq: Number(seq) });
      subs.set(chain, list);
    } else if ((m = ACK_LINE.exec(line)) !== null) {
      const [, chain = '', gseq = '', id = '', subject = '', seq = '', time = ''] = m;
      const last = subs.get(chain)?.at(-1);
      const ack: Ack = { chain, gseq: Number(gseq), id, subject, seq: Number(seq), time };
      if (last === undefined || last.id !== id || last.subject !== subject || last.seq !== ack.seq || acked.has(id)) {
        expect.fail(`${where}: ${line} does not acknowledge the event chain ${chain} has in flight`);
      }
      acked.add(id);
      acks.push(ack);
    } else if ((m = REJ_LINE.exec(line)) !== null) {
      refused.push(m[2] ?? '');
    } else {
      expect.fail(`${where}: unexpected child output ${JSON.stringify(line)} (${output})`);
    }
  }
  return { subs, acks, refused };
}

const guard = new DistGuard(['ledger', 'server', 'crypto', 'wallet', 'policy', 'did']);
const codeChangedNote = (): string => guard.changedNote();

// The checks after a kill.

/** What the trials so far have established, carried from one trial to the next. */
interface Ledger {
  readonly home: string;
  /** The node's key, fixed by its identity wallet on the first start. */
  key: string | undefined;
  /** Size and root of the log verified after the previous trial. */
  size: number;
  root: Uint8Array;
  /** The parent's own Merkle tree over the verified log, from leaves it hashed itself. */
  readonly tree: MemoryMerkle;
  /** Every event acknowledged in any trial, by gseq. */
  readonly acked: Map<number, Ack>;
  /** Each owner's subjects, once their inception events are in the log. */
  readonly owners: { policy?: string; did?: string }[];
}

interface Stats {
  trials: number;
  acks: number;
  /** Trials that left committed but unacknowledged events. */
  unackedTrials: number;
  /** ... of which some events of the same batch were acknowledged (a kill mid-batch). */
  midBatch: number;
  unackedEvents: number;
  maxUnacked: number;
  batches: number;
  refused: number;
}

const EMPTY_ROOT = sha256(new Uint8Array(0));

/** Opens the node over the data directory as `dkms ledger serve` does; a failure carries the trial's context. */
async function reopen(home: string, where: string): Promise<{ node: LedgerNode; closeIdentity: () => void }> {
  try {
    return await openLedgerNode(home);
  } catch (e) {
    const detail = e instanceof DkmsError ? `${e.code}: ${e.message}` : String(e);
    throw new Error(`${where}: reopening the node failed (${detail})${codeChangedNote()}`, { cause: e });
  }
}

/** The stored tree heads (one per committed batch), read once the node is closed. */
function storedHeads(home: string): SignedTreeHead[] {
  const db = new Database(join(ledgerDir(home), 'ledger.db'), { fileMustExist: true });
  try {
    return db
      .prepare<[], { head: string }>('SELECT head FROM heads ORDER BY size')
      .all()
      .map((row) => JSON.parse(row.head) as SignedTreeHead);
  } finally {
    db.close();
  }
}

async function checkAfterKill(ledger: Ledger, report: Report, mode: Mode, stats: Stats, where: string): Promise<void> {
  const { node, closeIdentity } = await reopen(ledger.home, where);
  const problems: string[] = [];
  let size: number;
  let root: Uint8Array;
  /** This trial's events in the log that were never acknowledged. */
  let unacked: LogRecord[];
  try {
    size = node.size;
    const head = node.head();
    root = fromBase64url(head.root);
    ledger.key ??= node.key;

    // The head: over the tree of the last one stored (signed afresh at opening), by the node's own key.
    expect(node.key, `${where}: the node's key changed`).toBe(ledger.key);
    // (With no batch stored yet, the empty tree.)
    const stored = (await node.store.latestHead()) ?? { size: 0, root: toBase64url(rootAt(0, ledger.tree.read)), map: toBase64url(MAP_EMPTY) };
    expect({ size: head.size, root: head.root, map: head.map }, `${where}: the node should serve the tree of the last stored head`).toEqual(stored);
    expect(head.size, `${where}: head size`).toBe(size);
    expect(head.key, `${where}: head key`).toBe(node.key);
    expect(verifyHeadSignature(head), `${where}: the head's signature`).toBe(true);

    // The log before this trial is unchanged, and nothing was lost.
    expect(size, `${where}: the log shrank`).toBeGreaterThanOrEqual(ledger.size);
    const consistency = node.consistencyProof(ledger.size, size).map((p) => fromBase64url(p));
    expect(
      verifyConsistency(ledger.size, size, consistency, ledger.size === 0 ? EMPTY_ROOT : ledger.root, root),
      `${where}: the log of ${ledger.size} events verified after the previous trial is not a prefix of the log now`,
    ).toBe(true);
    const all = await node.store.range(0, size);
    expect(all.length, `${where}: events in the log`).toBe(size);
    all.forEach((record, i) => {
      if (record.gseq !== i) problems.push(`gseq ${i}: the log holds gseq ${record.gseq} there (not contiguous)`);
      // Ledger time never goes backwards, across restarts too.
      const before = all[i - 1];
      if (before !== undefined && record.time < before.time) problems.push(`gseq ${i}: time ${record.time} is before ${before.time}`);
    });
    const fresh = all.slice(ledger.size);

    // The root the parent computes from the events themselves is the head's.
    for (const record of fresh) ledger.tree.append(recordLeaf(record));
    expect(ledger.tree.size, `${where}: the parent's tree`).toBe(size);
    expect(toBase64url(ledger.tree.root()), `${where}: the root of the events in the log is not the head's`).toBe(head.root);

    // Every event acknowledged, in this trial or any before, is there as acknowledged.
    for (const ack of report.acks) {
      if (ledger.acked.has(ack.gseq)) problems.push(`gseq ${ack.gseq} acknowledged twice (${ack.id})`);
      ledger.acked.set(ack.gseq, ack);
    }
    for (const [gseq, ack] of ledger.acked) {
      const record = all[gseq];
      if (record === undefined) {
        problems.push(`acknowledged event ${ack.id} (${ack.chain}) is missing: gseq ${gseq} is beyond the log's ${size} events`);
        continue;
      }
      const id = eventId(record.event);
      if (id !== ack.id || subjectOf(record.event) !== ack.subject || record.event.seq !== ack.seq || record.time !== ack.time) {
        problems.push(
          `gseq ${gseq}: acknowledged ${ack.id} (${ack.subject} seq ${ack.seq} at ${ack.time}), log holds ${id} (${subjectOf(record.event)} seq ${record.event.seq} at ${record.time})`,
        );
      }
    }
    for (const ack of report.acks) {
      const record = all[ack.gseq];
      if (record === undefined) continue;
      const proof = node.inclusionProof(ack.gseq, size).map((p) => fromBase64url(p));
      if (!verifyInclusion(recordLeaf(record), ack.gseq, size, proof, root)) problems.push(`gseq ${ack.gseq}: its inclusion proof does not verify`);
    }

    // Everything new is an event this child submitted; what was not acknowledged is the one
    // event its chain had in flight; refused events never landed.
    const submitted = new Map<string, { sub: Sub; last: boolean }>();
    for (const list of report.subs.values()) list.forEach((sub, i) => submitted.set(sub.id, { sub, last: i === list.length - 1 }));
    const ackedIds = new Set(report.acks.map((a) => a.id));
    const refused = new Set(report.refused);
    unacked = [];
    for (const record of fresh) {
      const id = eventId(record.event);
      const known = submitted.get(id);
      if (refused.has(id)) problems.push(`gseq ${record.gseq}: ${id} was refused, yet it is in the log`);
      if (known === undefined) {
        problems.push(`gseq ${record.gseq}: ${id} (${record.event.type}) is in the log, but the child never submitted it`);
        continue;
      }
      const owner = Number(known.sub.chain.slice(1));
      if (record.event.sigs.length !== 1 || record.event.sigs[0]?.kid !== adminKeys[owner])
        problems.push(`gseq ${record.gseq}: not signed by the admin of owner ${owner} alone`);
      if (!ackedIds.has(id)) {
        if (!known.last) problems.push(`gseq ${record.gseq}: unacknowledged ${id} is not the event chain ${known.sub.chain} had in flight`);
        unacked.push(record);
      }
      if (record.event.seq === 0) {
        const subject = subjectOf(record.event);
        const entry = ledger.owners[owner];
        if (entry !== undefined) {
          if (known.sub.chain.startsWith('p')) entry.policy = subject;
          else entry.did = subject;
        }
      }
    }
    expect(problems, `${where}: the log after the kill`).toEqual([]);

    // The node's own audit: chains, signatures, authority, leaves, root, head, and state.
    const audit = await node.verify();
    expect(audit, `${where}: verify()`).toEqual({ events: size, problems: [] });
    const reindex = await node.reindex(false);
    expect(reindex.events, `${where}: reindex events`).toBe(size);
    expect(reindex.differences, `${where}: reindex(false) differences`).toEqual([]);
  } finally {
    await node.close();
    closeIdentity();
  }

  // One stored head per batch; those of this trial are signed and match the tree at their size.
  const heads = storedHeads(ledger.home);
  const sizes = heads.map((h) => h.size);
  expect(sizes.at(-1) ?? 0, `${where}: the largest stored head`).toBe(size);
  const newHeads = heads.filter((h) => h.size > ledger.size);
  for (const h of newHeads) {
    if (!verifyHeadSignature(h) || h.key !== ledger.key) problems.push(`stored head of size ${h.size}: not signed by the node`);
    if (h.root !== toBase64url(rootAt(h.size, ledger.tree.read))) problems.push(`stored head of size ${h.size}: its root is not the tree's at that size`);
  }
  if (mode === 'direct' && unacked.length > 0) {
    // In process, batches are acknowledged in log order once the disk has them (the next batch
    // may be written while one syncs): what is unacknowledged is a suffix of the log.
    const first = size - unacked.length;
    if (unacked.some((r, i) => r.gseq !== first + i))
      problems.push(`unacknowledged events ${unacked.map((r) => r.gseq).join(', ')} are not the log's last ${unacked.length}`);
  }
  expect(problems, `${where}: the stored heads`).toEqual([]);

  stats.trials++;
  stats.acks += report.acks.length;
  stats.batches += newHeads.length;
  stats.refused += report.refused.length;
  if (unacked.length > 0) {
    stats.unackedTrials++;
    stats.unackedEvents += unacked.length;
    stats.maxUnacked = Math.max(stats.maxUnacked, unacked.length);
    // The batch that committed last starts where the head before it ends.
    const lastBatchStart = sizes.length >= 2 ? (sizes.at(-2) ?? 0) : 0;
    const lastBatchAcked = [...ledger.acked.keys()].some((g) => g >= lastBatchStart && g < size);
    if (lastBatchAcked && unacked.every((r) => r.gseq >= lastBatchStart)) stats.midBatch++;
  }
  ledger.size = size;
  ledger.root = root;
}

let home: string;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'dkms-ledger-crash-'));
  guard.start();
});

afterAll(() => {
  killLiveChildren();
  rmSync(home, { recursive: true, force: true });
});

describe('ledger crash trials', () => {
  it(
    `keeps every acknowledged event through ${TRIALS} SIGKILLs under concurrent write load`,
    async ({ annotate }) => {
      const ledger: Ledger = {
        home,
        key: undefined,
        size: 0,
        root: EMPTY_ROOT,
        tree: new MemoryMerkle(),
        acked: new Map(),
        owners: Array.from({ length: OWNERS }, () => ({})),
      };
      const stats: Stats = { trials: 0, acks: 0, unackedTrials: 0, midBatch: 0, unackedEvents: 0, maxUnacked: 0, batches: 0, refused: 0 };
      for (let t = 0; t < TRIALS; t++) {
        const mode: Mode = t % 2 === 0 ? 'direct' : 'http';
        const delay = delayBetween(MIN_DELAY_MS, MAX_DELAY_MS);
        const where = `seed ${SEED}, trial ${t} (${mode}), kill ${delay} ms after ready, log of ${ledger.size} events before`;
        const run = await runChild({ mode, home, seed: SEED, trial: t, owners: ledger.owners }, delay);
        await checkAfterKill(ledger, reportOf(run, where), mode, stats, where);
      }
      expect(stats.trials).toBe(TRIALS);
      expect(stats.acks, `seed ${SEED}: the children acknowledged nothing`).toBeGreaterThan(0);

      // The node takes writes after the last kill, continuing a chain the children left.
      const where = `seed ${SEED}, after the last trial`;
      const { node, closeIdentity } = await reopen(home, where);
      try {
        const did = ledger.owners.findIndex((o) => o.did !== undefined);
        const subject = ledger.owners[did]?.did as Did | undefined;
        const record = subject === undefined ? undefined : await node.subject(subject);
        if (subject === undefined || record === undefined) throw new Error(`${where}: no DID was created`);
        const admin = fixedKey(did, 'admin');
        const services = [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: 'https://agency.example/final' }];
        const receipt = await node.submit(signEvent(nextEvent('did.update', subject, record, { services }), [admin]));
        expect(receipt.gseq, `${where}: the next event's gseq`).toBe(ledger.size);
        expect(await node.verify(), `${where}: verify()`).toEqual({ events: ledger.size + 1, problems: [] });
      } finally {
        await node.close();
        closeIdentity();
      }

      await annotate(
        `seed ${SEED}: ${stats.trials} kills (${Math.ceil(TRIALS / 2)} in process, ${Math.floor(TRIALS / 2)} over HTTP), ` +
          `${stats.acks} events acknowledged, ${ledger.size} in the log, ${stats.batches} batches (${(ledger.size / Math.max(1, stats.batches)).toFixed(1)} events each), ` +
          `${stats.refused} invalid events refused; ${stats.unackedTrials} kills left committed but unacknowledged events ` +
          `(${stats.unackedEvents} events, at most ${stats.maxUnacked} at once; ${stats.midBatch} kills landed between the acknowledgements of one batch)`,
      );
    },
    crashTimeout(120_000),
  );
});
