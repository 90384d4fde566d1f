/**
 * Recovery on a new device from R (DESIGN.md section 8), however R was rebuilt (paper wallet or
 * trustees): find the owner's backups by R's locator, learn which recovery key the policy
 * commits to, fetch the newest backup with a request that key signs, decrypt it into this
 * device's wallet (everything but the old device's own agent keys), and submit `policy.recover`:
 * the old agents out, this agent in with every flag, the cloud agent kept, the next recovery key
 * committed. Then the agency routes to this agent, and every connection is rotated to this
 * agent's keys so peers stop trusting the lost devices.
 */
import { z } from 'zod';
import { AgencyClient, fetchBackupIndex } from '../agent/agency-client.js';
import { AGENT_KX_KEY, AGENT_SIGN_KEY, CATEGORIES, PROVISIONAL_RECOVERY_KEY, ProfileSchema, type Cloud, type Profile } from '../agent/agent-store.js';
import { connections, rotateConnection } from '../agent/connections.js';
import type { EdgeAgent } from '../agent/edge-agent.js';
import { agentSigner, provisionKeys } from '../agent/provision.js';
import { fromUtf8 } from '../crypto/index.js';
import { DkmsError, isDkmsError } from '../errors.js';
import { nextEvent, signEvent } from '../ledger/build.js';
import type { LedgerEvent, PolicyAddress } from '../ledger/events.js';
import type { PolicyRecord } from '../ledger/state.js';
import { ALL_FLAGS } from '../policy/flags.js';
import { DEFAULT_RULES, type Agent } from '../policy/types.js';
import { KEY_CATEGORY } from '../wallet/keys.js';
import { mergeBackup, parseBackup } from './backup.js';
import { forgetReleases } from './requests.js';
import { RecoveryKeys } from './secret.js';
import { finishChange, makeBackup } from './setup.js';
import { readPrepared, readSetup, type RecoverySetup } from './state.js';

/** What a restore left to do once a delayed recovery completes. */
const AfterSchema = z.object({ oldAgents: z.array(z.string()), index: z.number().int(), until: z.string() });

/** What a recovery did once it took effect, and what it could not do (to retry by hand). */
export interface AfterRecovery {
  readonly rotated: string[];
  readonly unrotated: string[];
  readonly warnings: string[];
}

export type RestoreOutcome =
  | ({ readonly state: 'recovered'; readonly profile: Profile; readonly backupVersion: number; readonly items: number } & AfterRecovery)
  | { readonly state: 'pending'; readonly profile: Profile; readonly until: string; readonly backupVersion: number; readonly items: number };

/** Keys and items of the old device that a restore leaves behind: its identity as an agent. */
const OLD_KEYS = new Set([AGENT_SIGN_KEY, AGENT_KX_KEY, PROVISIONAL_RECOVERY_KEY]);
const SKIPPED = new Set<string>([CATEGORIES.agents, CATEGORIES.invitation, CATEGORIES.approval, CATEGORIES.request, CATEGORIES.myRequest, CATEGORIES.releasedShare]);

export interface RestoreOptions {
  /** The agency holding the backups (the paper wallet names it). */
  readonly agency: string;
  /** A backup version other than the newest. */
  readonly version?: number;
  /** A backup kept in a file (`--backup-file`), used instead of the agency's: when the agency is gone. */
  readonly backup?: Uint8Array;
  readonly fetch?: typeof fetch;
}

