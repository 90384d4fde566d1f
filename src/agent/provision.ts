/**
 * Provisioning agents (docs/agents.md): an agent's signing and key-agreement keys in its
 * wallet; the first edge agent, which also creates the owner's link secret and policy (itself
 * with every flag) and, if asked, a public DID; and registering a cloud agent at an agency.
 */
import { z } from 'zod';
import { randomBytes } from '../crypto/index.js';
import { DkmsError, isDkmsError } from '../errors.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../ledger/build.js';
import type { Signer } from '../crypto/index.js';
import { subjectOf, type LedgerEvent } from '../ledger/events.js';
import type { Did, PolicyAddress, Service } from '../ledger/events.js';
import { recoveryKeyDigest } from '../policy/authority.js';
import { ALL_FLAGS } from '../policy/flags.js';
import type { Wallet } from '../wallet/index.js';
import { AgencyClient } from '../agency/agency-client.js';
import { AGENT_KX_KEY, AGENT_SIGN_KEY, CATEGORIES, PROVISIONAL_RECOVERY_KEY, type Cloud, type Profile } from './agent-store.js';
import { EdgeAgent } from './edge-agent.js';

export interface AgentKeys {
  readonly key: string;
  readonly kx: string;
}

/** Creates the agent's keys, or returns them if this wallet (or this agent's) already has them. */
export function provisionKeys(holder: Pick<Wallet, 'listKeys' | 'getKey' | 'createKey'> | EdgeAgent): AgentKeys {
  const wallet = holder instanceof EdgeAgent ? holder.wallet : holder;
  const have = new Set(wallet.listKeys().map((k) => k.name));
  const key = have.has(AGENT_SIGN_KEY) ? wallet.getKey(AGENT_SIGN_KEY) : wallet.createKey(AGENT_SIGN_KEY, 'ed25519');
  const kx = have.has(AGENT_KX_KEY) ? wallet.getKey(AGENT_KX_KEY) : wallet.createKey(AGENT_KX_KEY, 'x25519');
  if (key.type !== 'ed25519' || kx.type !== 'x25519')
    throw new DkmsError('KEY_WRONG_TYPE', `wallet keys '${AGENT_SIGN_KEY}'/'${AGENT_KX_KEY}' have the wrong types`);
  return { key: key.publicKey, kx: kx.publicKey };
}

export function agentSigner(wallet: Pick<Wallet, 'signer'>): Signer {
  return wallet.signer(AGENT_SIGN_KEY);
}

export interface InitOptions {
  readonly label: string;
  readonly ledgerUrl: string;
  /** Also create a public DID controlled by the new policy, with these services. */
  readonly did?: { readonly services: readonly Service[] };
}

/**
 * What a first agent's set-up has signed and not yet seen through: the events exactly as
 * signed, so that a set-up that stopped half way (the ledger unreachable, the process killed)
 * submits the same events again when re-run, and ends with one policy, not a second one.
 */
const PendingInitSchema = z.object({
  label: z.string(),
  ledger: z.string(),
  create: z.unknown(),
  did: z.unknown().optional(),
});
const PENDING_INIT = 'pending-init';

/** Submits an event that may already be on the ledger (a re-run after a lost answer): its subject either way. */
async function submitOnce(agent: EdgeAgent, event: LedgerEvent): Promise<string> {
  try {
    return (await agent.ledger.submit(event)).subject;
  } catch (e) {
    if (!isDkmsError(e, 'EVENT_REPLAY')) throw e;
    return subjectOf(event);
  }
}

/**
 * The first edge agent: keys, link secret, the owner's policy with this agent holding every flag,
 * optionally a public DID. The policy's recovery commitment is to a provisional recovery key
 * kept in this wallet until `dkms recovery setup` replaces it with one derived from the recovery
 * secret. Resumable: the events are signed and kept before they are submitted, so a set-up that
 * failed after one of them reached the ledger completes with the same events when run again. A
 * set-up that completed is AGENT_EXISTS; one that completed without the DID asked for now gets
 * the DID.
 */
