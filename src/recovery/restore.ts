/**
 * Recovery on a new device from R (docs/recovery.md), however R was rebuilt (paper wallet or
 * trustees): find the owner's backups by R's locator, learn which recovery key the policy
 * commits to, fetch the newest backup with a request that key signs, decrypt it into this
 * device's wallet (everything but the old device's own agent keys), and submit `policy.recover`:
 * the old agents out, this agent in with every flag, the cloud agent kept, the next recovery key
 * committed. Then the agency routes to this agent, and every connection is rotated to this
 * agent's keys so peers stop trusting the lost devices.
 */
import { z } from 'zod';
import { AgencyClient, fetchBackupIndex } from '../agency/agency-client.js';
import { AGENT_KX_KEY, AGENT_SIGN_KEY, CATEGORIES, PROVISIONAL_RECOVERY_KEY, ProfileSchema, type Cloud, type Profile } from '../agent/agent-store.js';
import { connections, rotateConnection } from '../agent/connections.js';
import type { EdgeAgent } from '../agent/edge-agent.js';
import { provisionKeys } from '../agent/provision.js';
import { fromUtf8 } from '../crypto/index.js';
import { DkmsError, isDkmsError } from '../errors.js';
import { nextEvent, signEvent } from '../ledger/build.js';
import type { ResolvedPolicy } from '../ledger/client.js';
import type { Did, LedgerEvent, PolicyAddress } from '../ledger/events.js';
import type { PolicyRecord } from '../ledger/state.js';
import { ALL_FLAGS, FLAGS, hasFlag } from '../policy/flags.js';
import { DEFAULT_RULES, type Agent } from '../policy/types.js';
import type { WalletItem } from '../wallet/index.js';
import { KEY_CATEGORY } from '../wallet/keys.js';
import { backupItem, mergeBackup, parseBackup, type BackupHeader } from './backup.js';
import { forgetReleases } from './requests.js';
import { RecoveryKeys, type RecoverySigner } from './secret.js';
import { finishChange, makeBackup } from './setup.js';
import { readPrepared, readSetup, type RecoverySetup } from './state.js';
import { retry } from '../retry.js';
import { RECOVERY_CATEGORIES } from './categories.js';

/**
 * What a restore keeps between its steps, written with the profile before `policy.recover` is
 * submitted, so that a restore interrupted at any point (a lost answer, a crash, a delay) is
 * resumed rather than started again: `submitting` until the ledger shows the recovery, then
 * `pending` during a delay, then `rotating` while connections remain to rotate.
 */
const AfterSchema = z.object({
  state: z.enum(['submitting', 'pending', 'rotating']),
  /** The next recovery key's index, and where backups go: derived from R, never from the backup. */
  index: z.number().int(),
  backupKey: z.string(),
  locator: z.string(),
  until: z.string().optional(),
  unrotated: z.array(z.string()).default([]),
  /** The backup restored, for a resumed restore to report as the first run would have. */
  backup: z.object({ version: z.number().int(), by: z.string(), items: z.number().int() }).optional(),
});
type After = z.infer<typeof AfterSchema>;
const AFTER = 'after-restore';

/** What a recovery did once it took effect, and what it could not do (to retry by hand). */
export interface AfterRecovery {
  readonly rotated: string[];
  readonly unrotated: string[];
  readonly warnings: string[];
}

interface Restored {
  readonly profile: Profile;
  readonly backupVersion: number;
  /** The agent that made the backup restored (it signed it). */
  readonly backupBy: string;
  readonly items: number;
}

export type RestoreOutcome = ({ readonly state: 'recovered' } & Restored & AfterRecovery) | ({ readonly state: 'pending'; readonly until: string } & Restored);

/** Keys and items of the old device that a restore leaves behind: its identity as an agent. */
const OLD_KEYS = new Set([AGENT_SIGN_KEY, AGENT_KX_KEY, PROVISIONAL_RECOVERY_KEY]);
const SKIPPED = new Set<string>([
  CATEGORIES.agents,
  CATEGORIES.invitation,
  CATEGORIES.approval,
  CATEGORIES.request,
  RECOVERY_CATEGORIES.myRequest,
  RECOVERY_CATEGORIES.releasedShare,
]);

export interface RestoreOptions {
  /** The agency holding the backups (the paper wallet names it). */
  readonly agency: string;
  /** A backup version other than the newest. */
  readonly version?: number;
  /** A backup kept in a file (`--backup-file`), used instead of the agency's: when the agency is gone. */
  readonly backup?: Uint8Array;
  /** The policy the caller expects (the QR code or the trustees' shares name it): any other is refused. */
  readonly policy?: string;
  readonly fetch?: typeof fetch;
  /** Hears each step as it begins, in words for a person waiting (the CLI shows them at a terminal). */
  readonly onProgress?: (step: string) => void;
}

