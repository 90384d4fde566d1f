/**
 * An identity's timeline, for the explorer: what each verified event changed, and which agents
 * held which flags when. Pure: it reads what `LedgerClient` verified for one read (its `history`,
 * and its `steps`, the state of each subject after each of its events) and trusts nothing else.
 * Every change is found by comparing a subject's state before an event with its state after
 * (docs/ledger.md, "Events"; src/policy/authority.ts for the policy transitions), never read off
 * the event's own fields: an event says what was asked, the replayed state what happened.
 *
 * Events are matched to their states by `gseq`, not by subject: an inception event's subject is
 * the hash of the event, and hashing in the browser is asynchronous (crypto/web/platform.ts).
 */
import { canonicalJson } from '../../src/crypto/index.js';
import { badInput } from '../../src/errors.js';
import type { Service } from '../../src/ledger/events.js';
import type { DidRecord, LogRecord, SubjectRecord } from '../../src/ledger/state.js';
import type { StateStep } from '../../src/ledger/verified-cache.js';
import { flagNames, type FlagName } from '../../src/policy/flags.js';
import { DEFAULT_RULES, type Agent, type PendingRecovery, type PolicyRules, type Rules } from '../../src/policy/types.js';

/** One thing an event changed, found by comparing its subject's states before and after it. */
export type Change =
  | { readonly kind: 'policy-created'; readonly agents: number }
  | { readonly kind: 'agent-added'; readonly key: string; readonly kx?: string; readonly flags: readonly FlagName[] }
  | { readonly kind: 'agent-removed'; readonly key: string; readonly flags: readonly FlagName[] }
  | { readonly kind: 'flags-changed'; readonly key: string; readonly from: readonly FlagName[]; readonly to: readonly FlagName[] }
  /** An agent's key-agreement key replaced, added or taken away (a grant repeats the whole entry). */
  | { readonly kind: 'kx-changed'; readonly key: string; readonly from?: string; readonly to?: string }
  | { readonly kind: 'rules-changed'; readonly from: Rules; readonly to: Rules }
  | { readonly kind: 'recovery-committed'; readonly digests: number; readonly threshold: number; readonly delaySeconds: number }
  | { readonly kind: 'recovery-pending'; readonly since: string; readonly until: string; readonly revealed: number }
  | { readonly kind: 'recovery-cancelled' }
  | { readonly kind: 'recovery-completed' }
  | { readonly kind: 'did-created'; readonly controller: string }
  /** Service ids (`#agency`): added, removed, and kept with another type or endpoint. */
  | { readonly kind: 'services-changed'; readonly added: readonly string[]; readonly removed: readonly string[]; readonly changed: readonly string[] }
  | { readonly kind: 'did-deactivated' };

export interface TimelineEntry {
  readonly gseq: number;
  readonly time: string;
  readonly subject: string;
  readonly seq: number;
  /** The event's type (`policy.grant`, …). */
  readonly type: string;
  /** The keys that signed the event (`sigs[].kid`), in order. */
  readonly signers: readonly string[];
  readonly changes: readonly Change[];
}

/** An unbroken stretch during which an agent held the same flags: from one event up to the event that ended it. */
export interface AgentPeriod {
  readonly fromGseq: number;
  readonly fromTime: string;
  /** The event that changed the flags or removed the agent; undefined while the period lasts. */
  readonly toGseq?: number;
  readonly toTime?: string;
  readonly flags: readonly FlagName[];
}

/** One agent key's periods, in order: a new period whenever its flags change, and after a gap when it was removed and granted again. */
export interface AgentLane {
  readonly key: string;
  readonly periods: readonly AgentPeriod[];
}

/** The state of a subject before and after one event. */
interface Transition {
  readonly subject: string;
  readonly before: SubjectRecord | undefined;
  readonly after: SubjectRecord;
}

const same = (a: unknown, b: unknown): boolean => (a === undefined || b === undefined ? a === b : canonicalJson(a) === canonicalJson(b));

/** Each step's transition, by the gseq of the event that made it. */
function transitions(steps: Readonly<Record<string, readonly StateStep[]>>): Map<number, Transition> {
  const found = new Map<number, Transition>();
  for (const [subject, list] of Object.entries(steps)) {
    list.forEach((step, i) => found.set(step.gseq, { subject, before: list[i - 1]?.record, after: step.record }));
  }
  return found;
}

