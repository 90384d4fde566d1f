/**
 * Setting up recovery and changing it (docs/recovery.md): a new recovery secret R, its
 * recovery key committed on the ledger, backups encrypted to its backup key, and its shares
 * with trustees. Every change is two-phase: `prepareRecovery` makes the new secret and puts its
 * shares with the trustees; `commitRecovery` (once every trustee holds its share) commits the
 * new recovery key on the ledger, signed by the current one, then activates the new shares,
 * deletes the old ones and moves the backups. Until the commit, the old secret, old paper and
 * old shares keep working.
 */
import { PROVISIONAL_RECOVERY_KEY } from '../agent/agent-store.js';
import type { EdgeAgent } from '../agent/edge-agent.js';
import { AgencyClient } from '../agency/agency-client.js';
import { connections, peerState } from '../agent/connections.js';
import { wipe, type Signer } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { nextEvent, signEvent } from '../ledger/build.js';
import { recoveryKeyDigest } from '../policy/authority.js';
import { FLAGS, hasFlag } from '../policy/flags.js';
import type { PendingRecovery, PolicyRules } from '../policy/types.js';
import { encryptBackup } from './backup.js';
import { forgetReleases } from './requests.js';
import { checkTrusteeSetting } from './shares.js';
import { newRecoverySecret, RecoveryKeys } from './secret.js';
import { readPrepared, readSetup, trustees, type PreparedChange, type RecoverySetup, type Trustee } from './state.js';
import { finishTrusteeChange, findTrustee, missingAcks, prepareShares } from './trustees.js';
import { RECOVERY_CATEGORIES } from './categories.js';

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
export async function makeBackup(
  agent: EdgeAgent,
  options: { file?: string; upload?: boolean; to?: { backupKey: string; locator: string } } = {},
): Promise<BackupOutcome> {
  const setup = readSetup(agent);
  const target = options.to ?? setup;
  if (target === undefined) throw new DkmsError('RECOVERY_NOT_SET_UP', 'recovery is not set up on this agent: run `dkms recovery setup`');
  const profile = agent.profile;
  const bytes = await encryptBackup(agent.wallet, target.backupKey, { policy: profile.policy, signer: agent.signingKey() });
  let version: number | undefined;
  if (options.upload !== false && profile.cloud !== undefined) {
    const stored = await agent.agency().putBackup(profile.cloud.id, target.locator, bytes);
    version = stored.version;
    if (options.to === undefined && setup !== undefined)
      agent.store.write(RECOVERY_CATEGORIES.recovery, 'setup', { ...setup, lastBackup: { version, at: stored.created } } satisfies RecoverySetup);
  }
  if (options.file !== undefined) writeFileAtomic(options.file, bytes, 0o600);
  if (version === undefined && options.file === undefined)
    throw new DkmsError('NO_CLOUD_AGENT', 'this agent has no cloud agent to keep backups: register one, or pass --backup-file');
  return { ...(version === undefined ? {} : { version }), ...(options.file === undefined ? {} : { file: options.file }), size: bytes.length };
}

/**
 * The key that may sign `policy.recover` now: the provisional key `agent init` committed, while
 * this wallet still holds it, or else the committed key of the current recovery secret.
 */
export function currentRecoverySigner(agent: EdgeAgent, policy: PolicyRules, current?: RecoveryKeys): Signer {
  const provisional = agent.wallet.listKeys('ed25519').find((k) => k.name === PROVISIONAL_RECOVERY_KEY);
  if (provisional !== undefined && policy.recovery.digests.includes(recoveryKeyDigest(provisional.publicKey))) {
    return agent.wallet.signer(PROVISIONAL_RECOVERY_KEY);
  }
  if (current === undefined) {
    throw new DkmsError('BAD_INPUT', 'changing recovery needs the current recovery secret: pass --mnemonic or --qr (your paper wallet), or --from-trustees');
  }
  return current.committedSigner(policy.recovery);
}

