/**
 * Crash trials for the agency: a child process (agency-crash-child.mjs, on the compiled agency
 * in dist/) runs the agency on a data directory and posts forward messages to its own inbound
 * endpoint from several concurrent senders, over loopback HTTP, until it is SIGKILLed at a
 * random moment. Each message is for one edge agent of the owner or for both (one copy per
 * agent, stored in one transaction).
 *
 * After every kill the parent restarts the agency in process (src/) on the same directory and,
 * as each edge agent, picks up its whole mailbox (acknowledging page by page, so the mailbox is
 * empty when the next child starts) and checks that
 * - every stored envelope decrypts with the agent's own key to a note the child posted in this
 *   trial, for this agent; none is there twice, none of an earlier trial comes back;
 * - every message the agency acknowledged (202) is there, once for each agent it is for;
 * - a message for both agents that was never acknowledged is stored for both or for neither;
 * - the cloud agent is the one registered before the first trial (same id and keys).
 * Unacknowledged messages may or may not have been stored; how many were is reported.
 *
 * The random delays come from a seeded generator; set DKMS_CRASH_SEED to replay the delays.
 * Every failure message carries the seed, the trial and the delay.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgencyClient, type CloudAgentDescription } from '../../src/agency/agency-client.js';
import { decrypt, parseMessage } from '../../src/didcomm/index.js';
import { DkmsError } from '../../src/errors.js';
import { policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { startAgency, type RunningAgency } from '../../src/server/agency-service.js';
import { seededDelays } from '../helpers/seeded.js';
import { DistGuard } from '../helpers/dist-guard.js';
import { crashTimeout, crashTrials, killLiveChildren, runChild as runChildScript, type ChildRun } from '../helpers/kill-child.js';
import { commitment, testKey } from '../helpers/ledger.js';
import { startLedger } from '../helpers/lying.js';
import { edgeAgent as memoryEdge, type Edge as BaseEdge } from '../helpers/edge.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, 'agency-crash-child.mjs');

const TRIALS = crashTrials(12);
/** Concurrent senders in the child, each with one message in flight at a time. */
const SENDERS = 4;
/** The random kill delay, counted from the child's "ready". */
const MIN_DELAY_MS = 50;
const MAX_DELAY_MS = 400;
/** The note type the child sends (agency-crash-child.mjs). */
const NOTE = 'https://example.org/test/1.0/crash-note';
/** The agency's largest pickup page (MAX_PICKUP). */
const PAGE = 500;

const { seed: SEED, between: delayBetween } = seededDelays('DKMS_CRASH_SEED');

// The owner's edge agents, whose private keys the test holds.

/** Which agents a message is for: agent a (the ADMIN), agent b (PROVE only), or both. */
type Target = 'a' | 'b' | 'ab';
type AgentName = 'a' | 'b';
const AGENT_NAMES: readonly AgentName[] = ['a', 'b'];

interface Edge extends BaseEdge {
  readonly name: AgentName;
}

function edgeAgent(name: AgentName): Edge {
  return { ...memoryEdge(), name };
}

// What the child said.

interface Report {
  /** Every message the child was about to post, by id, with whom it was for. */
  readonly subs: Map<string, Target>;
  /** The ids the agency answered 202 for. */
  readonly acked: Set<string>;
}

const SUB_LINE = /^sub (t\d+-s\d+-m\d+) (a|b|ab)$/;
const ACK_LINE = /^ack (t\d+-s\d+-m\d+) (\d+)$/;

const guard = new DistGuard(['.', 'agent', 'agency', 'didcomm', 'server', 'ledger', 'wallet', 'crypto', 'policy', 'did']);
const codeChangedNote = (): string => guard.changedNote();

/** Parses the output of a child killed after "ready", checking that it is well formed. */
function reportOf(run: ChildRun, where: string): Report {
  const output = `${where}: exit ${String(run.code)} signal ${String(run.signal)}; stderr: ${run.stderr.trim() || '(none)'}${codeChangedNote()}`;
  expect(run.signal, `the child should die by our SIGKILL (${output})`).toBe('SIGKILL');
  expect(run.lines[0], `the child should have said ready (${output})`).toBe('ready');
  // A kill between a line's bytes would leave a prefix of a line; such a line says nothing.
  expect(run.partial, `a partial line should only be a prefix of a report (${output})`).toSatisfy((p: string) =>
    ['sub ', 'ack '].some((word) => word.startsWith(p) || p.startsWith(word)),
  );
  const subs = new Map<string, Target>();
  const acked = new Set<string>();
  for (const line of run.lines.slice(1)) {
    let m: RegExpExecArray | null;
    if ((m = SUB_LINE.exec(line)) !== null) {
      const [, id = '', target = ''] = m;
      if (subs.has(id)) expect.fail(`${where}: ${id} was posted twice`);
      subs.set(id, target as Target);
    } else if ((m = ACK_LINE.exec(line)) !== null) {
      const [, id = '', copies = ''] = m;
      const target = subs.get(id);
      if (target === undefined || acked.has(id)) expect.fail(`${where}: ${line} acknowledges no message in flight`);
      if (Number(copies) !== target.length) expect.fail(`${where}: ${line}: a message for ${target} should be stored ${target.length} times`);
      acked.add(id);
    } else {
      expect.fail(`${where}: unexpected child output ${JSON.stringify(line)} (${output})`);
    }
  }
  return { subs, acked };
}