/** The backup to restore, the policy it is of, and the cloud agent the agency says it has. */
async function findBackup(keys: RecoveryKeys, options: RestoreOptions, ledger: EdgeAgent['ledger']) {
  const clientOptions = options.fetch === undefined ? {} : { fetch: options.fetch };
  if (options.backup !== undefined) {
    const { header } = parseBackup(options.backup);
    if (header.backupKey !== keys.backupKey) throw new DkmsError('BACKUP_UNREADABLE', 'this backup file was encrypted to another recovery secret');
    const resolved = await ledger.resolvePolicy(header.policy as PolicyAddress);
    return { resolved, signer: keys.committedSigner(resolved.record.policy.recovery), data: options.backup, version: 0, cloud: undefined };
  }
  const index = await fetchBackupIndex(options.agency, keys.locator, clientOptions);
  const resolved = await ledger.resolvePolicy(index.policy as PolicyAddress);
  const signer = keys.committedSigner(resolved.record.policy.recovery);
  const fetched = await new AgencyClient(options.agency, { key: signer.key, sign: signer.sign }, clientOptions).getBackup(keys.locator, options.version);
  const c = index.cloud;
  const cloud: Cloud = { agency: options.agency.replace(/\/+$/, ''), id: c.id, key: c.key, kx: c.kx, endpoint: c.endpoint, routingKey: c.routingKey, did: c.did };
  return { resolved, signer, data: fetched.data, version: fetched.version, cloud };
}

/**
 * Restores the owner onto this device (its wallet open in `agent`, with no agent profile yet)
 * from the recovery secret. The caller wipes `secret`.
 */
export async function restoreFromSecret(agent: EdgeAgent, secret: Uint8Array, options: RestoreOptions): Promise<RestoreOutcome> {
  if (agent.store.hasProfile()) throw new DkmsError('AGENT_EXISTS', `this data directory already holds agent '${agent.store.profile().label}': restore into a new one`);
  const keys = new RecoveryKeys(secret);
  try {
    const { resolved, signer, data, version, cloud: fromAgency } = await findBackup(keys, options, agent.ledger);

    const mine = provisionKeys(agent.wallet);
    let oldProfile: Profile | undefined;
    const { items } = await mergeBackup(agent.wallet, data, keys, (_profile, item) => {
      if (item.category === CATEGORIES.agent && item.name === 'profile') {
        oldProfile = ProfileSchema.parse(JSON.parse(fromUtf8(item.value)));
        return false;
      }
      if (item.category === KEY_CATEGORY) return !OLD_KEYS.has(item.name);
      if (item.category === CATEGORIES.recovery) return item.name === 'setup';
      return !SKIPPED.has(item.category);
    });
    if (oldProfile === undefined) throw new DkmsError('BACKUP_UNREADABLE', 'the backup holds no agent profile');

    // From a file, the cloud agent is the one the backed-up device knew (if any).
    const cloud = fromAgency ?? oldProfile.cloud;
    const { cloud: _old, ...rest } = oldProfile;
    const profile: Profile = { ...rest, key: mine.key, kx: mine.kx, ...(cloud === undefined ? {} : { cloud }), created: new Date().toISOString() };
    const mineAgent: Agent = { key: mine.key, kx: mine.kx, flags: ALL_FLAGS };
    const replaced = await submitRecover(agent, resolved.record.subject, (current) => {
      const kept = current.policy.agents.filter((a) => a.key === cloud?.key);
      const delay = current.policy.recovery.delay ?? 0;
      const next = { digests: [keys.signer(signer.index + 1).digest], threshold: 1, ...(delay > 0 ? { delay } : {}) };
      const event = nextEvent('policy.recover', current.subject, current, { next, agents: [mineAgent, ...kept], rules: DEFAULT_RULES });
      return signEvent(event, [{ publicKey: signer.key, sign: signer.sign }, agentSigner(agent.wallet)]);
    });
    const oldAgents = replaced.filter((k) => k !== cloud?.key);
    const nextIndex = signer.index + 1;
    agent.store.saveProfile(profile);

    const after = await agent.policy();
    if (after.policy.pending !== undefined) {
      agent.store.write(CATEGORIES.recovery, 'after-restore', { oldAgents, index: nextIndex, until: after.policy.pending.until });
      return { state: 'pending', profile, until: after.policy.pending.until, backupVersion: version, items };
    }
    const done = await afterRecovery(agent, oldAgents, nextIndex);
    return { state: 'recovered', profile, ...done, backupVersion: version, items };
  } finally {
    keys.wipe();
  }
}

/** Races lost to other writers of the policy (a thief's device, say): read it again and re-sign. */
const RACES = new Set(['EVENT_STALE_SEQ', 'EVENT_BAD_PREV', 'EVENT_FORK']);