export interface PrepareOptions {
  readonly offline: boolean;
  /** Trustees (ids, connection ids or labels) and the threshold, for social recovery. */
  readonly social?: { readonly trustees: readonly string[]; readonly threshold: number; readonly insist: boolean };
  /** Seconds a recovery will wait before it takes effect (0: none). */
  readonly delay: number;
}

/**
 * What a change of recovery needs from the owner, checked before anything is made, shown, kept
 * or sent: a way to recover (paper, trustees or both), trustees that accepted, each named once,
 * and a threshold the trustee setting allows. Returns the chosen trustees.
 */
export function checkPrepare(agent: EdgeAgent, options: PrepareOptions): Trustee[] {
  if (!options.offline && options.social === undefined) throw new DkmsError('BAD_INPUT', 'choose --offline, --social or both');
  if (options.social === undefined) return [];
  const chosen = options.social.trustees.map((ref) => findTrustee(agent, ref));
  if (new Set(chosen.map((t) => t.id)).size !== chosen.length) throw new DkmsError('BAD_INPUT', 'a trustee is named twice');
  checkTrusteeSetting(chosen.length, options.social.threshold, options.social.insist);
  for (const t of chosen) {
    if (t.status !== 'accepted' || t.shareKey === undefined) throw new DkmsError('TRUSTEE_NOT_FOUND', `'${t.label}' has not accepted to be a trustee yet`);
  }
  return chosen;
}

/**
 * Phase one: a new recovery secret, its shares sent to the chosen trustees. Returns R for the
 * caller to wipe; R is not kept anywhere. `show` (the paper wallet) sees R before anything of
 * the change is kept or sent, so that a change is never prepared, and so never committed, for
 * a secret whose paper could not be shown. A failure after that (a trustee's agency out of
 * reach) rolls the change back: nothing is prepared, and the next setup starts afresh (shares
 * of this one that reached a trustee stay there prepared, never active, until a commit deletes
 * them). The backup that R opens is made by the commit, just before the ledger commits R.
 */
