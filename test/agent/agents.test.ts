/**
 * Edge agents in process, over loopback HTTP, with a real ledger and a real agency: pairing
 * (happy path, wrong passcode, expiry, reuse, decline), m-of-n revocation with co-signers on other
 * devices, connections between two owners (invite, accept, messages, rotation, deletion), and the
 * refusals that keep them honest (replayed envelopes, connection events signed by keys the peer
 * never authorized, unknown senders), and what revoking an agent does to its mail and to the
 * connections it had joined.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AgencyClient, postEnvelope } from '../../src/agency/agency-client.js';
import { CATEGORIES, nameForPeers, type KnownAgent } from '../../src/agent/agent-store.js';
import { signConnEvent } from '../../src/agent/connection-log.js';
import {
  BASIC_MESSAGE,
  CONNECTION_EVENTS,
  acceptConnection,
  connections,
  deleteConnection,
  findConnection,
  inbox,
  inviteConnection,
  myState,
  peerState,
  rotateConnection,
  sendText,
  type ConnectionRecord,
} from '../../src/agent/connections.js';
import { didKeyUrl, memoryAgreementKey, newMessage, parseJwe, recipientFromKid, wrapForward } from '../../src/didcomm/index.js';
import { EdgeAgent, type ReceiveEntry } from '../../src/agent/edge-agent.js';
import { AGENTS_CHANGED } from '../../src/agent/notifications.js';
import {
  PAIRING_RESPONSE,
  answerInvitation,
  awaitWelcome,
  completePairing,
  createInvitation,
  parseInvitation,
  setNameForPeers,
  type Invitation,
} from '../../src/agent/pairing.js';
import { agentSigner, provisionKeys } from '../../src/agent/provision.js';
import { APPROVAL_REQUEST, APPROVAL_RESPONSE, answerApproval, pendingApprovals, revokeAgent } from '../../src/agent/revocation.js';
import { ed25519Generate, encodePublicKey, memorySigner, x25519Generate } from '../../src/crypto/index.js';
import { nextEvent, signEvent } from '../../src/ledger/build.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { connect, drain, drainPairing, pairingRequest, settle, world } from '../helpers/world.js';

const refusals = (entries: readonly ReceiveEntry[]) => entries.filter((e) => e.outcome === 'refused');

async function ledgerAgents(agent: EdgeAgent) {
  return (await agent.policy()).policy.agents;
}

/** The policy's rules changed on the ledger, signed by `admin`. */
async function setRules(admin: EdgeAgent, rules: { grant: number; revoke: number; rules: number; did: number }): Promise<void> {
  const record = await admin.policy();
  await admin.ledger.submit(signEvent(nextEvent('policy.rules', record.subject, record, { rules }), [agentSigner(admin.wallet)]));
}

function messages(agent: EdgeAgent): string[] {
  return inbox(agent).map((m) => m.content);
}

// ---------------------------------------------------------------------------------------------
// Pairing

