/**
 * Setting up recovery and changing it (DESIGN.md section 8): a new recovery secret R, its
 * recovery key committed on the ledger, backups encrypted to its backup key, and its shares
 * with trustees. Every change is two-phase: `prepareRecovery` makes the new secret and puts its
 * shares with the trustees; `commitRecovery` (once every trustee holds its share) commits the
 * new recovery key on the ledger, signed by the current one, then activates the new shares,
 * deletes the old ones and moves the backups. Until the commit, the old secret, old paper and
 * old shares keep working.
 */
import { CATEGORIES, PROVISIONAL_RECOVERY_KEY } from '../agent/agent-store.js';
import type { EdgeAgent } from '../agent/edge-agent.js';
import { AgencyClient } from '../agent/agency-client.js';
import { agentSigner } from '../agent/provision.js';
import { wipe } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { nextEvent, signEvent, type EventSigner } from '../ledger/build.js';
import { recoveryKeyDigest } from '../policy/authority.js';
import { FLAGS, hasFlag } from '../policy/flags.js';
import type { PendingRecovery, PolicyRules } from '../policy/types.js';
import { encryptBackup } from './backup.js';
import { forgetReleases } from './requests.js';
import { checkTrusteeSetting } from './shares.js';
import { newRecoverySecret, RecoveryKeys } from './secret.js';
import { readPrepared, readSetup, type PreparedChange, type RecoverySetup } from './state.js';
import { finishTrusteeChange, findTrustee, missingAcks, prepareShares } from './trustees.js';

export interface BackupOutcome {
  /** The version the agency stored, if the owner has a cloud agent. */
  readonly version?: number;
  readonly file?: string;
  readonly size: number;
}

/**
 * Encrypts this wallet to the backup key and stores it with the cloud agent and/or in `file`.
 * `to` sends it to another secret's key and locator (a prepared change) instead of the setup's.
 */
export async function makeBackup(agent: EdgeAgent, options: { file?: string; upload?: boolean; to?: { backupKey: string; locator: string } } = {}): Promise<BackupOutcome> {
  const setup = readSetup(agent);
  const target = options.to ?? setup;
  if (target === undefined) throw new DkmsError('RECOVERY_NOT_SET_UP', 'recovery is not set up on this agent: run `dkms recovery setup`');
  const profile = agent.profile;
  const bytes = await encryptBackup(agent.wallet, target.backupKey, { policy: profile.policy, signer: agent.signingKey() });
  let version: number | undefined;
  if (options.upload !== false && profile.cloud !== undefined) {
    const stored = await agent.agency().putBackup(profile.cloud.id, target.locator, bytes);
    version = stored.version;
    if (options.to === undefined && setup !== undefined) agent.store.write(CATEGORIES.recovery, 'setup', { ...setup, lastBackup: { version, at: stored.created } } satisfies RecoverySetup);
  }
  if (options.file !== undefined) writeFileAtomic(options.file, bytes, 0o600);
  if (version === undefined && options.file === undefined) throw new DkmsError('NO_CLOUD_AGENT', 'this agent has no cloud agent to keep backups: register one, or pass --backup-file');
  return { ...(version === undefined ? {} : { version }), ...(options.file === undefined ? {} : { file: options.file }), size: bytes.length };
}

/**
 * The key that may sign `policy.recover` now: the provisional key `agent init` committed, while
 * this wallet still holds it, or else the committed key of the current recovery secret.
 */
export function currentRecoverySigner(agent: EdgeAgent, policy: PolicyRules, current?: RecoveryKeys): EventSigner {
  const provisional = agent.wallet.listKeys('ed25519').find((k) => k.name === PROVISIONAL_RECOVERY_KEY);
  if (provisional !== undefined && policy.recovery.digests.includes(recoveryKeyDigest(provisional.publicKey))) {
    return { publicKey: provisional.publicKey, sign: (m) => agent.wallet.sign(PROVISIONAL_RECOVERY_KEY, m) };
  }
  if (current === undefined) {
    throw new DkmsError('BAD_INPUT', 'changing recovery needs the current recovery secret: pass --mnemonic or --qr (your paper wallet), or --from-trustees');
  }
  const signer = current.committedSigner(policy.recovery);
  return { publicKey: signer.key, sign: signer.sign };
}

