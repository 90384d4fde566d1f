/**
 * Faults of a real three-member etcd cluster under sustained concurrent writes: several ledger
 * nodes (each LedgerNode with its own EtcdLogStore client, on one prefix) take events from
 * many owners at once, each owner making policy.grant / policy.revoke events in sequence,
 * round-robin across the nodes; every acknowledged receipt is recorded. The faults:
 *   1. a follower is SIGKILLed (writes continue), then restarted;
 *   2. the leader is SIGKILLed (writes stall while a new leader is elected, then continue),
 *      then restarted;
 *   3. every member in turn is SIGKILLed and restarted while writing;
 *   4. a ledger node process (etcd-node-child.mjs, on the compiled node in dist/) is SIGKILLed
 *      at a random moment while it submits, a few times, while the in-process nodes write on.
 * After each fault, with every member running again:
 *   - every acknowledged event (of every node, and of the killed children) is in the log
 *     exactly once, by id, at the gseq its receipt gave, as the subject and seq it was sent as;
 *   - nothing is half-applied: a fresh LedgerNode.open over the store rebuilds the same root and
 *     verify() finds no problem (leaves, chains, signatures, records), each subject's index lists
 *     exactly its events in the log, and the raw keys hold nothing beyond the log's size;
 *   - every event in the log was submitted by a writer, and what is there unacknowledged is a
 *     killed child's event in flight, or an event whose submitter was refused with a code that
 *     allows it to be there: LEDGER_STORE_UNAVAILABLE (outcome unknown);
 *   - all nodes reach the same size and root after refresh(); no (subject, seq) appears twice.
 * The write stall of each kill (the longest gap between consecutive acknowledgements from just
 * before the kill until writes have clearly resumed) is reported with annotate, never asserted.
 *
 * Kill delays of the children come from a seeded generator: set DKMS_ETCD_FAULT_SEED to replay.
 */
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DkmsError } from '../../src/errors.js';
import { nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { EtcdLogStore } from '../../src/ledger/etcd-store.js';
import { eventId, subjectOf, type LedgerEvent, type PolicyAddress, type Subject } from '../../src/ledger/events.js';
import { LedgerNode } from '../../src/ledger/node.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { seededDelays } from '../helpers/seeded.js';
import { DistGuard } from '../helpers/dist-guard.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { killLiveChildren, runChild, type ChildRun } from '../helpers/kill-child.js';
import { commitment, nodeSigner, testKey } from '../helpers/ledger.js';
import { waitFor } from '../helpers/wait.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'etcd-node-child.mjs');

/** Owners writing at once (each has one event in flight). */
const OWNERS = 12;
/** Owners in each killed child. */
const CHILD_OWNERS = 6;
/** Children killed in the node-kill test. */
const CHILD_TRIALS = 4;
const MIN_KILL_DELAY_MS = 200;
const MAX_KILL_DELAY_MS = 1_200;
/** Acknowledgements that show writes go on (before a kill, after a restart). */
const PROGRESS = 40;
/** Acknowledgements taken while a member is down. */
const PROGRESS_DOWN = 120;
/**
 * How long writes may take to show progress before the test fails: a liveness bound (so long
 * without the acknowledgements awaited means writes never resumed), above the stores' 10 s
 * append budget and far above any stall; never a timing check.
 */
const LIVENESS_MS = 15_000;

/**
 * Refusals after which the event may still be in the log: LEDGER_STORE_UNAVAILABLE, the store
 * gave up on a batch whose outcome it did not know. An event refused with any other code (an
 * EVENT_REPLAY for a batch the store itself wrote, say) must not be in the log.
 */
const REFUSED_MAY_BE_LOGGED = new Set(['LEDGER_STORE_UNAVAILABLE']);

const { seed: SEED, between: delayBetween } = seededDelays('DKMS_ETCD_FAULT_SEED');

const guard = new DistGuard(['ledger', 'crypto', 'policy']);

let cluster: EtcdCluster;
beforeAll(async () => {
  guard.start();
  cluster = await startEtcdCluster();
}, 60_000);
afterAll(async () => {
  killLiveChildren();
  await cluster?.stop();
}, 30_000);

// The cluster.

const alive = (i: number): boolean => {
  const child = cluster.members[i]?.process;
  return child !== undefined && child.exitCode === null && child.signalCode === null;
};

/** Waits until member `i` answers a linearizable read itself: it has rejoined the cluster and knows its leader. */
async function serving(i: number, what: string): Promise<void> {
  let failure: unknown;
  const reads = async (): Promise<boolean> => {
    const client = new Etcd3({
      hosts: cluster.endpoints[i] ?? '',
      dialTimeout: 500,
      defaultCallOptions: () => ({ deadline: Date.now() + 500 }),
      faultHandling: { global: noop, host: () => noop },
    });
    try {
      await client.get('probe').string();
      return true;
    } catch (e) {
      failure = e;
      return false;
    } finally {
      client.close();
    }
  };
  try {
    await waitFor(`${what}: member m${i} serving reads after its restart`, reads, { timeoutMs: LIVENESS_MS, intervalMs: 50 });
  } catch (e) {
    const last = failure instanceof Error ? `: ${failure.message}` : '';
    throw new Error(`${what}: member m${i} does not serve reads ${LIVENESS_MS} ms after its restart${last}`, { cause: e });
  }
}

/** The current leader, once there is one (other than `not`). */
async function leaderOtherThan(not: number, what: string): Promise<number> {
  const found = await waitFor(
    `${what}: a leader${not >= 0 ? ` other than m${not}` : ''}`,
    async () => {
      const leader = await cluster.leader();
      return leader >= 0 && leader !== not && { leader };
    },
    { timeoutMs: LIVENESS_MS, intervalMs: 50 },
  );
  return found.leader;
}

/** Restarts every member a failed test left dead, and waits until all serve. */
async function restoreCluster(): Promise<void> {
  for (const i of [0, 1, 2]) if (!alive(i)) await cluster.restart(i);
  for (const i of [0, 1, 2]) await serving(i, 'restoring the cluster');
}

// The write load.

interface Ack {
  readonly id: string;
  readonly subject: string;
  readonly seq: number;
  readonly gseq: number;
  /** performance.now() when the receipt arrived. */
  readonly at: number;
}

interface Refusal {
  readonly id: string;
  readonly code: string;
}

/** Owners submitting events in sequence, round-robin across the nodes, until stopped. */
class Load {
  readonly acks: Ack[] = [];
  readonly refusals: Refusal[] = [];
  /** Every event submitted, by id. */
  readonly submitted = new Map<string, { readonly subject: string; readonly seq: number }>();
  /** Reads of a policy record that failed (the loop then tries again). */
  readFailures = 0;
  readonly #nodes: readonly LedgerNode[];
  readonly #owners: number;
  #stopped = false;
  #loops: Promise<void>[] = [];
  #failure: unknown;

  constructor(nodes: readonly LedgerNode[], owners: number) {
    this.#nodes = nodes;
    this.#owners = owners;
  }

  start(): void {
    this.#loops = Array.from({ length: this.#owners }, (_, i) => this.#owner(i));
  }

  /** Stops submitting and waits until every submission is settled. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
    await Promise.all(this.#nodes.map((n) => n.drain()));
    if (this.#failure !== undefined) throw this.#failure;
  }

  acksAfter(time: number): number {
    let n = 0;
    for (let i = this.acks.length - 1; i >= 0 && (this.acks[i]?.at ?? 0) > time; i--) n++;
    return n;
  }

  /** Waits for `count` acknowledgements after `time`; fails if writes make no such progress (a liveness bound). */
  async progress(count: number, time: number, what: string): Promise<number> {
    const failed = () => this.#failure;
    try {
      await waitFor(
        `${what}: ${count} acknowledgements`,
        () => {
          if (failed() !== undefined) throw failed();
          return this.acksAfter(time) >= count;
        },
        { timeoutMs: LIVENESS_MS, intervalMs: 10 },
      );
    } catch (e) {
      if (e === failed()) throw e;
      throw new Error(
        `${what}: writes did not go on: ${this.acksAfter(time)} of ${count} acknowledgements in ${LIVENESS_MS} ms; refusals ${JSON.stringify(codes(this.refusals))}`,
        { cause: e },
      );
    }
    return performance.now();
  }

  async #owner(i: number): Promise<void> {
    const admin = testKey();
    const agents = [testKey(), testKey()] as const;
    const create = signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([testKey()])), [admin]);
    const policy = subjectOf(create) as PolicyAddress;
    for (let k = 0; !this.#stopped && this.#failure === undefined; k++) {
      const node = this.#nodes[(i + k) % this.#nodes.length] as LedgerNode;
      let event: LedgerEvent;
      try {
        const record = await node.subject(policy);
        if (record === undefined) event = create;
        else {
          if (record.kind !== 'policy') throw new Error(`${policy} is not a policy`);
          // Grant and revoke two agents in turn: the policy record stays small however long the load runs.
          const agent = agents[k % 2] as (typeof agents)[number];
          event = record.policy.agents.some((a) => a.key === agent.multikey)
            ? signEvent(nextEvent('policy.revoke', policy, record, { key: agent.multikey }), [admin])
            : signEvent(nextEvent('policy.grant', policy, record, { agent: agent.agent(FLAGS.PROVE) }), [admin]);
        }
      } catch (e) {
        if (!(e instanceof DkmsError)) this.#failure = e;
        this.readFailures++;
        // The owner's pause before it reads again (its retry policy, part of the load): not a wait for a condition.
        await sleep(10);
        continue;
      }
      await this.#submit(node, event);
    }
  }

  async #submit(node: LedgerNode, event: LedgerEvent): Promise<void> {
    const id = eventId(event);
    this.submitted.set(id, { subject: subjectOf(event), seq: event.seq });
    try {
      const receipt = await node.submit(event);
      this.acks.push({ id: receipt.id, subject: receipt.subject, seq: receipt.seq, gseq: receipt.gseq, at: performance.now() });
      if (receipt.id !== id) this.#failure = new Error(`the receipt ${JSON.stringify(receipt)} is not for event ${id}`);
    } catch (e) {
      if (!(e instanceof DkmsError)) this.#failure = e;
      this.refusals.push({ id, code: e instanceof DkmsError ? e.code : String(e) });
      // The owner's pause before its next event (its retry policy, part of the load): not a wait for a condition.
      await sleep(10);
    }
  }
}