describe('pairing', () => {
  it('pairs a new device: grant on the ledger, same policy, same link secret', async () => {
    const w = await world();
    const owner = await w.makeOwner('laptop');
    const device = await w.newAgent();
    const keys = provisionKeys(device.wallet);
    const created = createInvitation(owner, { flags: FLAGS.PROVE | FLAGS.PROVE_GRANT, label: 'phone' });
    expect(created.passcode).toMatch(/^\d{4}-\d{4}$/);
    const invitation = parseInvitation(created.text);
    expect(invitation.inviter).toEqual({ key: owner.profile.key, kx: owner.profile.kx });
    await answerInvitation(device, invitation, created.passcode, 'phone', keys);

    const entries = await drainPairing(owner, invitation.id);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ type: PAIRING_RESPONSE, outcome: 'handled' });
    expect(entries[0]?.data?.['pairing']).toEqual({ invitation: invitation.id, key: keys.key, kx: keys.kx, label: 'phone', flags: ['PROVE', 'PROVE_GRANT'] });
    // Nothing is granted before the owner confirms.
    expect((await ledgerAgents(owner)).some((a) => a.key === keys.key)).toBe(false);

    expect(await completePairing(owner, invitation.id, true)).toEqual({ key: keys.key, label: 'phone', flags: FLAGS.PROVE | FLAGS.PROVE_GRANT });
    const welcome = await awaitWelcome(device, invitation, 'phone', Date.now() + 15_000);
    expect(welcome.data?.['paired']).toEqual({ policy: owner.profile.policy, flags: ['PROVE', 'PROVE_GRANT'] });

    expect(device.profile.policy).toBe(owner.profile.policy);
    expect(device.profile.key).toBe(keys.key);
    expect(device.profile.cloud).toEqual(owner.profile.cloud);
    expect(device.store.linkSecret()).toEqual(owner.store.linkSecret());
    expect(device.store.linkSecret()).toHaveLength(32);
    const granted = (await ledgerAgents(device)).find((a) => a.key === keys.key);
    expect(granted).toEqual({ key: keys.key, kx: keys.kx, flags: FLAGS.PROVE | FLAGS.PROVE_GRANT });
    // Each side knows the other by its label.
    expect(owner.store.agentView()?.agents.find((a) => a.key === keys.key)?.label).toBe('phone');
    expect(device.store.agentView()?.agents.find((a) => a.key === owner.profile.key)?.label).toBe('laptop');
    // The invitation is spent.
    await expectCodeAsync(completePairing(owner, invitation.id, true), 'INVITATION_MALFORMED');
    // The new agent gets its own mail now, and hears of later pairings.
    const third = await w.pairAgent(owner, 'tablet', FLAGS.PROVE);
    const heard = await drain(device);
    expect(heard).toEqual([expect.objectContaining({ type: AGENTS_CHANGED, outcome: 'handled' })]);
    expect(device.store.agentView()?.agents.some((a) => a.key === third.profile.key)).toBe(true);
  });

  it('refuses a wrong passcode, and voids the invitation after three', async () => {
    const w = await world();
    const owner = await w.makeOwner('laptop');
    const device = await w.newAgent();
    const keys = provisionKeys(device.wallet);
    const created = createInvitation(owner, { flags: FLAGS.PROVE, label: 'phone' });
    const invitation = parseInvitation(created.text);
    const wrong = created.passcode.startsWith('0') ? '1111-1111' : '0000-0000';
    for (let attempt = 1; attempt <= 3; attempt++) {
      await answerInvitation(device, invitation, wrong, 'phone', keys);
      const entries = await drainPairing(owner, invitation.id);
      expect(entries).toEqual([expect.objectContaining({ type: PAIRING_RESPONSE, outcome: 'refused', code: 'PASSCODE_WRONG' })]);
      await expectCodeAsync(awaitWelcome(device, invitation, 'phone', Date.now() + 15_000), 'PASSCODE_WRONG');
    }
    // The right passcode comes too late.
    await answerInvitation(device, invitation, created.passcode, 'phone', keys);
    expect(await drainPairing(owner, invitation.id)).toEqual([
      expect.objectContaining({ type: PAIRING_RESPONSE, outcome: 'refused', code: 'INVITATION_USED' }),
    ]);
    await expectCodeAsync(awaitWelcome(device, invitation, 'phone', Date.now() + 15_000), 'INVITATION_USED');
    expect((await ledgerAgents(owner)).some((a) => a.key === keys.key)).toBe(false);
    expect(device.store.hasProfile()).toBe(false);
  });

  it('refuses an expired invitation, on both sides', async () => {
    const w = await world();
    const owner = await w.makeOwner('laptop');
    const device = await w.newAgent();
    const keys = provisionKeys(device.wallet);
    // Expired already: the new device does not even answer.
    const expired = createInvitation(owner, { flags: FLAGS.PROVE, label: 'phone', ttlSeconds: -1 });
    const expiredInvitation = parseInvitation(expired.text);
    await expectCodeAsync(answerInvitation(device, expiredInvitation, expired.passcode, 'phone', keys), 'INVITATION_EXPIRED');
    // A valid invitation whose expiry was edited into the past.
    const fresh = createInvitation(owner, { flags: FLAGS.PROVE, label: 'phone' });
    const edited: Invitation = { ...parseInvitation(fresh.text), expires: new Date(Date.now() - 1000).toISOString() };
    await expectCodeAsync(answerInvitation(device, edited, fresh.passcode, 'phone', keys), 'INVITATION_EXPIRED');
    expect(await drainPairing(owner, expiredInvitation.id)).toEqual([]);
    // An expired invitation whose copy was edited into the future: the inviter still refuses.
    const lying: Invitation = { ...expiredInvitation, expires: new Date(Date.now() + 600_000).toISOString() };
    await answerInvitation(device, lying, expired.passcode, 'phone', keys);
    expect(await drainPairing(owner, expiredInvitation.id)).toEqual([
      expect.objectContaining({ type: PAIRING_RESPONSE, outcome: 'refused', code: 'INVITATION_EXPIRED' }),
    ]);
    await expectCodeAsync(awaitWelcome(device, lying, 'phone', Date.now() + 15_000), 'INVITATION_EXPIRED');
  });

  it('refuses a second device on an invitation already answered or confirmed', async () => {
    const w = await world();
    const owner = await w.makeOwner('laptop');
    const created = createInvitation(owner, { flags: FLAGS.PROVE, label: 'phone' });
    const invitation = parseInvitation(created.text);
    const first = await w.newAgent();
    const second = await w.newAgent();
    const third = await w.newAgent();
    await answerInvitation(first, invitation, created.passcode, 'phone', provisionKeys(first.wallet));
    expect(pairingRequest(await drainPairing(owner, invitation.id), invitation.id)?.key).toBe(first.wallet.getKey('agent-sign').publicKey);
    // Answered but not yet confirmed: the invitation already has its candidate.
    await answerInvitation(second, invitation, created.passcode, 'other', provisionKeys(second.wallet));
    expect(await drainPairing(owner, invitation.id)).toEqual([expect.objectContaining({ outcome: 'refused', code: 'INVITATION_USED' })]);
    await expectCodeAsync(awaitWelcome(second, invitation, 'other', Date.now() + 15_000), 'INVITATION_USED');
    await completePairing(owner, invitation.id, true);
    await awaitWelcome(first, invitation, 'phone', Date.now() + 15_000);
    // Confirmed: a third device gets nothing either.
    const thirdKeys = provisionKeys(third.wallet);
    await answerInvitation(third, invitation, created.passcode, 'phone', thirdKeys);
    expect(await drainPairing(owner, invitation.id)).toEqual([expect.objectContaining({ outcome: 'refused', code: 'INVITATION_USED' })]);
    await expectCodeAsync(awaitWelcome(third, invitation, 'phone', Date.now() + 15_000), 'INVITATION_USED');
    const keys = (await ledgerAgents(owner)).map((a) => a.key);
    expect(keys).toContain(first.profile.key);
    expect(keys).not.toContain(thirdKeys.key);
  });

  it('refuses a valid answer when the inviter is not waiting on that invitation, and voids it', async () => {
    const w = await world();
    const owner = await w.makeOwner('laptop');
    const device = await w.newAgent();
    const keys = provisionKeys(device.wallet);
    const created = createInvitation(owner, { flags: FLAGS.PROVE, label: 'phone' });
    const invitation = parseInvitation(created.text);
    await answerInvitation(device, invitation, created.passcode, 'phone', keys);
    // An ordinary receive (no `agent pair` running), or one waiting on another invitation.
    expect(await drain(owner)).toEqual([expect.objectContaining({ type: PAIRING_RESPONSE, outcome: 'refused', code: 'PAIRING_TIMEOUT' })]);
    await expectCodeAsync(awaitWelcome(device, invitation, 'phone', Date.now() + 15_000), 'PAIRING_TIMEOUT');
    await answerInvitation(device, invitation, created.passcode, 'phone', keys);
    expect(await drainPairing(owner, invitation.id)).toEqual([expect.objectContaining({ outcome: 'refused', code: 'INVITATION_USED' })]);
    const other = createInvitation(owner, { flags: FLAGS.PROVE, label: 'phone' });
    const otherInvitation = parseInvitation(other.text);
    await answerInvitation(device, otherInvitation, other.passcode, 'phone', keys);
    expect(await drainPairing(owner, invitation.id)).toEqual([expect.objectContaining({ outcome: 'refused', code: 'PAIRING_TIMEOUT' })]);
    await expectCodeAsync(completePairing(owner, otherInvitation.id, true), 'INVITATION_MALFORMED');
    expect((await ledgerAgents(owner)).some((a) => a.key === keys.key)).toBe(false);
  });

  it('tells the new device when the owner declines', async () => {
    const w = await world();
    const owner = await w.makeOwner('laptop');
    const device = await w.newAgent();
    const keys = provisionKeys(device.wallet);
    const created = createInvitation(owner, { flags: FLAGS.PROVE, label: 'phone' });
    const invitation = parseInvitation(created.text);
    await answerInvitation(device, invitation, created.passcode, 'phone', keys);
    expect(pairingRequest(await drainPairing(owner, invitation.id), invitation.id)).toBeDefined();
    await expectCodeAsync(completePairing(owner, invitation.id, false), 'PAIRING_DECLINED');
    await expectCodeAsync(awaitWelcome(device, invitation, 'phone', Date.now() + 15_000), 'PAIRING_DECLINED');
    await expectCodeAsync(completePairing(owner, invitation.id, true), 'INVITATION_MALFORMED');
    expect((await ledgerAgents(owner)).some((a) => a.key === keys.key)).toBe(false);
    expect(device.store.linkSecret()).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// Revocation with co-signers

const RequestShape = z.object({ id: z.string(), declined: z.array(z.string()) });

describe('m-of-n revocation', () => {
  it('refuses up front, signing and sending nothing, a revocation whose co-signatures can never be gathered', async () => {
    const w = await world();
    const laptop = await w.makeOwner('laptop');
    const tablet = await w.pairAgent(laptop, 'tablet', FLAGS.ADMIN);
    await setRules(laptop, { grant: 1, revoke: 2, rules: 1, did: 1 });
    await settle(laptop, tablet);
    const before = await laptop.policy();
    // Revoking the only other agent that may co-sign: nobody is left to give the second signature.
    const alone = await expectCodeAsync(revokeAgent(laptop, tablet.profile.key), 'EVENT_THRESHOLD');
    expect(alone.message).toMatch(/never/);
    // A co-signer that has no key-agreement key cannot be asked (a grant that dropped its kx).
    const watch = await w.pairAgent(laptop, 'watch', FLAGS.PROVE);
    await settle(laptop, tablet, watch);
    const record = await laptop.policy();
    await laptop.ledger.submit(
      signEvent(nextEvent('policy.grant', record.subject, record, { agent: { key: tablet.profile.key, flags: FLAGS.ADMIN } }), [agentSigner(laptop.wallet)]),
    );
    const mute = await expectCodeAsync(revokeAgent(laptop, watch.profile.key), 'EVENT_THRESHOLD');
    expect(mute.message).toContain(tablet.profile.key);
    expect(mute.message).toMatch(/key-agreement/);
    // Nothing was written or sent: no open request, the watch and the tablet hear nothing of it.
    expect(laptop.store.list(CATEGORIES.request, RequestShape)).toEqual([]);
    expect((await settle(tablet, watch)).get(tablet)?.filter((e) => e.type === APPROVAL_REQUEST)).toEqual([]);
    expect((await laptop.policy()).seq).toBe(before.seq + 2);
  });

  it('waits for a co-signer, records a refusal, and submits once enough agents signed', async () => {
    const w = await world();
    const laptop = await w.makeOwner('laptop');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    const tablet = await w.pairAgent(laptop, 'tablet', FLAGS.PROVE_REVOKE);
    const watch = await w.pairAgent(laptop, 'watch', FLAGS.PROVE);
    await setRules(laptop, { grant: 1, revoke: 2, rules: 1, did: 1 });
    await settle(laptop, phone, tablet, watch);

    const first = await revokeAgent(laptop, watch.profile.key);
    expect(first).toMatchObject({ state: 'waiting', target: watch.profile.key, signatures: 1, needed: 2 });
    const id = first.requestId as string;
    expect((await ledgerAgents(laptop)).some((a) => a.key === watch.profile.key)).toBe(true);

    // Both agents that may revoke are asked; the target and the cloud agent are not.
    for (const cosigner of [phone, tablet]) {
      const entries = await drain(cosigner);
      expect(entries).toEqual([expect.objectContaining({ type: APPROVAL_REQUEST, outcome: 'handled' })]);
      expect(entries[0]?.data?.['approval']).toMatchObject({ id });
      expect(pendingApprovals(cosigner)).toEqual([expect.objectContaining({ id, from: laptop.profile.key, target: watch.profile.key })]);
    }
    expect(await drain(watch)).toEqual([]);

    // The tablet declines: recorded, nothing submitted.
    await answerApproval(tablet, id, false);
    expect(pendingApprovals(tablet)).toEqual([]);
    const declined = await drain(laptop);
    expect(declined).toEqual([expect.objectContaining({ type: APPROVAL_RESPONSE, outcome: 'handled' })]);
    expect(declined[0]?.data?.['declined']).toEqual({ id, by: tablet.profile.key });
    expect(laptop.store.read(CATEGORIES.request, id, RequestShape)?.declined).toEqual([tablet.profile.key]);
    expect((await ledgerAgents(laptop)).some((a) => a.key === watch.profile.key)).toBe(true);

    // The phone co-signs: the laptop submits.
    await answerApproval(phone, id, true);
    const done = await drain(laptop);
    expect(done).toEqual([expect.objectContaining({ type: APPROVAL_RESPONSE, outcome: 'handled' })]);
    expect(done[0]?.data?.['revoked']).toMatchObject({ state: 'revoked', target: watch.profile.key, signatures: 2, needed: 2 });
    expect((await ledgerAgents(laptop)).map((a) => a.key)).not.toContain(watch.profile.key);
    expect(laptop.store.has(CATEGORIES.request, id)).toBe(false);
    // The other agents are told; the revoked one hears nothing: it has no mailbox any more.
    const told = await settle(phone, tablet);
    expect(told.get(phone)).toEqual([expect.objectContaining({ type: AGENTS_CHANGED, outcome: 'handled' })]);
    await expectCodeAsync(drain(watch), 'MAILBOX_NOT_FOUND');
    expect(phone.store.agentView()?.agents.some((a) => a.key === watch.profile.key)).toBe(false);
    // A co-signature that arrives late finds no request.
    await expectCodeAsync(answerApproval(tablet, id, true), 'APPROVAL_NOT_FOUND');
  });

  it('refuses a co-signature made over another event', async () => {
    const w = await world();
    const laptop = await w.makeOwner('laptop');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    const watch = await w.pairAgent(laptop, 'watch', FLAGS.PROVE);
    await setRules(laptop, { grant: 1, revoke: 2, rules: 1, did: 1 });
    await settle(laptop, phone, watch);
    const { requestId } = await revokeAgent(laptop, watch.profile.key);
    await drain(phone);
    // The phone signs a different revocation (of the laptop) and sends it as its answer.
    const record = await phone.policy();
    const other = signEvent(nextEvent('policy.revoke', record.subject, record, { key: laptop.profile.key }), [agentSigner(phone.wallet)]);
    await phone.sendToAgents(newMessage(APPROVAL_RESPONSE, { id: requestId, sig: other.sigs[0] }), [
      { key: laptop.profile.key, kx: laptop.profile.kx, flags: ALL_FLAGS },
    ]);
    expect(refusals(await drain(laptop))).toEqual([expect.objectContaining({ type: APPROVAL_RESPONSE, code: 'EVENT_BAD_SIGNATURE' })]);
    expect((await ledgerAgents(laptop)).map((a) => a.key)).toEqual(expect.arrayContaining([laptop.profile.key, watch.profile.key]));
    // The genuine approval still completes the request.
    await answerApproval(phone, requestId as string, true);
    expect((await drain(laptop))[0]?.data?.['revoked']).toMatchObject({ state: 'revoked', signatures: 2 });
  });
});

// ---------------------------------------------------------------------------------------------
// Connections between two owners

describe('connections', () => {
  it('connect, exchange messages, rotate, delete', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    const { a, b } = await connect(alice, bob);
    expect(a.state).toBe('active');
    expect(peerState(b).keys).toEqual(myState(a).keys);
    expect(peerState(a).keys).toEqual(myState(b).keys);

    await sendText(alice, 'bob', 'hello bob');
    expect(await drain(bob)).toEqual([expect.objectContaining({ type: BASIC_MESSAGE, outcome: 'handled', detail: 'alice: hello bob' })]);
    await sendText(bob, 'alice', 'hello alice');
    expect(await drain(alice)).toEqual([expect.objectContaining({ type: BASIC_MESSAGE, outcome: 'handled' })]);
    expect(messages(bob)).toEqual(['hello bob']);
    expect(messages(alice)).toEqual(['hello alice']);
    expect(inbox(bob)[0]).toMatchObject({ connection: b.id, label: 'alice' });

    // Alice rotates her keys: Bob verifies the rotation against the key he knew.
    const oldKeys = myState(a).keys;
    const rotated = await rotateConnection(alice, 'bob');
    expect(myState(rotated).seq).toBe(1);
    expect(myState(rotated).keys).not.toEqual(oldKeys);
    const events = await drain(bob);
    expect(events).toEqual([expect.objectContaining({ type: CONNECTION_EVENTS, outcome: 'handled' })]);
    const bobView = findConnection(bob, 'alice');
    expect(peerState(bobView).seq).toBe(1);
    expect(peerState(bobView).keys).toEqual(myState(rotated).keys);
    expect(bobView.peerLog).toHaveLength(2);

    // Messages still flow, both ways, over the new keys.
    await sendText(bob, 'alice', 'after rotation');
    await sendText(alice, 'bob', 'me too');
    await settle(alice, bob);
    expect(messages(alice)).toEqual(['hello alice', 'after rotation']);
    expect(messages(bob)).toEqual(['hello bob', 'me too']);

    // Bob rotates too, twice before Alice reads: she applies both in order.
    await rotateConnection(bob, 'alice');
    await rotateConnection(bob, 'alice');
    await drain(alice);
    expect(peerState(findConnection(alice, 'bob')).seq).toBe(2);
    expect(peerState(findConnection(alice, 'bob')).keys).toEqual(myState(findConnection(bob, 'alice')).keys);

    // Alice deletes the connection.
    const deleted = await deleteConnection(alice, 'bob');
    expect(deleted.state).toBe('deleted');
    expect(myState(deleted).disabled).toBe(true);
    expect(await drain(bob)).toEqual([expect.objectContaining({ type: CONNECTION_EVENTS, outcome: 'handled' })]);
    const gone = findConnection(bob, 'alice');
    expect(gone.state).toBe('deleted-by-peer');
    expect(peerState(gone).disabled).toBe(true);
    await expectCodeAsync(sendText(bob, 'alice', 'anyone?'), 'CONNECTION_DELETED');
    await expectCodeAsync(sendText(alice, 'bob', 'anyone?'), 'CONNECTION_DELETED');
    await expectCodeAsync(rotateConnection(bob, 'alice'), 'CONNECTION_DELETED');
    await expectCodeAsync(deleteConnection(alice, 'bob'), 'CONNECTION_DELETED');
    // Bob may close his side too; it stays local.
    expect((await deleteConnection(bob, 'alice')).state).toBe('deleted');
    expect(await drain(alice)).toEqual([]);
  });

  it("shows other owners the name the owner chose, not the device's label; a device paired later takes the name", async () => {
    const w = await world();
    const alice = await w.makeOwner('laptop');
    const bob = await w.makeOwner('bob-phone');
    expect(nameForPeers(alice.profile)).toBe('laptop');
    expectCode(() => setNameForPeers(alice, ''), 'BAD_INPUT');
    expectCode(() => setNameForPeers(alice, 'x'.repeat(65)), 'BAD_INPUT');
    expectCode(() => setNameForPeers(alice, 'Alice\u0007'), 'BAD_INPUT');
    expect(alice.profile.name).toBeUndefined();
    setNameForPeers(alice, 'Alice Liddell');
    setNameForPeers(bob, 'Bob');
    // Bob keeps Alice under the name her invitation carries, and she learns his from his answer.
    const { text, invitation } = inviteConnection(alice, 'the one from the party');
    expect(invitation.label).toBe('Alice Liddell');
    const atBob = await acceptConnection(bob, text);
    expect(atBob.label).toBe('Alice Liddell');
    const entries = await drain(alice);
    expect(entries[0]?.detail).toBe("connected with 'the one from the party' (Bob)");
    // Her device's own label stays what her other devices list it by.
    expect(alice.profile.label).toBe('laptop');

    // Her phone, paired now, shows other owners the same name.
    const phone = await w.newAgent();
    const keys = provisionKeys(phone.wallet);
    const created = createInvitation(alice, { flags: FLAGS.PROVE, label: 'phone' });
    const parsed = parseInvitation(created.text);
    await answerInvitation(phone, parsed, created.passcode, 'phone', keys);
    await drainPairing(alice, parsed.id);
    await completePairing(alice, parsed.id, true);
    await awaitWelcome(phone, parsed, 'phone', Date.now() + 15_000);
    expect(phone.profile).toMatchObject({ label: 'phone', name: 'Alice Liddell' });
    expect(inviteConnection(phone, 'someone').invitation.label).toBe('Alice Liddell');
  });

  it('refuses to accept the same invitation twice, and an invitation answered twice', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    const carol = await w.makeOwner('carol');
    const { text } = inviteConnection(alice, 'friend');
    await acceptConnection(bob, text);
    await expectCodeAsync(acceptConnection(bob, text), 'INVITATION_USED');
    await acceptConnection(carol, text);
    const entries = await drain(alice);
    expect(entries.map((e) => [e.outcome, e.code])).toEqual([
      ['handled', undefined],
      ['refused', 'INVITATION_USED'],
    ]);
    expect(connections(alice)).toHaveLength(1);
    const expired = inviteConnection(alice, 'late', -1);
    await expectCodeAsync(acceptConnection(carol, expired.text), 'INVITATION_EXPIRED');
  });
});