// The checks after a kill.

interface Setup {
  readonly home: string;
  readonly ledgerUrl: string;
  readonly trustedLedgerKeys: readonly string[];
  readonly agents: Record<AgentName, Edge>;
  readonly cloud: CloudAgentDescription;
}

interface Stats {
  trials: number;
  posted: number;
  acked: number;
  /** Posted but never acknowledged: in flight when the kill landed. */
  inFlight: number;
  trialsInFlight: number;
  /** Unacknowledged messages the agency had stored (the kill fell between commit and answer). */
  unackedStored: number;
  trialsUnackedStored: number;
  /** Copies picked up, decrypted and acknowledged by the edge agents. */
  copies: number;
}

/** Starts the agency in process on the trial's data directory (as `dkms agency serve` would). */
async function restart(setup: Pick<Setup, 'home' | 'ledgerUrl' | 'trustedLedgerKeys'>, where: string): Promise<RunningAgency> {
  try {
    return await startAgency(setup.home, {
      ledgerUrl: setup.ledgerUrl,
      trustedLedgerKeys: setup.trustedLedgerKeys,
      port: 0,
      rateLimitPerSecond: 1_000_000,
      agentRequestsPerSecond: 1_000_000,
    });
  } catch (e) {
    const detail = e instanceof DkmsError ? `${e.code}: ${e.message}` : String(e);
    throw new Error(`${where}: restarting the agency failed (${detail})${codeChangedNote()}`, { cause: e });
  }
}

/**
 * Picks up, decrypts and acknowledges the agent's whole mailbox; returns how many times each
 * note id was found. Problems (an envelope that does not open, a note that is not the child's)
 * are collected, not thrown, so that one failure shows them all.
 */
async function drain(running: RunningAgency, edge: Edge, problems: string[]): Promise<Map<string, number>> {
  const client = new AgencyClient(running.url, edge.signer);
  const found = new Map<string, number>();
  // Each page is acknowledged before the next is asked; a mailbox that does not shrink ends the loop.
  for (let page = 0; page < 10_000; page++) {
    const messages = await client.pickup(PAGE);
    if (messages.length === 0) return found;
    for (const message of messages) {
      let id: unknown;
      try {
        const note = parseMessage(decrypt(message.envelope, [edge.agreement]).plaintext);
        if (note.type !== NOTE) throw new Error(`a message of type ${note.type}`);
        id = note.body['id'];
      } catch (e) {
        problems.push(`agent ${edge.name}: stored message ${message.id} does not open (${e instanceof DkmsError ? e.code : String(e)})`);
        continue;
      }
      if (typeof id !== 'string') {
        problems.push(`agent ${edge.name}: stored message ${message.id} carries no note id`);
        continue;
      }
      found.set(id, (found.get(id) ?? 0) + 1);
    }
    const acknowledged = await client.ack(messages.map((m) => m.id));
    if (acknowledged !== messages.length) {
      problems.push(`agent ${edge.name}: acknowledging ${messages.length} picked-up messages removed ${acknowledged}`);
      return found;
    }
  }
  problems.push(`agent ${edge.name}: the mailbox never emptied`);
  return found;
}