function codes(refusals: Iterable<{ readonly code: string }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { code } of refusals) out[code] = (out[code] ?? 0) + 1;
  return out;
}

/** The longest gap between consecutive acknowledgements from the last one before `from` until `to`. */
function stall(acks: readonly Ack[], from: number, to: number): { gap: number; start: number } {
  let best = { gap: 0, start: 0 };
  for (let i = 1; i < acks.length; i++) {
    const before = acks[i - 1]?.at ?? 0;
    const after = acks[i]?.at ?? 0;
    if (after < from || before > to) continue;
    if (after - before > best.gap) best = { gap: after - before, start: before - from };
  }
  return best;
}

/** The longest gap between consecutive acknowledgements both within [from, to]. */
function longestGapWithin(acks: readonly Ack[], from: number, to: number): number {
  let gap = 0;
  for (let i = 1; i < acks.length; i++) {
    const before = acks[i - 1]?.at ?? 0;
    const after = acks[i]?.at ?? 0;
    if (before >= from && after <= to) gap = Math.max(gap, after - before);
  }
  return gap;
}

const ms = (n: number) => `${Math.round(n)} ms`;

/** The stall of a kill at `killedAt` (writes clearly going on again at `resumedAt`), and for comparison the longest gap in as long a stretch before it. */
function describeStall(acks: readonly Ack[], killedAt: number, resumedAt: number): string {
  const s = stall(acks, killedAt, resumedAt);
  const baseline = longestGapWithin(acks, killedAt - (resumedAt - killedAt), killedAt);
  return `${ms(s.gap)} (from ${ms(Math.abs(s.start))} ${s.start < 0 ? 'before' : 'after'} the kill; longest gap in as long before it ${ms(baseline)})`;
}