/** Submits the recovery, rebuilt against the latest policy until no other event slips in before it; returns the agents it replaced. */
async function submitRecover(agent: EdgeAgent, policy: PolicyAddress, build: (current: PolicyRecord) => LedgerEvent): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const current = (await agent.ledger.resolvePolicy(policy)).record;
    try {
      await agent.ledger.submit(build(current));
      return current.policy.agents.map((a) => a.key);
    } catch (e) {
      if (!isDkmsError(e) || !RACES.has(e.code) || attempt >= 20) throw e;
    }
  }
}

/** Once the recovery has taken effect: agency routes, connections rotated, setup updated, a backup. */
async function afterRecovery(agent: EdgeAgent, oldAgents: readonly string[], index: number): Promise<AfterRecovery> {
  await agent.refreshAgents();
  agent.labelAgent(agent.profile.key, agent.profile.label);
  const warnings: string[] = [];
  // The ledger already says who the owner's agents are: what follows is best done now, and
  // reported rather than failed, since none of it can be undone by failing.
  const attempt = async (what: string, step: () => Promise<unknown>) => {
    try {
      await step();
    } catch (e) {
      if (!isDkmsError(e)) throw e;
      warnings.push(`${what}: ${e.code}: ${e.message}`);
    }
  };
  const cloud = agent.profile.cloud;
  if (cloud !== undefined) {
    agent.labelAgent(cloud.key, 'cloud');
    await attempt('agency routes', () => agent.agency().sync(cloud.id));
  }
  const rotated: string[] = [];
  const unrotated: string[] = [];
  for (const record of connections(agent)) {
    if (record.state !== 'active') continue;
    if (record.mine === undefined) {
      unrotated.push(record.id);
      continue;
    }
    try {
      await rotateConnection(agent, record, oldAgents);
      rotated.push(record.id);
    } catch (e) {
      if (!isDkmsError(e)) throw e;
      unrotated.push(record.id);
    }
  }
  const setup = readSetup(agent);
  if (setup !== undefined) {
    agent.store.write(CATEGORIES.recovery, 'setup', { ...setup, index } satisfies RecoverySetup);
    if (cloud !== undefined) await attempt('backup', () => makeBackup(agent));
  }
  agent.store.remove(CATEGORIES.recovery, 'after-restore');
  forgetReleases(agent);
  return { rotated, unrotated, warnings };
}

/**
 * Completes a delayed recovery (or change) this agent started, once the ledger's time has passed
 * its delay. A pending recovery someone else started is never completed from here: that is
 * what `cancelRecovery` is for.
 */
export async function completeRecovery(agent: EdgeAgent): Promise<AfterRecovery | { finished: 'change' }> {
  const record = await agent.policy();
  const after = agent.store.read(CATEGORIES.recovery, 'after-restore', AfterSchema);
  const prepared = readPrepared(agent);
  const pending = record.policy.pending;
  if (pending !== undefined) {
    const ours = (pending.agents ?? []).some((a) => a.key === agent.profile.key) || (prepared !== undefined && pending.next.digests.includes(prepared.next.digest));
    if (!ours) throw new DkmsError('RECOVERY_PENDING', `the pending recovery (started ${pending.since}) was not started by this agent: if it is not yours, \`dkms recovery cancel\``);
    await agent.ledger.submit(signEvent(nextEvent('policy.complete', record.subject, record, {}), [agentSigner(agent.wallet)]));
  }
  const now = (await agent.policy()).policy;
  if (after !== undefined) {
    if (!now.agents.some((a) => a.key === agent.profile.key)) {
      throw new DkmsError('EVENT_INVALID', 'this recovery was cancelled by the owner\'s agents: it will not complete');
    }
    return afterRecovery(agent, after.oldAgents, after.index);
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
  await agent.ledger.submit(signEvent(nextEvent('policy.cancel', record.subject, record, {}), [agentSigner(agent.wallet)]));
  return { cancelled: record.policy.pending.since };
}