function agentChanges(before: readonly Agent[], after: readonly Agent[]): Change[] {
  const old = new Map(before.map((a) => [a.key, a]));
  const now = new Map(after.map((a) => [a.key, a]));
  const keys = [...new Set([...old.keys(), ...now.keys()])].sort();
  return keys.flatMap((key): Change[] => {
    const was = old.get(key);
    const is = now.get(key);
    if (was === undefined && is !== undefined) return [{ kind: 'agent-added', key, ...(is.kx === undefined ? {} : { kx: is.kx }), flags: flagNames(is.flags) }];
    if (is === undefined && was !== undefined) return [{ kind: 'agent-removed', key, flags: flagNames(was.flags) }];
    const changes: Change[] = [];
    if (was === undefined || is === undefined) return changes;
    if (was.flags !== is.flags) changes.push({ kind: 'flags-changed', key, from: flagNames(was.flags), to: flagNames(is.flags) });
    if (was.kx !== is.kx)
      changes.push({ kind: 'kx-changed', key, ...(was.kx === undefined ? {} : { from: was.kx }), ...(is.kx === undefined ? {} : { to: is.kx }) });
    return changes;
  });
}

/** True when `after` is exactly `before` with `pending` applied (authority.ts applyRecovery). */
function completes(before: PolicyRules, pending: PendingRecovery, after: PolicyRules): boolean {
  return (
    after.pending === undefined &&
    same(after.recovery, pending.next) &&
    same(after.agents, pending.agents ?? before.agents) &&
    same(after.rules, pending.rules ?? before.rules) &&
    pending.revealed.every((d) => after.revealed.includes(d))
  );
}

/** What happened to a delayed recovery: started, completed, or dropped (cancelled, or replaced by a recovery ADMIN agents consented to). */
function pendingChanges(before: PolicyRules | undefined, after: PolicyRules): Change[] {
  const was = before?.pending;
  const is = after.pending;
  if (same(was, is)) return [];
  const changes: Change[] = [];
  if (before !== undefined && was !== undefined) changes.push({ kind: completes(before, was, after) ? 'recovery-completed' : 'recovery-cancelled' });
  if (is !== undefined) changes.push({ kind: 'recovery-pending', since: is.since, until: is.until, revealed: is.revealed.length });
  return changes;
}

/**
 * A policy's changes from `before` (undefined: the event created it, compared with an empty
 * policy under the default rules) to `after`. A recovery's changes are its commitment, and the
 * agents and rules it replaced: those it left as they were show no change.
 */
function policyChanges(before: PolicyRules | undefined, after: PolicyRules): Change[] {
  const changes: Change[] = [];
  if (before === undefined) changes.push({ kind: 'policy-created', agents: after.agents.length });
  changes.push(...pendingChanges(before, after));
  changes.push(...agentChanges(before?.agents ?? [], after.agents));
  const rules = before?.rules ?? DEFAULT_RULES;
  if (!same(rules, after.rules)) changes.push({ kind: 'rules-changed', from: rules, to: after.rules });
  if (before === undefined || !same(before.recovery, after.recovery)) {
    const { digests, threshold, delay } = after.recovery;
    changes.push({ kind: 'recovery-committed', digests: digests.length, threshold, delaySeconds: delay ?? 0 });
  }
  return changes;
}

function serviceChanges(before: readonly Service[], after: readonly Service[]): Change[] {
  const old = new Map(before.map((s) => [s.id, s]));
  const now = new Map(after.map((s) => [s.id, s]));
  const added = after.filter((s) => !old.has(s.id)).map((s) => s.id);
  const removed = before.filter((s) => !now.has(s.id)).map((s) => s.id);
  const changed = after.filter((s) => old.has(s.id) && !same(old.get(s.id), s)).map((s) => s.id);
  return added.length + removed.length + changed.length === 0 ? [] : [{ kind: 'services-changed', added, removed, changed }];
}