// The killed children's reports.

interface ChildLog {
  /** Every event a child announced, by id. */
  readonly subs: Map<string, { readonly subject: string; readonly seq: number }>;
  readonly acks: Map<string, number>;
  readonly refused: Map<string, string>;
  /** Events a child had in flight when it was killed (neither acknowledged nor refused). */
  readonly inFlight: Set<string>;
}

const SUB = /^sub (\S+) (\S+) (\d+)$/;
const ACK = /^ack (\S+) (\d+)$/;
const REJ = /^rej (\S+) (\S+)$/;

/** Adds what a killed child said to `log`, checking that it is well formed. */
function readChild(run: ChildRun, log: ChildLog, where: string): number {
  const output = `${where}: exit ${String(run.code)} signal ${String(run.signal)}; stderr: ${run.stderr.trim() || '(none)'}${guard.changedNote()}`;
  expect(run.signal, `the child should die by our SIGKILL (${output})`).toBe('SIGKILL');
  expect(run.lines[0], `the child should have said ready (${output})`).toBe('ready');
  // A kill between a line's bytes leaves a prefix of a line; such a line says nothing.
  expect(run.partial, `${where}: a partial line should only be a prefix of a report`).toSatisfy((p: string) =>
    ['sub ', 'ack ', 'rej '].some((w) => w.startsWith(p) || p.startsWith(w)),
  );
  /** Per subject, the event in flight. */
  const open = new Map<string, string>();
  for (const line of run.lines.slice(1)) {
    let m: RegExpExecArray | null;
    if ((m = SUB.exec(line)) !== null) {
      const [, id = '', subject = '', seq = ''] = m;
      if (open.has(subject)) expect.fail(`${where}: ${subject} submitted ${id} with ${open.get(subject) ?? ''} still in flight`);
      open.set(subject, id);
      log.subs.set(id, { subject, seq: Number(seq) });
    } else if ((m = ACK.exec(line)) !== null || (m = REJ.exec(line)) !== null) {
      const [, id = '', value = ''] = m;
      const subject = log.subs.get(id)?.subject ?? '';
      if (open.get(subject) !== id) expect.fail(`${where}: ${line} does not answer an event in flight`);
      open.delete(subject);
      if (line.startsWith('ack ')) log.acks.set(id, Number(value));
      else log.refused.set(id, value);
    } else {
      expect.fail(`${where}: unexpected child output ${JSON.stringify(line)} (${output})`);
    }
  }
  for (const id of open.values()) log.inFlight.add(id);
  return open.size;
}