export interface PrepareOptions {
  readonly offline: boolean;
  /** Trustees (ids, connection ids or labels) and the threshold, for social recovery. */
  readonly social?: { readonly trustees: readonly string[]; readonly threshold: number; readonly insist: boolean };
  /** Seconds a recovery will wait before it takes effect (0: none). */
  readonly delay: number;
}

/**
 * Phase one: a new recovery secret, its shares sent to the chosen trustees. Returns R for the
 * caller to show as a paper wallet and then wipe; R is not kept anywhere.
 */
export async function prepareRecovery(agent: EdgeAgent, options: PrepareOptions): Promise<{ secret: Uint8Array; prepared: PreparedChange }> {
  if (!options.offline && options.social === undefined) throw new DkmsError('BAD_INPUT', 'choose --offline, --social or both');
  const secret = newRecoverySecret();
  const keys = new RecoveryKeys(secret);
  try {
    const next = { digest: keys.signer(0).digest, backupKey: keys.backupKey, locator: keys.locator };
    // A backup the new secret opens exists before the ledger can commit to it: no moment when neither secret restores.
    if (agent.profile.cloud !== undefined) await makeBackup(agent, { to: next });
    let prepared: PreparedChange;
    if (options.social !== undefined) {
      const chosen = options.social.trustees.map((ref) => findTrustee(agent, ref));
      if (new Set(chosen.map((t) => t.id)).size !== chosen.length) throw new DkmsError('BAD_INPUT', 'a trustee is named twice');
      checkTrusteeSetting(chosen.length, options.social.threshold, options.social.insist);
      prepared = await prepareShares(agent, secret, { chosen, threshold: options.social.threshold, insist: options.social.insist, next, delay: options.delay, offline: options.offline });
    } else {
      prepared = { v: 1, set: '', threshold: 0, trustees: [], next, delay: options.delay, offline: options.offline, created: new Date().toISOString() };
      agent.store.write(CATEGORIES.recovery, 'prepared', prepared);
    }
    return { secret, prepared };
  } catch (e) {
    wipe(secret);
    throw e;
  } finally {
    keys.wipe();
  }
}

export type CommitOutcome =
  | { readonly state: 'committed'; readonly setup: RecoverySetup; readonly backup?: BackupOutcome }
  | { readonly state: 'pending'; readonly until: string };

/**
 * Phase two: commits the prepared secret's recovery key on the ledger (signed by the current
 * recovery key), then finishes the change. Runs again safely after a failure at any point.
 */
export async function commitRecovery(agent: EdgeAgent, current?: RecoveryKeys): Promise<CommitOutcome> {
  const prepared = readPrepared(agent);
  if (prepared === undefined) throw new DkmsError('TRUSTEE_CHANGE_INCOMPLETE', 'no recovery change is prepared: run `dkms recovery setup`');
  const missing = missingAcks(agent, prepared);
  if (missing.length > 0) {
    throw new DkmsError('TRUSTEE_CHANGE_INCOMPLETE', `waiting for ${missing.map((t) => `'${t.label}'`).join(', ')} to hold their shares (\`dkms message inbox\` collects their answers)`);
  }
  const record = await agent.policy();
  const ours = (p: PolicyRules) => p.pending !== undefined && p.pending.next.digests.includes(prepared.next.digest);
  if (ours(record.policy)) return { state: 'pending', until: (record.policy.pending as PendingRecovery).until };
  if (!record.policy.recovery.digests.includes(prepared.next.digest)) {
    const signer = currentRecoverySigner(agent, record.policy, current);
    const next = { digests: [prepared.next.digest], threshold: 1, ...(prepared.delay > 0 ? { delay: prepared.delay } : {}) };
    // This agent, if ADMIN, consents to skip a delay (enough with the policy's rules threshold;
    // it also overrides a recovery someone else started).
    const delayed = (record.policy.recovery.delay ?? 0) > 0 || record.policy.pending !== undefined;
    const admin = record.policy.agents.some((a) => a.key === agent.profile.key && hasFlag(a.flags, FLAGS.ADMIN));
    const signers = delayed && admin ? [signer, agentSigner(agent.wallet)] : [signer];
    await agent.ledger.submit(signEvent(nextEvent('policy.recover', record.subject, record, { next }), signers));
    const after = await agent.policy();
    if (ours(after.policy)) return { state: 'pending', until: (after.policy.pending as PendingRecovery).until };
  }
  return finishChange(agent, prepared, current);
}