// ---------------------------------------------------------------------------------------------
// Refusals

describe('security', () => {
  it('refuses a replayed envelope: MESSAGE_REPLAYED', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    await connect(alice, bob);
    await sendText(alice, 'bob', 'pay 10');
    // Intercept: pick the envelope up without handling it.
    const agency = new AgencyClient(w.agencyUrl, bob.signingKey());
    const picked = await agency.pickup(10, 0);
    expect(picked).toHaveLength(1);
    await agency.ack(picked.map((p) => p.id));
    const inner = parseJwe(picked[0]?.envelope);
    const cloud = bob.cloud();
    // Posted again, twice, the same bytes: the agency remembers it was acknowledged a moment ago
    // (a sender's retry) and stores nothing.
    for (let i = 0; i < 2; i++) await postEnvelope(cloud.endpoint, wrapForward(inner, cloud.did, [recipientFromKid(cloud.routingKey)]));
    expect(await drain(bob)).toEqual([]);
    // Through another cloud agent at the agency (another owner's, who lets bob's key have guest
    // mail there), the agency stores it: bob's agent, which never saw it, handles it once, and
    // refuses it after, whichever way it comes.
    const through = async (owner: EdgeAgent, next: (c: ReturnType<EdgeAgent['cloud']>) => string) => {
      const theirs = owner.cloud();
      await owner.agency(theirs).allowGuest(theirs.kx, bob.profile.key);
      await postEnvelope(theirs.endpoint, wrapForward(inner, next(theirs), [recipientFromKid(theirs.routingKey)]));
      return (await drain(bob)).map((e) => [e.type, e.outcome, e.code]);
    };
    expect(await through(await w.makeOwner('carol'), () => `did:key:${bob.profile.key}`)).toEqual([[BASIC_MESSAGE, 'handled', undefined]]);
    expect(await through(await w.makeOwner('dave'), () => `did:key:${bob.profile.key}`)).toEqual([[BASIC_MESSAGE, 'refused', 'MESSAGE_REPLAYED']]);
    expect(messages(bob)).toEqual(['pay 10']);
  });

  it('refuses messages older than 30 days or dated a day ahead, and forgets the ids of messages that old', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    const { a } = await connect(alice, bob);
    const now = Math.floor(Date.now() / 1000);
    // An id bob saw 40 days ago: too old to be accepted again, so there is no need to keep it.
    const oldDay = String(Math.floor((now - 40 * 86_400) / 86_400));
    bob.wallet.put(CATEGORIES.seen, 'ancient-id', new TextEncoder().encode('0'), { day: oldDay });
    const peer = peerState(a);
    const mine = a.mine as NonNullable<ConnectionRecord['mine']>;
    const send = (created: number) =>
      alice.sendToPeer(
        newMessage(BASIC_MESSAGE, { content: `at ${created}` }, { created_time: created }),
        alice.agreementKey(mine.kx),
        peer.keys.map((k) => k.kx),
        peer.endpoint,
      );
    await send(now - 31 * 86_400);
    await send(now + 2 * 86_400);
    await send(now);
    expect((await drain(bob)).map((e) => [e.outcome, e.code])).toEqual([
      ['refused', 'MESSAGE_EXPIRED'],
      ['refused', 'MESSAGE_MALFORMED'],
      ['handled', undefined],
    ]);
    expect(bob.wallet.find({ category: CATEGORIES.seen, tags: { day: oldDay } })).toEqual([]);
    expect(messages(bob)).toEqual([`at ${now}`]);
  });

  it('refuses a connection event signed by a key the peer never authorized, and flags the connection', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    const { a } = await connect(alice, bob);
    // Sent over Alice's real, current connection key, but signed by a key not in her log.
    const state = myState(a);
    const pair = ed25519Generate();
    const fresh = { key: encodePublicKey('ed25519', pair.publicKey), kx: encodePublicKey('x25519', x25519Generate().publicKey) };
    const forged = signConnEvent({ v: 1, type: 'conn.rotate', id: a.id, seq: state.seq + 1, prev: state.head, keys: [fresh] }, [
      memorySigner(pair.privateKey, pair.publicKey),
    ]);
    const peer = peerState(a);
    const mine = a.mine as NonNullable<ConnectionRecord['mine']>;
    await alice.sendToPeer(
      newMessage(CONNECTION_EVENTS, { id: a.id, events: [forged] }),
      alice.agreementKey(mine.kx),
      peer.keys.map((k) => k.kx),
      peer.endpoint,
    );
    expect(await drain(bob)).toEqual([expect.objectContaining({ type: CONNECTION_EVENTS, outcome: 'refused', code: 'CONNECTION_EVENT_UNAUTHORIZED' })]);
    const record = findConnection(bob, 'alice');
    expect(record.flags).toEqual([expect.objectContaining({ code: 'CONNECTION_EVENT_UNAUTHORIZED' })]);
    expect(record.peerLog).toHaveLength(1);
    expect(peerState(record).keys).toEqual(state.keys);
    // A fork (another event at a seq Bob already has) is refused too, and flagged.
    await alice.sendToPeer(
      newMessage(CONNECTION_EVENTS, { id: a.id, events: [{ ...a.myLog[0], nonce: 'AAAAAAAAAAAAAAAAAAAAAA' }] }),
      alice.agreementKey(mine.kx),
      peer.keys.map((k) => k.kx),
      peer.endpoint,
    );
    expect(refusals(await drain(bob))).toEqual([expect.objectContaining({ code: 'CONNECTION_EVENT_INVALID' })]);
    expect(findConnection(bob, 'alice').flags).toHaveLength(2);
    // The connection itself still works.
    await sendText(alice, 'bob', 'still here');
    await drain(bob);
    expect(messages(bob)).toEqual(['still here']);
  });

  it("refuses a message to a connection from a key that is not the peer's: ENVELOPE_UNKNOWN_SENDER", async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    const { a } = await connect(alice, bob);
    const x = x25519Generate();
    const stranger = memoryAgreementKey(didKeyUrl('x25519', x.publicKey), x.privateKey, x.publicKey);
    const peer = peerState(a);
    await alice.sendToPeer(
      newMessage(BASIC_MESSAGE, { content: 'it is me, alice' }),
      stranger,
      peer.keys.map((k) => k.kx),
      peer.endpoint,
    );
    // Alice's own agent key is not a connection key either.
    await alice.sendToPeer(
      newMessage(BASIC_MESSAGE, { content: 'from my agent key' }),
      alice.agreementKey(),
      peer.keys.map((k) => k.kx),
      peer.endpoint,
    );
    expect(await drain(bob)).toEqual([
      expect.objectContaining({ type: BASIC_MESSAGE, outcome: 'refused', code: 'ENVELOPE_UNKNOWN_SENDER' }),
      expect.objectContaining({ type: BASIC_MESSAGE, outcome: 'refused', code: 'ENVELOPE_UNKNOWN_SENDER' }),
    ]);
    expect(messages(bob)).toEqual([]);
  });

  it("refuses an approval request from a key that is not one of the owner's agents", async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const mallory = await w.makeOwner('mallory');
    const record = await alice.policy();
    const event = signEvent(nextEvent('policy.revoke', record.subject, record, { key: alice.profile.key }), [agentSigner(mallory.wallet)]);
    const cloud = alice.cloud();
    await mallory.sendToKey(
      newMessage(APPROVAL_REQUEST, { id: 'req-1', event, reason: 'revoke agent laptop' }),
      mallory.agreementKey(),
      { key: alice.profile.key, kx: alice.profile.kx },
      { endpoint: cloud.endpoint, routingKey: cloud.routingKey },
    );
    expect(await drain(alice)).toEqual([expect.objectContaining({ type: APPROVAL_REQUEST, outcome: 'refused', code: 'ENVELOPE_UNKNOWN_SENDER' })]);
    expect(pendingApprovals(alice)).toEqual([]);
    // Nor may a stranger announce changes to the owner's agents.
    await mallory.sendToKey(
      newMessage(AGENTS_CHANGED, { policy: alice.profile.policy }),
      mallory.agreementKey(),
      { key: alice.profile.key, kx: alice.profile.kx },
      {
        endpoint: cloud.endpoint,
        routingKey: cloud.routingKey,
      },
    );
    expect(refusals(await drain(alice))).toEqual([expect.objectContaining({ type: AGENTS_CHANGED, code: 'ENVELOPE_UNKNOWN_SENDER' })]);
  });
});