// The checks after a fault.

interface Audit {
  readonly size: number;
  /** Events in the log whose submitter was refused, by code. */
  readonly refusedInLog: Record<string, number>;
  /** Killed children's events in the log, in flight at the kill. */
  readonly inFlightInLog: number;
  /** Appends (one stored head each). */
  readonly batches: number;
}

/** Every key under `prefix` whose name starts with `part`. */
async function rawKeys(prefix: string, part: string): Promise<string[]> {
  const client = new Etcd3({ hosts: [...cluster.endpoints], defaultCallOptions: () => ({ deadline: Date.now() + 5_000 }) });
  try {
    return await client.namespace(prefix).getAll().prefix(part).keys();
  } finally {
    client.close();
  }
}

async function checkLog(prefix: string, nodes: readonly LedgerNode[], load: Load, where: string, child?: ChildLog): Promise<Audit> {
  // All nodes converge on one log.
  const heads = await Promise.all(nodes.map((n) => n.refresh()));
  const size = heads[0]?.size ?? -1;
  expect(
    heads.map((h) => h.size),
    `${where}: sizes after refresh()`,
  ).toEqual(heads.map(() => size));
  expect(new Set(heads.map((h) => h.root)).size, `${where}: roots after refresh()`).toBe(1);

  const store = new EtcdLogStore({ endpoints: cluster.endpoints, prefix });
  let fresh: LedgerNode | undefined;
  try {
    // A fresh node rebuilds the same root from the stored leaves, and audits the whole log.
    fresh = await LedgerNode.open(store, nodeSigner());
    expect(fresh.size, `${where}: size of a fresh node`).toBe(size);
    expect(fresh.head().root, `${where}: root of a fresh node`).toBe(heads[0]?.root);
    expect(await fresh.verify(), `${where}: verify() of a fresh node`).toEqual({ events: size, problems: [] });

    const log = await store.range(0, size);
    expect(
      log.map((r) => r.gseq),
      `${where}: the log is contiguous`,
    ).toEqual([...Array(size).keys()]);
    const problems: string[] = [];
    const byId = new Map<string, number[]>();
    const bySubject = new Map<string, { gseq: number; id: string; seq: number }[]>();
    for (const record of log) {
      const id = eventId(record.event);
      byId.set(id, [...(byId.get(id) ?? []), record.gseq]);
      const subject = subjectOf(record.event);
      bySubject.set(subject, [...(bySubject.get(subject) ?? []), { gseq: record.gseq, id, seq: record.event.seq }]);
    }
    for (const [id, gseqs] of byId) if (gseqs.length > 1) problems.push(`${id} is in the log ${gseqs.length} times (gseqs ${gseqs.join(', ')})`);

    // No (subject, seq) twice; each subject's index lists exactly its events in the log, and its record ends its chain.
    for (const [subject, events] of bySubject) {
      const seqs = events.map((e) => e.seq);
      if (new Set(seqs).size !== seqs.length) problems.push(`${subject}: seqs ${seqs.join(', ')} (one appears twice)`);
      const indexed = await store.subjectLog(subject as Subject);
      if (indexed.map((r) => r.gseq).join() !== events.map((e) => e.gseq).join()) {
        problems.push(`${subject}: its index lists gseqs ${indexed.map((r) => r.gseq).join(', ')}, the log holds ${events.map((e) => e.gseq).join(', ')}`);
      }
      const record = await store.subject(subject as Subject);
      const last = events.at(-1);
      if (record?.seq !== last?.seq || record?.head !== last?.id)
        problems.push(`${subject}: its record is at seq ${String(record?.seq)}, its chain at ${String(last?.seq)}`);
    }

    // Every acknowledged event is there once, where and as its receipt said.
    const acked = new Map<string, { gseq: number; subject?: string; seq?: number }>();
    for (const ack of load.acks) {
      if (acked.has(ack.id)) problems.push(`${ack.id} was acknowledged twice`);
      acked.set(ack.id, ack);
    }
    for (const [id, gseq] of child?.acks ?? []) {
      if (acked.has(id)) problems.push(`${id} was acknowledged twice`);
      acked.set(id, { gseq });
    }
    const ackedGseqs = [...acked.values()].map((a) => a.gseq);
    if (new Set(ackedGseqs).size !== ackedGseqs.length) problems.push('two acknowledgements name the same gseq');
    for (const [id, ack] of acked) {
      const gseqs = byId.get(id) ?? [];
      if (gseqs.length !== 1 || gseqs[0] !== ack.gseq) {
        problems.push(`acknowledged ${id} at gseq ${ack.gseq}: the log holds it at [${gseqs.join(', ')}]`);
        continue;
      }
      const event = log[ack.gseq]?.event;
      if (ack.subject !== undefined && event !== undefined && (subjectOf(event) !== ack.subject || event.seq !== ack.seq)) {
        problems.push(`gseq ${ack.gseq}: acknowledged as ${ack.subject} seq ${String(ack.seq)}, the log holds ${subjectOf(event)} seq ${event.seq}`);
      }
    }

    // What is there unacknowledged was submitted, and its submitter was refused or killed.
    const refusedCode = new Map(load.refusals.map((r) => [r.id, r.code]));
    const refusedInLog: Refusal[] = [];
    let inFlightInLog = 0;
    for (const [id, [gseq]] of byId) {
      if (acked.has(id)) continue;
      const mine = load.submitted.get(id);
      const theirs = child?.subs.get(id);
      const code = refusedCode.get(id) ?? child?.refused.get(id);
      if (mine === undefined && theirs === undefined) problems.push(`gseq ${String(gseq)}: ${id} is in the log, but no writer submitted it`);
      else if (code !== undefined) {
        refusedInLog.push({ id, code });
        if (!REFUSED_MAY_BE_LOGGED.has(code)) problems.push(`gseq ${String(gseq)}: ${id} was refused with ${code}, yet it is in the log`);
      } else if (child?.inFlight.has(id) === true) inFlightInLog++;
      else problems.push(`gseq ${String(gseq)}: ${id} is in the log, but its submission was neither acknowledged nor refused`);
    }

    // Nothing beyond the log: no event, leaf, index entry or head past its size.
    const [logKeys, leafKeys, subjKeys, headKeys] = await Promise.all(['log/', 'leaf/', 'subj/', 'head/'].map((part) => rawKeys(prefix, part)));
    expect({ log: logKeys?.length, leaf: leafKeys?.length, subj: subjKeys?.length }, `${where}: keys per kind`).toEqual({ log: size, leaf: size, subj: size });
    expect(Math.max(...(headKeys ?? []).map((k) => Number(k.slice('head/'.length)))), `${where}: the largest stored head`).toBe(size);
    expect(await store.size(), `${where}: the stored size`).toBe(size);

    expect(problems, `${where}: the log after the fault`).toEqual([]);
    return { size, refusedInLog: codes(refusedInLog), inFlightInLog, batches: headKeys?.length ?? 0 };
  } finally {
    if (fresh !== undefined) await fresh.close();
    else await store.close();
  }
}