/**
 * After the ledger holds the new commitment: the setup record, a fresh backup under the new
 * secret, the trustees told, and only then the old secret's backups deleted (which takes a
 * signature by its recovery key: `current`, when at hand; otherwise they stay, and R alone can
 * read them). Safe to run again.
 */
export async function finishChange(agent: EdgeAgent, prepared: PreparedChange, current?: RecoveryKeys): Promise<CommitOutcome> {
  const previous = readSetup(agent);
  const setup: RecoverySetup = {
    v: 1,
    backupKey: prepared.next.backupKey,
    locator: prepared.next.locator,
    index: 0,
    delay: prepared.delay,
    offline: prepared.offline,
    ...(prepared.trustees.length === 0 ? {} : { social: { set: prepared.set, threshold: prepared.threshold, trustees: prepared.trustees.map((t) => t.id) } }),
    created: new Date().toISOString(),
  };
  agent.wallet.transaction(() => {
    agent.store.write(CATEGORIES.recovery, 'setup', setup);
    agent.store.remove(CATEGORIES.recovery, 'prepared');
    if (agent.wallet.listKeys('ed25519').some((k) => k.name === PROVISIONAL_RECOVERY_KEY)) agent.wallet.deleteKey(PROVISIONAL_RECOVERY_KEY);
  });
  forgetReleases(agent);
  const cloud = agent.profile.cloud;
  const backup = cloud === undefined ? undefined : await makeBackup(agent);
  await finishTrusteeChange(agent, prepared, previous?.social?.trustees ?? []);
  if (previous !== undefined && previous.locator !== prepared.next.locator && cloud !== undefined && current !== undefined) {
    const revealed = (await agent.policy()).policy.revealed;
    const old = current.signerFor(revealed);
    if (old !== undefined) await new AgencyClient(cloud.agency, { key: old.key, sign: old.sign }, agent.options).deleteBackups(cloud.id, previous.locator);
  }
  return { state: 'committed', setup: readSetup(agent) ?? setup, ...(backup === undefined ? {} : { backup }) };
}

/** Drops a prepared change that will not be committed; the trustees' prepared shares are replaced by the next one. */
export async function abortRecoveryChange(agent: EdgeAgent): Promise<PreparedChange> {
  const prepared = readPrepared(agent);
  if (prepared === undefined) throw new DkmsError('TRUSTEE_CHANGE_INCOMPLETE', 'no recovery change is prepared');
  const policy = (await agent.policy()).policy;
  if (policy.recovery.digests.includes(prepared.next.digest) || (policy.pending?.next.digests.includes(prepared.next.digest) ?? false)) {
    throw new DkmsError('TRUSTEE_CHANGE_INCOMPLETE', 'the ledger already commits to this change: finish it with `dkms trustee commit` (or `dkms recovery complete` after its delay)');
  }
  agent.store.remove(CATEGORIES.recovery, 'prepared');
  forgetReleases(agent);
  return prepared;
}