const unreadable = (message: string) => new DkmsError('BACKUP_UNREADABLE', message);

/** A backup's header, once its signature verifies (parseBackup) and it is encrypted to R. */
function backupFor(data: Uint8Array, keys: RecoveryKeys): BackupHeader {
  const { header } = parseBackup(data);
  if (header.backupKey !== keys.backupKey) throw unreadable('this backup was encrypted to another recovery secret');
  return header;
}

/**
 * Checks that a backup speaks for the owner: it is of this policy, and the agent that signed it
 * was an ADMIN agent of the policy. An agency, a network attacker or a device without ADMIN
 * therefore cannot plant a wallet.
 */
function checkOwner(header: BackupHeader, resolved: ResolvedPolicy): BackupHeader {
  if (header.policy !== resolved.record.subject) throw unreadable(`this backup is of another policy (${header.policy.slice(0, 80)})`);
  const admin = resolved.policyHistory.some((entry) => entry.policy.agents.some((a) => a.key === header.agent && hasFlag(a.flags, FLAGS.ADMIN)));
  if (!admin) throw unreadable('this backup was not made by an ADMIN agent of the owner');
  return header;
}

interface Found {
  readonly resolved: ResolvedPolicy;
  readonly signer: RecoverySigner;
  readonly data: Uint8Array;
  readonly header: BackupHeader;
  readonly version: number;
  /** The cloud agent as the agency describes it (with its current endpoint). */
  readonly cloud?: Cloud;
}

/** BACKUP_NOT_FOUND's words for a recovery secret the agency keeps no backup under. */
export function noBackupMessage(agency: string): string {
  return `${agency.replace(/\/+$/, '')} holds no backup for this recovery secret. It may be an outdated one: a later \`dkms recovery setup\` or trustee change replaced it and deleted its backups (use your newest paper, or your trustees). Or the backups are at another agency (--agency), or the secret is not yours`;
}

/** The newest backup that passes `checkOwner` (or the version asked for), the policy it is of, and its cloud agent. */
async function findBackup(keys: RecoveryKeys, options: RestoreOptions, ledger: EdgeAgent['ledger']): Promise<Found> {
  const clientOptions = options.fetch === undefined ? {} : { fetch: options.fetch };
  if (options.backup !== undefined) {
    const header = backupFor(options.backup, keys);
    const resolved = await ledger.resolvePolicy(header.policy as PolicyAddress);
    return { resolved, signer: keys.committedSigner(resolved.record.policy.recovery), data: options.backup, header: checkOwner(header, resolved), version: 0 };
  }
  const index = await fetchBackupIndex(options.agency, keys.locator, clientOptions).catch((e: unknown) => {
    // The agency cannot say more than "none": say what that may mean, an outdated paper first.
    if (isDkmsError(e, 'BACKUP_NOT_FOUND')) throw new DkmsError('BACKUP_NOT_FOUND', noBackupMessage(options.agency));
    throw e;
  });
  const resolved = await ledger.resolvePolicy(index.policy as PolicyAddress);
  const signer = keys.committedSigner(resolved.record.policy.recovery);
  const client = new AgencyClient(options.agency, signer, clientOptions);
  const c = index.cloud;
  const cloud: Cloud = {
    agency: options.agency.replace(/\/+$/, ''),
    id: c.id,
    key: c.key,
    kx: c.kx,
    endpoint: c.endpoint,
    routingKey: c.routingKey,
    did: c.did,
  };
  const versions = options.version !== undefined ? [options.version] : index.versions.map((v) => v.version).sort((a, b) => b - a);
  let refused: unknown = new DkmsError('BACKUP_NOT_FOUND', 'this agency holds no backup for that recovery secret');
  for (const version of versions) {
    const fetched = await client.getBackup(keys.locator, version);
    try {
      return { resolved, signer, data: fetched.data, header: checkOwner(backupFor(fetched.data, keys), resolved), version: fetched.version, cloud };
    } catch (e) {
      if (!isDkmsError(e, 'BACKUP_UNREADABLE')) throw e;
      refused = e;
    }
  }
  throw refused;
}