// ---------------------------------------------------------------------------------------------
// What revoking an agent does

describe('revocation side effects', () => {
  it('stops delivery to the revoked agent and rotates the connections it had joined', async () => {
    const w = await world();
    const laptop = await w.makeOwner('alice');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.PROVE);
    const bob = await w.makeOwner('bob');
    await settle(laptop, phone);
    const { b } = await connect(laptop, bob);
    // The phone learns of the connection and joins it with its own keys; Bob sees the rotation.
    await settle(laptop, phone, bob);
    const phoneRecord = findConnection(phone, b.peer);
    const phoneConnKey = phoneRecord.mine === undefined ? undefined : phone.wallet.getKey(phoneRecord.mine.sign).publicKey;
    expect(phoneConnKey).toBeDefined();
    expect(peerState(findConnection(bob, 'alice')).keys.map((k) => k.key)).toContain(phoneConnKey);
    expect(
      findConnection(laptop, 'bob')
        .members.map((m) => m.agent)
        .sort(),
    ).toEqual([laptop.profile.key, phone.profile.key].sort());
    // Bob's messages reach both of Alice's agents; the phone can write too.
    await sendText(bob, 'alice', 'hi both');
    await sendText(phone, 'bob', 'from the phone');
    await settle(laptop, phone, bob);
    expect(messages(laptop)).toEqual(['hi both']);
    expect(messages(phone)).toEqual(['hi both']);
    expect(messages(bob)).toEqual(['from the phone']);

    const outcome = await revokeAgent(laptop, phone.profile.key);
    expect(outcome).toMatchObject({ state: 'revoked', target: phone.profile.key, rotated: [findConnection(laptop, 'bob').id] });
    expect((await ledgerAgents(laptop)).map((a) => a.key)).not.toContain(phone.profile.key);

    // Bob verifies the rotation: the phone's key is no longer Alice's.
    expect(await drain(bob)).toEqual([expect.objectContaining({ type: CONNECTION_EVENTS, outcome: 'handled' })]);
    const bobView = peerState(findConnection(bob, 'alice'));
    expect(bobView.keys.map((k) => k.key)).not.toContain(phoneConnKey);
    expect(bobView.keys).toEqual(myState(findConnection(laptop, 'bob')).keys);
    expect(bobView.keys).toHaveLength(1);

    // The cloud agent no longer delivers to the phone, whatever the owner or Bob sends.
    await sendText(bob, 'alice', 'after the revocation');
    await laptop.notifyAgents(newMessage(AGENTS_CHANGED, { policy: laptop.profile.policy }));
    const direct: KnownAgent = { key: phone.profile.key, kx: phone.profile.kx, flags: FLAGS.PROVE };
    await expectCodeAsync(laptop.sendToAgents(newMessage(AGENTS_CHANGED, { policy: laptop.profile.policy }), [direct]), 'NOT_FOUND');
    // It has no mailbox there any more: its pickups are refused, not answered "nothing new".
    await expectCodeAsync(drain(phone), 'MAILBOX_NOT_FOUND');
    expect(messages(phone)).toEqual(['hi both']);
    await drain(laptop);
    expect(messages(laptop)).toEqual(['hi both', 'after the revocation']);

    // What the phone still sends over its old connection key is refused by Bob.
    await sendText(phone, 'bob', 'still me');
    expect(await drain(bob)).toEqual([expect.objectContaining({ type: BASIC_MESSAGE, outcome: 'refused', code: 'ENVELOPE_UNKNOWN_SENDER' })]);
    expect(messages(bob)).toEqual(['from the phone']);
  });
});
