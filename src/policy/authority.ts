/**
 * Who may change a policy, and the transitions themselves: pure functions from a policy's
 * rules, a change, and the set of keys that validly signed it, to the next rules or a coded
 * error. The ledger's validator calls these after checking the signatures; so does the client
 * when it re-verifies a chain.
 */
import { fromBase58btc, sha256, toBase58btc, decodePublicKey } from '../crypto/index.js';
import { DkmsError, type ErrorCode } from '../errors.js';
import { ADMIN_ONLY, FLAGS, flagNames, hasFlag } from './flags.js';
import {
  DEFAULT_RULES,
  RULE_NAMES,
  type Agent,
  type PendingRecovery,
  type PolicyChange,
  type PolicyRules,
  type RecoveryCommitment,
  type Rules,
} from './types.js';

const fail = (code: ErrorCode, message: string) => new DkmsError(code, message);

/** The digest a recovery commitment holds for a recovery public key: base58btc(SHA-256(raw key)). */
export function recoveryKeyDigest(publicKey: string): string {
  return toBase58btc(sha256(decodePublicKey(publicKey, 'ed25519').publicKey));
}

export function isDigest(text: string): boolean {
  try {
    return fromBase58btc(text).length === 32;
  } catch {
    return false;
  }
}

function sortAgents(agents: readonly Agent[]): Agent[] {
  return [...agents].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function findAgent(state: PolicyRules, key: string): Agent | undefined {
  return state.agents.find((a) => a.key === key);
}

/**
 * Checks that the signers include at least `threshold` distinct agents holding every flag in
 * `required`, and that nobody else signed: an unknown or unauthorized signature is refused
 * rather than ignored, so a signature set means exactly what it says.
 */
export function checkSigners(state: PolicyRules, signers: ReadonlySet<string>, required: number, threshold: number, what: string): void {
  for (const key of signers) {
    const agent = findAgent(state, key);
    if (agent === undefined) throw fail('EVENT_UNAUTHORIZED', `${what}: signer ${key} is not an agent of this policy`);
    if (!hasFlag(agent.flags, required)) {
      throw fail('EVENT_UNAUTHORIZED', `${what}: signer ${key} lacks ${flagNames(required).join('+')}`);
    }
  }
  if (signers.size < threshold) {
    throw fail('EVENT_THRESHOLD', `${what} needs ${threshold} authorized signatures, got ${signers.size}`);
  }
}

/** Agents able to sign each kind of change; a policy must always be able to meet its rules. */
function assertNoLockout(state: PolicyRules): void {
  const count = (flag: number) => state.agents.filter((a) => hasFlag(a.flags, flag)).length;
  const able: Rules = { grant: count(FLAGS.PROVE_GRANT), revoke: count(FLAGS.PROVE_REVOKE), rules: count(FLAGS.ADMIN), did: count(FLAGS.ADMIN) };
  for (const name of RULE_NAMES) {
    if (state.rules[name] > able[name]) {
      throw fail(
        'EVENT_LOCKOUT',
        `rule '${name}' needs ${state.rules[name]} signers but only ${able[name]} agents could sign: the policy would lock itself out`,
      );
    }
  }
}

function checkAgents(agents: readonly Agent[]): void {
  const keys = new Set<string>();
  for (const agent of agents) {
    if (keys.has(agent.key)) throw fail('EVENT_INVALID', `agent ${agent.key} is listed twice`);
    keys.add(agent.key);
  }
  if (agents.length === 0) throw fail('EVENT_INVALID', 'a policy needs at least one agent');
}

function checkCommitment(next: RecoveryCommitment, revealed: readonly string[]): void {
  if (new Set(next.digests).size !== next.digests.length) throw fail('EVENT_INVALID', 'a recovery key digest is listed twice');
  if (next.threshold > next.digests.length) {
    throw fail('EVENT_INVALID', `recovery threshold ${next.threshold} exceeds the ${next.digests.length} committed keys`);
  }
  const reused = next.digests.find((d) => revealed.includes(d));
  if (reused !== undefined) throw fail('EVENT_RECOVERY_KEY_REUSED', `recovery key digest ${reused} was already revealed and cannot be committed again`);
}

/** Every new agent proves possession of its key by signing; agents `known` already did when added. */
function checkPossession(agents: readonly Agent[], signers: ReadonlySet<string>, what: string, known: readonly Agent[] = []): void {
  const missing = agents.find((a) => !signers.has(a.key) && !known.some((k) => k.key === a.key));
  if (missing !== undefined) throw fail('EVENT_UNAUTHORIZED', `${what}: agent ${missing.key} must sign to prove it holds its key`);
}

/**
 * Flags a signer needs to move an agent from `before` to `after`. Replacing the key-agreement
 * key of an agent that holds (or keeps) an admin-only flag needs ADMIN, as taking the agent
 * away would: it redirects what is encrypted to that agent in every DID document.
 */
export function requiredToGrant(before: Agent | undefined, after: Agent): number {
  const changed = (before?.flags ?? 0) ^ after.flags;
  if ((changed & ADMIN_ONLY) !== 0) return FLAGS.ADMIN;
  const kxChanged = before !== undefined && before.kx !== after.kx;
  if (kxChanged && ((before.flags | after.flags) & ADMIN_ONLY) !== 0) return FLAGS.ADMIN;
  let required: number = FLAGS.PROVE_GRANT;
  if (before !== undefined && (before.flags & FLAGS.PROVE) !== 0 && (after.flags & FLAGS.PROVE) === 0) required = FLAGS.PROVE_REVOKE;
  return required;
}

function create(change: Extract<PolicyChange, { type: 'policy.create' }>, signers: ReadonlySet<string>): PolicyRules {
  checkAgents(change.agents);
  checkPossession(change.agents, signers, 'policy.create');
  const extra = [...signers].find((k) => !change.agents.some((a) => a.key === k));
  if (extra !== undefined) throw fail('EVENT_UNAUTHORIZED', `policy.create: signer ${extra} is not one of its agents`);
  checkCommitment(change.recovery, []);
  return { agents: sortAgents(change.agents), rules: { ...DEFAULT_RULES, ...change.rules }, recovery: change.recovery, revealed: [] };
}

function grant(state: PolicyRules, agent: Agent, signers: ReadonlySet<string>): PolicyRules {
  const current = findAgent(state, agent.key);
  if (current !== undefined && current.flags === agent.flags && current.kx === agent.kx) {
    throw fail('EVENT_INVALID', `agent ${agent.key} already has exactly these flags`);
  }
  checkSigners(state, signers, requiredToGrant(current, agent), state.rules.grant, 'policy.grant');
  return { ...state, agents: sortAgents([...state.agents.filter((a) => a.key !== agent.key), agent]) };
}

function revoke(state: PolicyRules, key: string, signers: ReadonlySet<string>): PolicyRules {
  const current = findAgent(state, key);
  if (current === undefined) throw fail('EVENT_INVALID', `${key} is not an agent of this policy`);
  const required = (current.flags & ADMIN_ONLY) !== 0 ? FLAGS.ADMIN : FLAGS.PROVE_REVOKE;
  checkSigners(state, signers, required, state.rules.revoke, 'policy.revoke');
  return { ...state, agents: state.agents.filter((a) => a.key !== key) };
}

/**
 * `policy.recover`: the committed recovery keys (as many as the threshold) outrank every agent.
 * New agents prove possession by signing; agents the policy already has (a cloud agent kept
 * through a recovery) proved it when they were added. With a delay in the commitment the change
 * waits as `pending` until `policy.complete`, unless current ADMIN agents (as many as the `rules`
 * threshold) co-sign it: the delay is there for them to object, and they consent. Their consent
 * also lets the recovery replace one that is pending (the owner, rotating away from a secret
 * colluding trustees used, need not wait behind them).
 */
function recover(state: PolicyRules, change: Extract<PolicyChange, { type: 'policy.recover' }>, signers: ReadonlySet<string>, time: string): PolicyRules {
  const newAgents = change.agents ?? [];
  const revealed: string[] = [];
  // ADMIN co-signatures mean consent to skip a delay; where there is none they would mean nothing, and are refused.
  const delayed = (state.recovery.delay ?? 0) > 0 || state.pending !== undefined;
  let admins = 0;
  for (const key of signers) {
    const digest = recoveryKeyDigest(key);
    const current = findAgent(state, key);
    if (state.recovery.digests.includes(digest)) revealed.push(digest);
    else if (delayed && current !== undefined && hasFlag(current.flags, FLAGS.ADMIN)) admins++;
    else if (!newAgents.some((a) => a.key === key)) {
      throw fail(
        'EVENT_UNAUTHORIZED',
        `policy.recover: signer ${key} is neither a committed recovery key nor a new agent${delayed ? ' nor an ADMIN agent' : ''}`,
      );
    }
  }
  if (revealed.length < state.recovery.threshold) {
    throw fail('EVENT_THRESHOLD', `policy.recover needs ${state.recovery.threshold} committed recovery keys, got ${revealed.length}`);
  }
  const consented = admins >= state.rules.rules;
  if (state.pending !== undefined && !consented) {
    throw fail(
      'RECOVERY_PENDING',
      `a delayed recovery is already pending until ${state.pending.until}; cancel it, let it complete, or co-sign with ADMIN agents`,
    );
  }
  if (change.agents !== undefined) {
    checkAgents(change.agents);
    checkPossession(change.agents, signers, 'policy.recover', state.agents);
  }
  const pending: PendingRecovery = {
    since: time,
    until: new Date(Date.parse(time) + (state.recovery.delay ?? 0) * 1000).toISOString(),
    next: change.next,
    ...(change.agents === undefined ? {} : { agents: sortAgents(change.agents) }),
    ...(change.rules === undefined ? {} : { rules: change.rules }),
    revealed: revealed.sort(),
  };
  const after = applyRecovery(state, pending);
  if ((state.recovery.delay ?? 0) === 0 || consented) return after;
  assertNoLockout(after);
  return { ...state, pending };
}

/** The policy once a recovery takes effect. */
function applyRecovery(state: PolicyRules, recovery: PendingRecovery): PolicyRules {
  const allRevealed = [...new Set([...state.revealed, ...recovery.revealed])].sort();
  checkCommitment(recovery.next, allRevealed);
  return { agents: recovery.agents ?? state.agents, rules: recovery.rules ?? state.rules, recovery: recovery.next, revealed: allRevealed };
}

function pendingOf(state: PolicyRules, what: string): PendingRecovery {
  if (state.pending === undefined) throw fail('EVENT_INVALID', `${what}: no delayed recovery is pending`);
  return state.pending;
}

/**
 * `policy.complete`: a pending recovery takes effect once its delay has passed by ledger time.
 * Completing adds no authority (the recovery keys gave it), so any party to it may sign: a new
 * agent, a current agent or a recovery key that signed it.
 */
function complete(state: PolicyRules, signers: ReadonlySet<string>, time: string): PolicyRules {
  const pending = pendingOf(state, 'policy.complete');
  for (const key of signers) {
    const party = (pending.agents ?? []).some((a) => a.key === key) || findAgent(state, key) !== undefined || pending.revealed.includes(recoveryKeyDigest(key));
    if (!party) throw fail('EVENT_UNAUTHORIZED', `policy.complete: signer ${key} is not a party to the pending recovery`);
  }
  if (Date.parse(time) < Date.parse(pending.until)) {
    throw fail('RECOVERY_DELAY', `the pending recovery may complete from ${pending.until} (ledger time); it is ${time}`);
  }
  return applyRecovery(state, pending);
}

/** `policy.cancel`: enough ADMIN agents (the `rules` threshold) stop a pending recovery. */
function cancel(state: PolicyRules, signers: ReadonlySet<string>): PolicyRules {
  pendingOf(state, 'policy.cancel');
  checkSigners(state, signers, FLAGS.ADMIN, state.rules.rules, 'policy.cancel');
  const { pending: _pending, ...rest } = state;
  return rest;
}

/**
 * Applies one change to a policy (undefined before its creation) signed by `signers`, the
 * keys whose signatures the caller has verified, at ledger time `time`. Returns the next rules
 * or throws a coded DkmsError; it never changes its inputs.
 */
export function applyPolicyChange(state: PolicyRules | undefined, change: PolicyChange, signers: ReadonlySet<string>, time: string): PolicyRules {
  if (change.type === 'policy.create') {
    if (state !== undefined) throw fail('EVENT_INVALID', 'the policy already exists');
    const created = create(change, signers);
    assertNoLockout(created);
    return created;
  }
  if (state === undefined) throw fail('SUBJECT_NOT_FOUND', 'no such policy');
  let next: PolicyRules;
  switch (change.type) {
    case 'policy.grant':
      next = grant(state, change.agent, signers);
      break;
    case 'policy.revoke':
      next = revoke(state, change.key, signers);
      break;
    case 'policy.rules':
      checkSigners(state, signers, FLAGS.ADMIN, state.rules.rules, 'policy.rules');
      next = { ...state, rules: change.rules };
      break;
    case 'policy.recover':
      next = recover(state, change, signers, time);
      break;
    case 'policy.complete':
      next = complete(state, signers, time);
      break;
    case 'policy.cancel':
      next = cancel(state, signers);
      break;
  }
  assertNoLockout(next);
  return next;
}

/** Checks that the signers may act on the DIDs a policy controls (did.create/update/deactivate). */
export function checkDidAuthority(state: PolicyRules, signers: ReadonlySet<string>, what: string): void {
  checkSigners(state, signers, FLAGS.ADMIN, state.rules.did, what);
}