/** Every agent the policy ever had, but this one and the cloud agent: the devices a recovery drops. */
function formerAgents(resolved: ResolvedPolicy, keep: readonly (string | undefined)[]): string[] {
  const all = new Set(resolved.policyHistory.flatMap((entry) => entry.policy.agents.map((a) => a.key)));
  return [...all].filter((k) => !keep.includes(k));
}

/**
 * Restores the owner onto this device (its wallet open in `agent`) from the recovery secret.
 * Run again in the same data directory after an interruption, it resumes. The caller wipes
 * `secret`.
 */
export async function restoreFromSecret(agent: EdgeAgent, secret: Uint8Array, options: RestoreOptions): Promise<RestoreOutcome> {
  const keys = new RecoveryKeys(secret);
  try {
    if (agent.store.hasProfile()) {
      const after = agent.store.read(RECOVERY_CATEGORIES.recovery, AFTER, AfterSchema);
      if (after === undefined)
        throw new DkmsError('AGENT_EXISTS', `this data directory already holds agent '${agent.store.profile().label}': restore into a new one`);
      return await resume(
        agent,
        keys,
        after,
        { backupVersion: after.backup?.version ?? 0, backupBy: after.backup?.by ?? '', items: after.backup?.items ?? 0 },
        options.onProgress,
      );
    }
    const progress = options.onProgress ?? (() => undefined);
    progress(options.backup === undefined ? `Finding your backups at ${options.agency}…` : 'Reading the backup file…');
    const found = await findBackup(keys, options, agent.ledger);
    const policy = found.resolved.record.subject;
    if (options.policy !== undefined && options.policy !== policy)
      throw unreadable(`the backups of this recovery secret are of ${policy}, not of ${options.policy.slice(0, 80)}`);

    // What the backup says of the old device is read and checked before anything is written:
    // a backup refused here leaves this wallet as it was.
    const stored = await backupItem(found.data, keys, CATEGORIES.agent, 'profile');
    const oldProfile = stored === undefined ? undefined : ProfileSchema.safeParse(JSON.parse(fromUtf8(stored))).data;
    if (oldProfile === undefined || oldProfile.policy !== policy) throw unreadable('the backup holds no agent profile of this policy');
    // The cloud agent kept in the policy is the one the signed backup names; the agency's
    // (unsigned) description must agree with it, and supplies only its current endpoint.
    if (found.cloud !== undefined && oldProfile.cloud !== undefined && found.cloud.key !== oldProfile.cloud.key) {
      throw new DkmsError('AGENCY_BAD_RESPONSE', 'the agency describes another cloud agent than the backup names');
    }
    const cloud = oldProfile.cloud === undefined ? undefined : (found.cloud ?? oldProfile.cloud);
    const { cloud: _old, did, ...rest } = oldProfile;
    const ownDid = did !== undefined && (await controlledBy(agent, did, policy)) ? did : undefined;

    // Then written: this device's keys and the backup's items (again, without duplicates, if a
    // restore stopped here before), and the profile with the step reached, together.
    const mine = provisionKeys(agent.wallet);
    const restores = (item: WalletItem) => {
      if (item.category === CATEGORIES.agent && item.name === 'profile') return false;
      if (item.category === KEY_CATEGORY) return !OLD_KEYS.has(item.name);
      if (item.category === RECOVERY_CATEGORIES.recovery) return item.name === 'setup';
      return !SKIPPED.has(item.category);
    };
    progress(found.version === 0 ? 'Restoring your wallet from the backup file…' : `Restoring your wallet from backup version ${found.version}…`);
    // Counted as restored whether this run or an interrupted one added them.
    let items = 0;
    await mergeBackup(agent.wallet, found.data, keys, (_profile, item) => {
      const taken = restores(item);
      if (taken) items += 1;
      return taken;
    });
    const profile: Profile = {
      ...rest,
      ledger: agent.ledger.url,
      key: mine.key,
      kx: mine.kx,
      ...(ownDid === undefined ? {} : { did: ownDid }),
      ...(cloud === undefined ? {} : { cloud }),
      created: new Date().toISOString(),
    };
    const backup = { version: found.version, by: found.header.agent, items };
    const after: After = { state: 'submitting', index: found.signer.index + 1, backupKey: keys.backupKey, locator: keys.locator, unrotated: [], backup };
    agent.wallet.transaction(() => {
      agent.store.saveProfile(profile);
      agent.store.write(RECOVERY_CATEGORIES.recovery, AFTER, after);
    });
    return await resume(agent, keys, after, { backupVersion: backup.version, backupBy: backup.by, items }, progress);
  } finally {
    keys.wipe();
  }
}