export async function initFirstAgent(agent: EdgeAgent, options: InitOptions): Promise<Profile> {
  const { wallet, store } = agent;
  if (store.hasProfile()) {
    const profile = store.profile();
    if (options.did === undefined || profile.did !== undefined)
      throw new DkmsError('AGENT_EXISTS', `this data directory already holds agent '${profile.label}' of ${profile.policy}`);
  }
  const keys = provisionKeys(wallet);
  if (store.linkSecret() === undefined) store.saveLinkSecret(randomBytes(32));
  const recovery = wallet.listKeys('ed25519').some((k) => k.name === PROVISIONAL_RECOVERY_KEY)
    ? wallet.getKey(PROVISIONAL_RECOVERY_KEY)
    : wallet.createKey(PROVISIONAL_RECOVERY_KEY, 'ed25519');
  const signer = agentSigner(wallet);
  let pending = store.read(CATEGORIES.agent, PENDING_INIT, PendingInitSchema);
  if (pending !== undefined && pending.ledger !== options.ledgerUrl) {
    throw new DkmsError('BAD_INPUT', `a set-up begun against the ledger at ${pending.ledger} is not finished: run it again with that ledger`);
  }
  if (pending === undefined) {
    const create = store.hasProfile()
      ? undefined
      : signEvent(policyCreate([{ key: keys.key, kx: keys.kx, flags: ALL_FLAGS }], { digests: [recoveryKeyDigest(recovery.publicKey)], threshold: 1 }), [
          signer,
        ]);
    const policy = (create === undefined ? store.profile().policy : subjectOf(create)) as PolicyAddress;
    const did = options.did === undefined ? undefined : signEvent(didCreate(policy, options.did.services), [signer]);
    pending = { label: options.label, ledger: options.ledgerUrl, create: create ?? null, ...(did === undefined ? {} : { did }) };
    store.write(CATEGORIES.agent, PENDING_INIT, pending);
  }
  const existing = store.hasProfile() ? store.profile() : undefined;
  const policy = (existing?.policy ?? (await submitOnce(agent, pending.create as LedgerEvent))) as PolicyAddress;
  const did = pending.did === undefined ? existing?.did : ((await submitOnce(agent, pending.did as LedgerEvent)) as Did);
  const profile: Profile = existing ?? {
    v: 1,
    label: pending.label,
    policy,
    ledger: pending.ledger,
    key: keys.key,
    kx: keys.kx,
    created: new Date().toISOString(),
  };
  const done: Profile = { ...profile, ...(did === undefined ? {} : { did }) };
  wallet.transaction(() => {
    store.saveProfile(done);
    store.remove(CATEGORIES.agent, PENDING_INIT);
  });
  await agent.refreshAgents();
  agent.labelAgent(keys.key, done.label);
  return done;
}

/**
 * Registers this owner's cloud agent at `agencyUrl` and grants it `flags` on the ledger (none
 * by default: a relay and mailbox, not a signer). The caller has the owner's consent.
 */
export async function registerCloudAgent(agent: EdgeAgent, agencyUrl: string, flags: number): Promise<Cloud> {
  const profile = agent.profile;
  const client = new AgencyClient(agencyUrl, agent.signingKey(), agent.options);
  const info = await client.register(profile.policy);
  const record = await agent.policy();
  const current = record.policy.agents.find((a) => a.key === info.key);
  if (current === undefined || current.flags !== flags || current.kx !== info.kx) {
    const grant = signEvent(nextEvent('policy.grant', record.subject, record, { agent: { key: info.key, kx: info.kx, flags } }), [agent.signingKey()]);
    await agent.ledger.submit(grant);
  }
  await client.sync(info.id);
  const cloud: Cloud = { agency: client.url, id: info.id, key: info.key, kx: info.kx, endpoint: info.endpoint, routingKey: info.routingKey, did: info.did };
  agent.store.saveProfile({ ...profile, cloud });
  await agent.refreshAgents();
  agent.labelAgent(info.key, 'cloud');
  return cloud;
}