// Nodes over one fresh prefix.

let prefixes = 0;

/** `count` in-process nodes over a fresh prefix and a load over them; all closed (and the cluster whole) when the test ends. */
async function setup(count: number, where: () => string): Promise<{ prefix: string; nodes: LedgerNode[]; load: Load }> {
  const prefix = `faults-${process.pid}-${++prefixes}/`;
  const nodes: LedgerNode[] = [];
  const load = new Load(nodes, OWNERS);
  onTestFinished(async () => {
    // One hook, in order: stop writing, close every node (and its store), then restart whatever a failure left dead.
    try {
      await load.stop().catch(() => undefined);
      await Promise.allSettled(nodes.map((node) => node.close()));
    } finally {
      await restoreCluster();
    }
  });
  for (let i = 0; i < count; i++) {
    const store = new EtcdLogStore({ endpoints: cluster.endpoints, prefix });
    try {
      nodes.push(await LedgerNode.open(store, nodeSigner()));
    } catch (e) {
      await store.close();
      throw new Error(`${where()}: opening node ${i} failed`, { cause: e });
    }
  }
  return { prefix, nodes, load };
}

function summary(audit: Audit, load: Load): string {
  return (
    `${load.acks.length} events acknowledged in process, ${audit.size} in the log in ${audit.batches} appends; ` +
    `refusals ${JSON.stringify(codes(load.refusals))}, of which in the log ${JSON.stringify(audit.refusedInLog)}; ${load.readFailures} record reads failed`
  );
}