/**
 * Is `did` a DID of `policy` on the ledger? (A backup's word for it is not enough.) A DID the
 * ledger proves absent, or that is no did:dkms DID, is not; a ledger that cannot be read or
 * verified fails the restore, to be run again, rather than drop the owner's DID.
 */
async function controlledBy(agent: EdgeAgent, did: string, policy: string): Promise<boolean> {
  try {
    return (await agent.ledger.resolveDidRecord(did as Did)).record.controller === policy;
  } catch (e) {
    if (isDkmsError(e, 'SUBJECT_NOT_FOUND') || isDkmsError(e, 'BAD_INPUT')) return false;
    throw e;
  }
}

/** Submits the recovery unless the ledger already shows it, then carries on from wherever the restore stopped. */
async function resume(
  agent: EdgeAgent,
  keys: RecoveryKeys,
  after: After,
  restored: Omit<Restored, 'profile'>,
  progress: (step: string) => void = () => undefined,
): Promise<RestoreOutcome> {
  const profile = agent.profile;
  const address = profile.policy as PolicyAddress;
  let resolved = await agent.ledger.resolvePolicy(address);
  const landed = resolved.record.policy.agents.some((a) => a.key === profile.key);
  const waiting = (resolved.record.policy.pending?.agents ?? []).some((a) => a.key === profile.key);
  if (!landed && !waiting) {
    if (after.state !== 'submitting') {
      forgetReleases(agent);
      throw new DkmsError('EVENT_INVALID', "this recovery was cancelled by the owner's agents: it will not complete");
    }
    progress('Replacing your old agents with this device on the ledger…');
    await submitRecover(agent, resolved.record, (record) => {
      const signer = keys.committedSigner(record.policy.recovery);
      const kept = record.policy.agents.filter((a) => a.key === profile.cloud?.key);
      const delay = record.policy.recovery.delay ?? 0;
      const next = { digests: [keys.signer(signer.index + 1).digest], threshold: 1, ...(delay > 0 ? { delay } : {}) };
      const mine: Agent = { key: profile.key, kx: profile.kx, flags: ALL_FLAGS };
      const event = nextEvent('policy.recover', record.subject, record, { next, agents: [mine, ...kept], rules: DEFAULT_RULES });
      return signEvent(event, [signer, agent.signingKey()]);
    });
    resolved = await agent.ledger.resolvePolicy(address);
  }
  const pending = resolved.record.policy.pending;
  if (pending !== undefined && (pending.agents ?? []).some((a) => a.key === profile.key)) {
    agent.store.write(RECOVERY_CATEGORIES.recovery, AFTER, { ...after, state: 'pending', until: pending.until } satisfies After);
    return { state: 'pending', profile, until: pending.until, ...restored };
  }
  progress('Moving your mailbox and connections to this device, and backing up…');
  return { state: 'recovered', profile, ...restored, ...(await afterRecovery(agent, after, resolved)) };
}

/** Races lost to other writers of the policy (a thief's device, say): read it again and re-sign. */
const RACES = new Set(['EVENT_STALE_SEQ', 'EVENT_BAD_PREV', 'EVENT_FORK']);

/** How long a recovery keeps trying while other writers of the policy get their events in first. */
const RECOVER_RACE_MS = 30_000;

/** Submits the recovery built against `current`, rebuilt against the latest policy until no other event slips in before it. */
async function submitRecover(agent: EdgeAgent, current: PolicyRecord, build: (current: PolicyRecord) => LedgerEvent): Promise<void> {
  await retry(() => agent.ledger.submit(build(current)), {
    retryOn: (e) => isDkmsError(e) && RACES.has(e.code),
    deadlineMs: RECOVER_RACE_MS,
    baseDelayMs: 20,
    maxDelayMs: 1_000,
    beforeRetry: async () => {
      current = (await agent.ledger.resolvePolicy(current.subject)).record;
    },
  });
}

/**
 * Once the recovery has taken effect: agency routes, connections rotated (dropping every former
 * agent's keys), the setup pointed at R's backup key, a backup. Connections that could not be
 * rotated are remembered, and `completeRecovery` tries them again.
 */