/** A DID's changes from `before` (undefined: the event created it, with no services yet) to `after`. */
function didChanges(before: DidRecord | undefined, after: DidRecord): Change[] {
  const changes: Change[] = [];
  if (before === undefined) changes.push({ kind: 'did-created', controller: after.controller });
  changes.push(...serviceChanges(before?.services ?? [], after.services));
  if (after.deactivated && before?.deactivated !== true) changes.push({ kind: 'did-deactivated' });
  return changes;
}

function changesOf({ before, after }: Transition): Change[] {
  if (before !== undefined && before.kind !== after.kind) throw badInput(`the states of ${after.subject} are of two kinds (${before.kind}, ${after.kind})`);
  return after.kind === 'policy'
    ? policyChanges(before?.kind === 'policy' ? before.policy : undefined, after.policy)
    : didChanges(before as DidRecord | undefined, after);
}

/**
 * One entry per record of `history`, in its order, with what the event changed.
 *
 * @param history verified log records (`VerifiedRead.history`), in log order; may mix subjects.
 * @param steps the verified states of each subject after each of its events (`VerifiedRead.steps`).
 * @throws DkmsError `BAD_INPUT` when a record has no state step, or a step of another seq:
 *   `history` and `steps` must come from the same verified read.
 * @example
 *   const read = client.cache.get(did);
 *   if (read !== undefined) for (const entry of timelineOf(read.history, read.steps)) show(entry.type, entry.changes);
 */
export function timelineOf(history: readonly LogRecord[], steps: Readonly<Record<string, readonly StateStep[]>>): TimelineEntry[] {
  const byGseq = transitions(steps);
  return history.map((record) => {
    const transition = byGseq.get(record.gseq);
    if (transition === undefined) throw badInput(`event ${record.gseq} has no verified state: history and steps are not of the same read`);
    if (transition.after.seq !== record.event.seq) {
      throw badInput(`event ${record.gseq} has seq ${record.event.seq}, but its state is at seq ${transition.after.seq}`);
    }
    return {
      gseq: record.gseq,
      time: record.time,
      subject: transition.subject,
      seq: record.event.seq,
      type: record.event.type,
      signers: record.event.sigs.map((s) => s.kid),
      changes: changesOf(transition),
    };
  });
}

interface OpenLane {
  readonly key: string;
  readonly periods: AgentPeriod[];
  /** The flags of the period that lasts, if one does. */
  current: number | undefined;
}

function closeLast(lane: OpenLane, step: StateStep): void {
  const last = lane.periods.pop();
  if (last !== undefined) lane.periods.push({ ...last, toGseq: step.gseq, toTime: step.time });
  lane.current = undefined;
}

/**
 * One lane per agent key that ever appeared in the policy, in order of first appearance (keys
 * that appear at the same event: in key order, as the policy lists them). A period starts when
 * the agent is added or its flags change, and ends at the event that changes its flags again or
 * removes it. A change of its key-agreement key alone does not start a period.
 *
 * @param policySteps one policy's verified states, oldest first (`VerifiedRead.steps[policy]`).
 * @throws DkmsError `BAD_INPUT` for a step that is not a policy's.
 * @example
 *   agentLanes(read.steps[policy] ?? []).map((lane) => [lane.key, lane.periods.length]);
 */
export function agentLanes(policySteps: readonly StateStep[]): AgentLane[] {
  const lanes = new Map<string, OpenLane>();
  for (const step of policySteps) {
    if (step.record.kind !== 'policy') throw badInput(`the state after event ${step.gseq} is not a policy's`);
    const agents = new Map(step.record.policy.agents.map((a) => [a.key, a.flags]));
    for (const lane of lanes.values()) {
      const flags = agents.get(lane.key);
      if (lane.current !== undefined && lane.current !== flags) closeLast(lane, step);
    }
    for (const [key, flags] of agents) {
      let lane = lanes.get(key);
      if (lane === undefined) {
        lane = { key, periods: [], current: undefined };
        lanes.set(key, lane);
      }
      if (lane.current === undefined) {
        lane.periods.push({ fromGseq: step.gseq, fromTime: step.time, flags: flagNames(flags) });
        lane.current = flags;
      }
    }
  }
  return [...lanes.values()].map(({ key, periods }) => ({ key, periods }));
}