describe('ledger nodes on etcd under member and node faults, with sustained concurrent writes', () => {
  it('keeps every acknowledged event when a follower is killed, and after it is restarted', async ({ annotate }) => {
    const where = () => `seed ${SEED}, follower kill`;
    const { prefix, nodes, load } = await setup(3, where);
    load.start();
    await load.progress(PROGRESS, 0, `${where()}: before the kill`);
    const leader = await leaderOtherThan(-1, where());
    const follower = (leader + 1) % 3;

    const killedAt = performance.now();
    await cluster.kill(follower);
    const resumedAt = await load.progress(PROGRESS_DOWN, killedAt, `${where()}: m${follower} down`);
    await cluster.restart(follower);
    await serving(follower, where());
    await load.progress(PROGRESS, performance.now(), `${where()}: m${follower} back`);
    await load.stop();

    const audit = await checkLog(prefix, nodes, load, where());
    await annotate(`follower kill (m${follower}, leader m${leader}): stall ${describeStall(load.acks, killedAt, resumedAt)}; ${summary(audit, load)}`);
  }, 25_000);

  it('keeps every acknowledged event when the leader is killed (writes stall, then continue), and after it is restarted', async ({ annotate }) => {
    const where = () => `seed ${SEED}, leader kill`;
    const { prefix, nodes, load } = await setup(3, where);
    load.start();
    await load.progress(PROGRESS, 0, `${where()}: before the kill`);
    const leader = await leaderOtherThan(-1, where());

    const killedAt = performance.now();
    await cluster.kill(leader);
    const resumedAt = await load.progress(PROGRESS_DOWN, killedAt, `${where()}: leader m${leader} down`);
    const next = await leaderOtherThan(leader, where());
    await cluster.restart(leader);
    await serving(leader, where());
    await load.progress(PROGRESS, performance.now(), `${where()}: m${leader} back`);
    await load.stop();

    const audit = await checkLog(prefix, nodes, load, where());
    await annotate(`leader kill (m${leader}, then m${next} led): stall ${describeStall(load.acks, killedAt, resumedAt)}; ${summary(audit, load)}`);
  }, 25_000);

  it('keeps every acknowledged event while each member in turn is killed and restarted', async ({ annotate }) => {
    const where = () => `seed ${SEED}, rolling restart`;
    const { prefix, nodes, load } = await setup(3, where);
    load.start();
    await load.progress(PROGRESS, 0, `${where()}: before the first kill`);
    const stalls: string[] = [];
    for (const i of [0, 1, 2]) {
      const leader = await leaderOtherThan(-1, where());
      const killedAt = performance.now();
      await cluster.kill(i);
      const resumedAt = await load.progress(PROGRESS_DOWN, killedAt, `${where()}: m${i} down`);
      await cluster.restart(i);
      // The next member goes down only once this one serves again: the cluster keeps its quorum.
      await serving(i, where());
      await load.progress(PROGRESS, performance.now(), `${where()}: m${i} back`);
      stalls.push(`m${i}${i === leader ? ' (leader)' : ''} ${describeStall(load.acks, killedAt, resumedAt)}`);
    }
    await load.stop();

    const audit = await checkLog(prefix, nodes, load, where());
    await annotate(`rolling restart, stall per kill: ${stalls.join('; ')}; ${summary(audit, load)}`);
  }, 35_000);

  it(`keeps every acknowledged event when a ledger node process is SIGKILLed while it writes (${CHILD_TRIALS} kills)`, async ({ annotate }) => {
    let trial = -1;
    let delay = 0;
    const where = () => `seed ${SEED}, node kill, trial ${trial}, kill ${delay} ms after ready`;
    const { prefix, nodes, load } = await setup(2, where);
    load.start();
    await load.progress(PROGRESS, 0, `${where()}: before the first child`);
    const child: ChildLog = { subs: new Map(), acks: new Map(), refused: new Map(), inFlight: new Set() };
    const stalls: string[] = [];
    const acked: number[] = [];
    let killsInFlight = 0;
    for (trial = 0; trial < CHILD_TRIALS; trial++) {
      delay = delayBetween(MIN_KILL_DELAY_MS, MAX_KILL_DELAY_MS);
      const acksBefore = child.acks.size;
      const run = await runChild(CHILD, { endpoints: cluster.endpoints, prefix, owners: CHILD_OWNERS }, delay);
      // The child is dead and its pipes drained: the kill was a moment ago.
      const killedAt = performance.now();
      if (readChild(run, child, where()) > 0) killsInFlight++;
      acked.push(child.acks.size - acksBefore);
      const resumedAt = await load.progress(PROGRESS, killedAt, `${where()}: after the kill`);
      stalls.push(ms(stall(load.acks, killedAt, resumedAt).gap));
    }
    await load.stop();
    expect(child.acks.size, `seed ${SEED}: the children acknowledged nothing`).toBeGreaterThan(0);

    const audit = await checkLog(prefix, nodes, load, where(), child);
    await annotate(
      `node kills (seed ${SEED}): longest gap between in-process acknowledgements after each kill ${stalls.join(', ')}; ` +
        `children acknowledged ${acked.join(', ')} events, had events in flight at ${killsInFlight} of ${CHILD_TRIALS} kills, ` +
        `${audit.inFlightInLog} of those in the log unacknowledged (committed mid-batch); ${summary(audit, load)}`,
    );
  }, 30_000);
});