async function afterRecovery(agent: EdgeAgent, after: After, resolved: ResolvedPolicy): Promise<AfterRecovery> {
  await agent.refreshAgents(resolved.record);
  agent.labelAgent(agent.profile.key, agent.profile.label);
  const warnings: string[] = [];
  // The ledger already says who the owner's agents are: what follows is best done now, and
  // reported rather than failed, since none of it can be undone by failing.
  const attempt = async (what: string, step: () => Promise<unknown>): Promise<boolean> => {
    try {
      await step();
      return true;
    } catch (e) {
      if (!isDkmsError(e)) throw e;
      warnings.push(`${what}: ${e.code}: ${e.message}`);
      return false;
    }
  };
  const cloud = agent.profile.cloud;
  let synced = true;
  if (cloud !== undefined) {
    agent.labelAgent(cloud.key, 'cloud');
    synced = await attempt('agency routes', () => agent.agency().sync(cloud.id));
  }
  const former = formerAgents(resolved, [agent.profile.key, cloud?.key]);
  const retry = after.state === 'rotating' ? new Set(after.unrotated) : undefined;
  const rotated: string[] = [];
  // Connections this agent holds no keys of cannot be rotated by it: only reported. Those that
  // failed are kept to retry.
  const keyless: string[] = [];
  const failed: string[] = [];
  for (const record of connections(agent)) {
    if (record.state !== 'active' || (retry !== undefined && !retry.has(record.id))) continue;
    if (record.mine === undefined) keyless.push(record.id);
    else if (await attempt(`connection '${record.label}'`, () => rotateConnection(agent, record, former))) rotated.push(record.id);
    else failed.push(record.id);
  }
  const setup = readSetup(agent) ?? { v: 1 as const, offline: false, created: new Date().toISOString() };
  agent.store.write(RECOVERY_CATEGORIES.recovery, 'setup', {
    ...setup,
    backupKey: after.backupKey,
    locator: after.locator,
    index: after.index,
    delay: resolved.record.policy.recovery.delay ?? 0,
  } satisfies RecoverySetup);
  const backedUp = cloud === undefined || (await attempt('backup', () => makeBackup(agent)));
  // What failed is kept to retry: running the restore again (or `recovery complete`) does the
  // sync, the connections not rotated and the backup again, and nothing else twice.
  if (failed.length > 0 || !synced || !backedUp)
    agent.store.write(RECOVERY_CATEGORIES.recovery, AFTER, { ...after, state: 'rotating', unrotated: failed } satisfies After);
  else agent.store.remove(RECOVERY_CATEGORIES.recovery, AFTER);
  forgetReleases(agent);
  return { rotated, unrotated: [...keyless, ...failed], warnings };
}

/**
 * Completes a delayed recovery (or change) this agent started, once the ledger's time has passed
 * its delay. A pending recovery someone else started is never completed from here: that is
 * what `cancelRecovery` is for.
 */
export async function completeRecovery(agent: EdgeAgent): Promise<AfterRecovery | { finished: 'change' }> {
  const record = await agent.policy();
  const after = agent.store.read(RECOVERY_CATEGORIES.recovery, AFTER, AfterSchema);
  const prepared = readPrepared(agent);
  const pending = record.policy.pending;
  if (pending !== undefined) {
    const ours =
      (pending.agents ?? []).some((a) => a.key === agent.profile.key) || (prepared !== undefined && pending.next.digests.includes(prepared.next.digest));
    if (!ours)
      throw new DkmsError(
        'RECOVERY_PENDING',
        `the pending recovery (started ${pending.since}) was not started by this agent: if it is not yours, \`dkms recovery cancel\``,
      );
    await agent.ledger.submit(signEvent(nextEvent('policy.complete', record.subject, record, {}), [agent.signingKey()]));
  }
  const resolved = await agent.ledger.resolvePolicy(record.subject);
  const now = resolved.record.policy;
  if (after !== undefined) {
    if (!now.agents.some((a) => a.key === agent.profile.key)) {
      forgetReleases(agent);
      throw new DkmsError('EVENT_INVALID', "this recovery was cancelled by the owner's agents: it will not complete");
    }
    return afterRecovery(agent, after, resolved);
  }
  if (prepared !== undefined && now.recovery.digests.includes(prepared.next.digest)) {
    await finishChange(agent, prepared);
    return { finished: 'change' };
  }
  throw new DkmsError('EVENT_INVALID', 'no delayed recovery of this agent is waiting to complete');
}

/** Cancels a pending recovery: this agent signs `policy.cancel` (the policy's `rules` threshold applies). */
export async function cancelRecovery(agent: EdgeAgent): Promise<{ cancelled: string }> {
  const record = await agent.policy();
  if (record.policy.pending === undefined) throw new DkmsError('EVENT_INVALID', 'no recovery is pending for this policy');
  await agent.ledger.submit(signEvent(nextEvent('policy.cancel', record.subject, record, {}), [agent.signingKey()]));
  return { cancelled: record.policy.pending.since };
}
