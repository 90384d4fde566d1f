/**
 * A world for in-process agent tests over loopback HTTP: a real ledger node, a real agency,
 * owners with a first agent and a cloud agent, devices paired to them, ways to let every
 * agent's mail settle, and an owner with trustees and social recovery set up.
 */
import { join } from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { CONNECTION_RESPONSE, acceptConnection, findConnection, inviteConnection, type ConnectionRecord } from '../../src/agent/connections.js';
import { EdgeAgent, type Handlers, type ReceiveEntry } from '../../src/agent/edge-agent.js';
import { answerInvitation, awaitWelcome, completePairing, createInvitation, parseInvitation, waitingHandlers } from '../../src/agent/pairing.js';
import { ALL_HANDLERS } from '../../src/recovery/protocols.js';
import { initFirstAgent, provisionKeys, registerCloudAgent } from '../../src/agent/provision.js';
import { randomBytes } from '../../src/crypto/index.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { addRecoveryRequest, approveRecoveryRequest, collectReleases, createRecoveryRequest, rebuiltSecrets } from '../../src/recovery/requests.js';
import { commitRecovery, prepareRecovery } from '../../src/recovery/setup.js';
import { trustees } from '../../src/recovery/state.js';
import { answerOffer, inviteTrustee, trusteeOffers } from '../../src/recovery/trustees.js';
import { startAgency, type AgencyServiceOptions } from '../../src/server/agency-service.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { startLedger } from './lying.js';
import { tempDir } from './tmp.js';

export interface World {
  readonly ledgerUrl: string;
  readonly agencyUrl: string;
  /** A fresh agent over a new wallet (raw secret: no Argon2), not yet provisioned. */
  newAgent(): Promise<EdgeAgent>;
  /** A new owner: first agent, policy on the ledger, cloud agent with no flags. */
  makeOwner(label: string): Promise<EdgeAgent>;
  /** Pairs a new device to `owner` with `flags`, the whole exchange run to the welcome. */
  pairAgent(owner: EdgeAgent, label: string, flags: number): Promise<EdgeAgent>;
}

export interface WorldOptions {
  readonly ledgerClock?: () => number;
  readonly agency?: Partial<AgencyServiceOptions>;
  /**
   * A second agency beside the first, with these options on top of the first's (e.g. the same
   * PostgreSQL store and agency key): every agent's request for the first agency then goes to
   * one or the other in turn, as behind a load balancer.
   */
  readonly second?: Partial<AgencyServiceOptions>;
}

export async function world(options: WorldOptions = {}): Promise<World & { readonly secondUrl?: string }> {
  const ledger = await startLedger(tempDir(), options.ledgerClock === undefined ? {} : { node: { now: options.ledgerClock } });
  const agencyOptions: AgencyServiceOptions = {
    ledgerUrl: ledger.url,
    port: 0,
    trustedLedgerKeys: [ledger.signer.multikey],
    ...(options.ledgerClock === undefined ? {} : { ledgerClock: options.ledgerClock }),
    rateLimitPerSecond: 100_000,
    agentRequestsPerSecond: 100_000,
    ...options.agency,
  };
  const agency = await startAgency(tempDir(), agencyOptions);
  onTestFinished(() => agency.close());
  const second = options.second === undefined ? undefined : await startAgency(tempDir(), { ...agencyOptions, ...options.second, publicUrl: agency.url });
  if (second !== undefined) onTestFinished(() => second.close());
  let turn = 0;
  /** Sends each request for the first agency to the first or the second in turn. */
  const balanced: typeof fetch | undefined =
    second === undefined
      ? undefined
      : (input, init) => {
          const url = String(input instanceof Request ? input.url : input);
          const to = url.startsWith(agency.url) && turn++ % 2 === 1 ? second.url + url.slice(agency.url.length) : url;
          return fetch(to, init);
        };
  const newAgent = async () => {
    const wallet = await Wallet.create(join(tempDir(), 'wallet.db'), rawSecret(randomBytes(32)));
    onTestFinished(() => wallet.close());
    // The world's agents share the ledger's clock: when a test moves it on, time has passed for all.
    const ledgerClient = new LedgerClient({
      url: ledger.url,
      trustedKeys: [ledger.signer.multikey],
      ...(options.ledgerClock === undefined ? {} : { now: options.ledgerClock }),
    });
    return new EdgeAgent(wallet, ledgerClient, balanced === undefined ? {} : { fetch: balanced });
  };
  const makeOwner = async (label: string) => {
    const agent = await newAgent();
    await initFirstAgent(agent, { label, ledgerUrl: ledger.url });
    await registerCloudAgent(agent, agency.url, 0);
    return agent;
  };
  const pairAgent = async (owner: EdgeAgent, label: string, flags: number) => {
    const device = await newAgent();
    const keys = provisionKeys(device.wallet);
    const created = createInvitation(owner, { flags, label });
    const invitation = parseInvitation(created.text);
    await answerInvitation(device, invitation, created.passcode, label, keys);
    expect(pairingRequest(await drainPairing(owner, invitation.id), invitation.id)).toBeDefined();
    await completePairing(owner, invitation.id, true);
    await awaitWelcome(device, invitation, label, Date.now() + 15_000);
    return device;
  };
  return { ledgerUrl: ledger.url, agencyUrl: agency.url, newAgent, makeOwner, pairAgent, ...(second === undefined ? {} : { secondUrl: second.url }) };
}