export async function prepareRecovery(
  agent: EdgeAgent,
  options: PrepareOptions,
  show?: (secret: Uint8Array) => Promise<void>,
): Promise<{ secret: Uint8Array; prepared: PreparedChange }> {
  const chosen = checkPrepare(agent, options);
  const secret = newRecoverySecret();
  const keys = new RecoveryKeys(secret);
  try {
    const next = { digest: keys.signer(0).digest, backupKey: keys.backupKey, locator: keys.locator };
    await show?.(secret);
    let prepared: PreparedChange;
    if (options.social !== undefined) {
      prepared = await prepareShares(agent, secret, {
        chosen,
        threshold: options.social.threshold,
        insist: options.social.insist,
        next,
        delay: options.delay,
        offline: options.offline,
      });
    } else {
      prepared = { v: 1, set: '', threshold: 0, trustees: [], next, delay: options.delay, offline: options.offline, created: new Date().toISOString() };
      agent.store.write(RECOVERY_CATEGORIES.recovery, 'prepared', prepared);
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
  { readonly state: 'committed'; readonly setup: RecoverySetup; readonly backup?: BackupOutcome } | { readonly state: 'pending'; readonly until: string };

/**
 * Phase two: stores a backup the new secret opens, commits the prepared secret's recovery key
 * on the ledger (signed by the current recovery key), then finishes the change. Runs again
 * safely after a failure at any point: before the ledger takes the commitment nothing else has
 * changed; after, the ledger shows it and only the finishing steps left are done.
 */
export async function commitRecovery(agent: EdgeAgent, current?: RecoveryKeys): Promise<CommitOutcome> {
  const prepared = readPrepared(agent);
  if (prepared === undefined) throw new DkmsError('TRUSTEE_CHANGE_INCOMPLETE', 'no recovery change is prepared: run `dkms recovery setup`');
  if (prepared.finishing !== undefined) return finishChange(agent, prepared, current);
  const missing = missingAcks(agent, prepared);
  if (missing.length > 0) {
    throw new DkmsError(
      'TRUSTEE_CHANGE_INCOMPLETE',
      `waiting for ${missing.map((t) => `'${t.label}'`).join(', ')} to hold their shares (\`dkms message inbox\` collects their answers)`,
    );
  }
  const record = await agent.policy();
  const ours = (p: PolicyRules) => p.pending !== undefined && p.pending.next.digests.includes(prepared.next.digest);
  if (ours(record.policy)) return { state: 'pending', until: (record.policy.pending as PendingRecovery).until };
  if (!record.policy.recovery.digests.includes(prepared.next.digest)) {
    const signer = currentRecoverySigner(agent, record.policy, current);
    // A backup the new secret opens exists before the ledger can commit to it: no moment when
    // neither secret restores. Made once per prepared change, however often the commit is tried.
    if (agent.profile.cloud !== undefined && prepared.backedUp !== true) {
      await makeBackup(agent, { to: prepared.next });
      agent.store.write(RECOVERY_CATEGORIES.recovery, 'prepared', { ...prepared, backedUp: true } satisfies PreparedChange);
    }
    // Until the change lands the old trustees' shares count, after it the new ones': both may
    // let a new device of the owner receive its shares for now.
    await nameSponsors(agent, [...prepared.trustees.map((t) => t.id), ...(readSetup(agent)?.social?.trustees ?? [])]);
    const next = { digests: [prepared.next.digest], threshold: 1, ...(prepared.delay > 0 ? { delay: prepared.delay } : {}) };
    // This agent, if ADMIN, consents to skip a delay (enough with the policy's rules threshold;
    // it also overrides a recovery someone else started).
    const delayed = (record.policy.recovery.delay ?? 0) > 0 || record.policy.pending !== undefined;
    const admin = record.policy.agents.some((a) => a.key === agent.profile.key && hasFlag(a.flags, FLAGS.ADMIN));
    const signers = delayed && admin ? [signer, agent.signingKey()] : [signer];
    await agent.ledger.submit(signEvent(nextEvent('policy.recover', record.subject, record, { next }), signers));
    const after = await agent.policy();
    if (ours(after.policy)) return { state: 'pending', until: (after.policy.pending as PendingRecovery).until };
  }
  return finishChange(agent, readPrepared(agent) ?? prepared, current);
}

/**
 * Names at the owner's cloud agent the keys that may open a guest mailbox there besides the
 * owner's agents: those of the trustees' connections, so that a trustee can let the owner's new
 * device receive its shares (the agency keeps guest mail only for keys one of them allowed).
 * Replaces what was named before; run again, it changes nothing.
 */
async function nameSponsors(agent: EdgeAgent, trusteeIds: readonly string[]): Promise<void> {
  const cloud = agent.profile.cloud;
  if (cloud === undefined) return;
  const byId = new Map(trustees(agent).map((t) => [t.id, t]));
  const keys = new Set<string>();
  for (const id of new Set(trusteeIds)) {
    const trustee = byId.get(id);
    const connection = trustee === undefined ? undefined : connections(agent).find((c) => c.id === trustee.connection);
    if (connection !== undefined) for (const { key } of peerState(connection).keys) keys.add(key);
  }
  await agent.agency(cloud).setSponsors(cloud.id, [...keys]);
}

/**
 * Names the sponsors again for the trustees that count now (the setup's, and a change's in
 * flight): after a trustee rotated its connection keys, so that it can still let the owner's new
 * device have its shares. Does nothing for a connection that is not a trustee's.
 */
export async function refreshSponsors(agent: EdgeAgent, connection: string): Promise<boolean> {
  if (!trustees(agent).some((t) => t.connection === connection)) return false;
  const prepared = readPrepared(agent);
  await nameSponsors(agent, [...(readSetup(agent)?.social?.trustees ?? []), ...(prepared?.trustees.map((t) => t.id) ?? [])]);
  return true;
}

/** Whether the ledger already commits to (or holds pending) the prepared change: then it is finished, not started again. */
export async function isCommitted(agent: EdgeAgent, prepared: PreparedChange): Promise<boolean> {
  if (prepared.finishing !== undefined) return true;
  const policy = (await agent.policy()).policy;
  return policy.recovery.digests.includes(prepared.next.digest) || (policy.pending?.next.digests.includes(prepared.next.digest) ?? false);
}

/**
 * After the ledger holds the new commitment: the setup record, a fresh backup under the new
 * secret, the trustees told, and only then the old secret's backups deleted (which takes a
 * signature by its recovery key: `current`, when at hand; otherwise they stay, and R alone can
 * read them). The prepared change is kept until all of it is done, marked with what the old
 * setup was, so that a run that failed part way (an agency out of reach) is finished by the
 * next `commitRecovery` with the same old trustees to end and the same old backups to delete.
 */
export async function finishChange(agent: EdgeAgent, prepared: PreparedChange, current?: RecoveryKeys): Promise<CommitOutcome> {
  let finishing = prepared.finishing;
  if (finishing === undefined) {
    const previous = readSetup(agent);
    finishing = { ...(previous === undefined ? {} : { locator: previous.locator }), trustees: previous?.social?.trustees ?? [] };
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
    const marked: PreparedChange = { ...prepared, finishing };
    agent.wallet.transaction(() => {
      agent.store.write(RECOVERY_CATEGORIES.recovery, 'setup', setup);
      agent.store.write(RECOVERY_CATEGORIES.recovery, 'prepared', marked);
      if (agent.wallet.listKeys('ed25519').some((k) => k.name === PROVISIONAL_RECOVERY_KEY)) agent.wallet.deleteKey(PROVISIONAL_RECOVERY_KEY);
    });
  }
  forgetReleases(agent);
  const cloud = agent.profile.cloud;
  // The new setup's first backup, once (a later run finds it recorded).
  const backup = cloud === undefined || readSetup(agent)?.lastBackup !== undefined ? undefined : await makeBackup(agent);
  await finishTrusteeChange(agent, prepared, finishing.trustees);
  await nameSponsors(
    agent,
    prepared.trustees.map((t) => t.id),
  );
  const old = finishing.locator;
  if (old !== undefined && old !== prepared.next.locator && cloud !== undefined && current !== undefined) {
    const revealed = (await agent.policy()).policy.revealed;
    const signer = current.signerFor(revealed);
    if (signer !== undefined) await new AgencyClient(cloud.agency, signer, agent.options).deleteBackups(cloud.id, old);
  }
  agent.store.remove(RECOVERY_CATEGORIES.recovery, 'prepared');
  const setup = readSetup(agent);
  if (setup === undefined) throw new DkmsError('INTERNAL', 'the recovery setup was not written');
  return { state: 'committed', setup, ...(backup === undefined ? {} : { backup }) };
}

/** Drops a prepared change that will not be committed; the trustees' prepared shares are replaced by the next one. */
export async function abortRecoveryChange(agent: EdgeAgent): Promise<PreparedChange> {
  const prepared = readPrepared(agent);
  if (prepared === undefined) throw new DkmsError('TRUSTEE_CHANGE_INCOMPLETE', 'no recovery change is prepared');
  const policy = (await agent.policy()).policy;
  if (
    prepared.finishing !== undefined ||
    policy.recovery.digests.includes(prepared.next.digest) ||
    (policy.pending?.next.digests.includes(prepared.next.digest) ?? false)
  ) {
    throw new DkmsError(
      'TRUSTEE_CHANGE_INCOMPLETE',
      'the ledger already commits to this change: finish it with `dkms trustee commit` (or `dkms recovery complete` after its delay)',
    );
  }
  agent.store.remove(RECOVERY_CATEGORIES.recovery, 'prepared');
  forgetReleases(agent);
  return prepared;
}