async function checkAfterKill(setup: Setup, report: Report, stats: Stats, where: string): Promise<void> {
  const running = await restart(setup, where);
  const problems: string[] = [];
  const found: Record<AgentName, Map<string, number>> = { a: new Map(), b: new Map() };
  try {
    // The cloud agent (its store record and its keys in the agency's wallet) is the same one.
    const again = await new AgencyClient(running.url, setup.agents.a.signer).register(setup.cloud.policy);
    expect({ ...again, endpoint: '' }, `${where}: the cloud agent after the kill`).toEqual({ ...setup.cloud, endpoint: '' });
    for (const name of AGENT_NAMES) found[name] = await drain(running, setup.agents[name], problems);
  } finally {
    await running.close();
  }

  // Nothing but the child's notes of this trial, each for the agent that got it, at most once.
  for (const name of AGENT_NAMES) {
    for (const [id, count] of found[name]) {
      const target = report.subs.get(id);
      if (target === undefined) problems.push(`agent ${name}: ${id} is stored, but was never posted in this trial`);
      else if (!target.includes(name)) problems.push(`agent ${name}: ${id} (for ${target}) is in its mailbox`);
      if (count !== 1) problems.push(`agent ${name}: ${id} is stored ${count} times`);
    }
  }
  // Every acknowledged message for every agent it is for; an unacknowledged one for all or none.
  let unackedStored = 0;
  for (const [id, target] of report.subs) {
    const present = [...target].filter((name) => found[name as AgentName].has(id));
    if (report.acked.has(id)) {
      if (present.length !== target.length)
        problems.push(`acknowledged ${id} (for ${target}) is missing for ${[...target].filter((n) => !present.includes(n)).join(', ')}`);
    } else if (present.length > 0) {
      unackedStored++;
      if (present.length !== target.length) problems.push(`unacknowledged ${id} (for ${target}) is stored for ${present.join(', ')} only`);
    }
  }
  expect(problems, `${where}: the mailboxes after the kill${codeChangedNote()}`).toEqual([]);

  const inFlight = report.subs.size - report.acked.size;
  stats.trials++;
  stats.posted += report.subs.size;
  stats.acked += report.acked.size;
  stats.inFlight += inFlight;
  if (inFlight > 0) stats.trialsInFlight++;
  stats.unackedStored += unackedStored;
  if (unackedStored > 0) stats.trialsUnackedStored++;
  stats.copies += found.a.size + found.b.size;
}

let base: string;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'dkms-agency-crash-'));
  guard.start();
});

afterAll(() => {
  killLiveChildren();
  rmSync(base, { recursive: true, force: true });
});

describe('agency crash trials', () => {
  it(
    `loses no acknowledged message through ${TRIALS} SIGKILLs under concurrent inbound load`,
    async ({ annotate }) => {
      // A real ledger with the owner's policy: agent a is ADMIN, agent b PROVE only.
      const ledger = await startLedger(join(base, 'ledger'));
      const agents: Record<AgentName, Edge> = { a: edgeAgent('a'), b: edgeAgent('b') };
      const create = signEvent(policyCreate([agents.a.agent(ALL_FLAGS), agents.b.agent(FLAGS.PROVE)], commitment([testKey()])), [agents.a, agents.b]);
      const policy = (await new LedgerClient({ url: ledger.url }).submit(create)).subject;

      // The owner's cloud agent, registered once; every child serves it from the same directory.
      const partial = { home: join(base, 'home'), ledgerUrl: ledger.url, trustedLedgerKeys: [ledger.signer.multikey], agents };
      const first = await restart(partial, `seed ${SEED}, registering`);
      let cloud: CloudAgentDescription;
      try {
        cloud = await new AgencyClient(first.url, agents.a.signer).register(policy);
      } finally {
        await first.close();
      }
      const setup: Setup = { ...partial, cloud };

      const config = {
        home: setup.home,
        ledgerUrl: setup.ledgerUrl,
        trustedLedgerKeys: setup.trustedLedgerKeys,
        senders: SENDERS,
        cloud: { kx: cloud.kx, routingKey: cloud.routingKey, did: cloud.did },
        agents: AGENT_NAMES.map((name) => ({ kid: agents[name].agreement.kid, kx: agents[name].kx, didKey: `did:key:${agents[name].multikey}` })),
      };
      const stats: Stats = { trials: 0, posted: 0, acked: 0, inFlight: 0, trialsInFlight: 0, unackedStored: 0, trialsUnackedStored: 0, copies: 0 };
      for (let t = 0; t < TRIALS; t++) {
        const delay = delayBetween(MIN_DELAY_MS, MAX_DELAY_MS);
        const where = `seed ${SEED}, trial ${t}, kill ${delay} ms after ready`;
        const run = await runChildScript(CHILD, { ...config, trial: t }, delay);
        await checkAfterKill(setup, reportOf(run, where), stats, where);
      }

      expect(stats.trials).toBe(TRIALS);
      expect(stats.acked, `seed ${SEED}: the agency acknowledged nothing`).toBeGreaterThan(0);
      // The kills must land under load: with every sender always posting, nearly every kill finds
      // messages in flight; fewer than half would mean the load had stopped before the kill.
      expect(stats.trialsInFlight, `seed ${SEED}: kills that found messages in flight`).toBeGreaterThanOrEqual(Math.ceil(TRIALS / 2));

      await annotate(
        `seed ${SEED}: ${stats.trials} kills, ${stats.posted} messages posted, ${stats.acked} acknowledged, ` +
          `${stats.copies} copies picked up; ${stats.inFlight} in flight at the kills (in ${stats.trialsInFlight} trials), ` +
          `of which ${stats.unackedStored} were stored though never acknowledged (in ${stats.trialsUnackedStored} trials)`,
      );
    },
    crashTimeout(90_000),
  );
});