/** Receives until the mailbox is empty; every entry, in order. */
export async function drain(agent: EdgeAgent, handlers: Handlers = ALL_HANDLERS): Promise<ReceiveEntry[]> {
  const all: ReceiveEntry[] = [];
  for (let round = 0; round < 50; round++) {
    const batch = await agent.receive(handlers);
    if (batch.length === 0) return all;
    all.push(...batch);
  }
  throw new Error('the mailbox never emptied');
}

/** Drains the inviter as `dkms agent pair` does while it waits on `invitation`. */
export const drainPairing = (owner: EdgeAgent, invitation: string) => drain(owner, { ...ALL_HANDLERS, ...waitingHandlers(invitation) });

/** Drains every agent until none has mail left (handlers that send to each other settle). */
export async function settle(...agents: EdgeAgent[]): Promise<Map<EdgeAgent, ReceiveEntry[]>> {
  const seen = new Map<EdgeAgent, ReceiveEntry[]>(agents.map((a) => [a, []]));
  for (let round = 0; round < 20; round++) {
    let any = false;
    for (const agent of agents) {
      const entries = await drain(agent);
      if (entries.length > 0) any = true;
      seen.get(agent)?.push(...entries);
    }
    if (!any) return seen;
  }
  throw new Error('the agents never settled');
}

export function pairingRequest(entries: readonly ReceiveEntry[], invitation: string): { invitation: string; key: string; label: string } | undefined {
  return entries.map((e) => e.data?.['pairing'] as { invitation: string; key: string; label: string } | undefined).find((p) => p?.invitation === invitation);
}

/** Alice invites Bob; Bob accepts; Alice receives the answer. Returns both sides' records. */
export async function connect(alice: EdgeAgent, bob: EdgeAgent): Promise<{ a: ConnectionRecord; b: ConnectionRecord }> {
  const { text } = inviteConnection(alice, bob.profile.label);
  const b = await acceptConnection(bob, text, alice.profile.label);
  const entries = await drain(alice);
  expect(entries).toEqual([expect.objectContaining({ type: CONNECTION_RESPONSE, outcome: 'handled' })]);
  const a = findConnection(alice, bob.profile.label);
  expect(a.peer).toBe(b.id);
  expect(b.peer).toBe(a.id);
  return { a, b };
}

export interface Alice {
  readonly w: World;
  readonly alice: EdgeAgent;
  readonly trustees: EdgeAgent[];
  /** The recovery secret her setup made (the test keeps it to compare; the product never does). */
  readonly secret: Uint8Array;
}

/** Alice with `n` trustees who accepted, recovery set up with `threshold` of them. */
export async function aliceWithTrustees(n: number, threshold: number, options: { delay?: number; ledgerClock?: () => number } = {}): Promise<Alice> {
  const w = await world(options.ledgerClock === undefined ? {} : { ledgerClock: options.ledgerClock });
  const alice = await w.makeOwner('alice');
  const people: EdgeAgent[] = [];
  for (let i = 1; i <= n; i++) {
    const t = await w.makeOwner(`trustee${i}`);
    await connect(alice, t);
    await inviteTrustee(alice, `trustee${i}`);
    people.push(t);
  }
  await settle(alice, ...people);
  for (const t of people) await answerOffer(t, (trusteeOffers(t)[0] as { id: string }).id, true);
  await settle(alice, ...people);
  expect(trustees(alice).map((t) => t.status)).toEqual(Array(n).fill('accepted'));
  const { secret } = await prepareRecovery(alice, {
    offline: true,
    social: { trustees: people.map((t) => t.profile.label), threshold, insist: false },
    delay: options.delay ?? 0,
  });
  await settle(alice, ...people);
  const committed = await commitRecovery(alice);
  expect(committed.state).toBe('committed');
  await settle(alice, ...people);
  return { w, alice, trustees: people, secret };
}

/** A new device asks `helpers` for their shares; each approves with the challenge the owner reads. */
export async function recoverThrough(w: World, helpers: readonly EdgeAgent[]): Promise<{ device: EdgeAgent; secrets: Uint8Array[] }> {
  const device = await w.newAgent();
  const { text, challenge, request } = createRecoveryRequest(device, { agency: w.agencyUrl, label: 'alice (new phone)' });
  for (const t of helpers) {
    addRecoveryRequest(t, text);
    await approveRecoveryRequest(t, request.id, 'alice', challenge);
  }
  await collectReleases(device);
  return { device, secrets: (await rebuiltSecrets(device)).map((r) => r.secret) };
}
