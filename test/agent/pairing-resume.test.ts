/**
 * Pairing is several steps once the owner confirms: the grant on the ledger, the cloud agent's
 * sync, the welcome to the new device, the notice to the owner's other agents. Failed at each of
 * them, before the server did it or after (its answer lost), completing the pairing again
 * finishes it: one grant on the ledger, the new device paired once, the other agents told. The
 * new device that answered and gave up waiting only waits when run again. And what a pairing
 * could never finish is refused before anything is written or sent.
 */
import { describe, expect, it } from 'vitest';
import { CATEGORIES } from '../../src/agent/agent-store.js';
import type { EdgeAgent } from '../../src/agent/edge-agent.js';
import { AGENTS_CHANGED } from '../../src/agent/notifications.js';
import {
  PAIRING_WELCOME,
  answerInvitation,
  answeredWith,
  awaitWelcome,
  checkPairing,
  completePairing,
  createInvitation,
  parseInvitation,
  unfinishedPairing,
  type Invitation,
} from '../../src/agent/pairing.js';
import { agentSigner, provisionKeys } from '../../src/agent/provision.js';
import { nextEvent, signEvent } from '../../src/ledger/build.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { FAILURES, withFaults, type Faults } from '../helpers/faults.js';
import { drain, drainPairing, pairingRequest, world, type World } from '../helpers/world.js';

interface Step {
  readonly name: string;
  readonly code: 'LEDGER_UNREACHABLE' | 'AGENCY_UNREACHABLE';
  arm(faults: Faults, failure: 'before' | 'after'): void;
}

const inbound = ({ method, path }: { method: string; path: string }) => method === 'POST' && path === '/v1/inbound';
const STEPS: readonly Step[] = [
  { name: 'the grant', code: 'LEDGER_UNREACHABLE', arm: (f, failure) => f.armLedger((e) => e.type === 'policy.grant', 0, failure) },
  { name: 'the sync', code: 'AGENCY_UNREACHABLE', arm: (f, failure) => f.arm(({ path }) => path.endsWith('/sync'), 0, failure) },
  { name: 'the welcome', code: 'AGENCY_UNREACHABLE', arm: (f, failure) => f.arm(inbound, 0, failure) },
  { name: 'the notice to the other agents', code: 'AGENCY_UNREACHABLE', arm: (f, failure) => f.arm(inbound, 1, failure) },
];

/** An owner with a laptop and a paired tablet, and a phone that answered the laptop's invitation. */
async function answered(w: World): Promise<{ laptop: EdgeAgent; tablet: EdgeAgent; phone: EdgeAgent; invitation: Invitation }> {
  const laptop = await w.makeOwner('laptop');
  const tablet = await w.pairAgent(laptop, 'tablet', FLAGS.PROVE);
  await drain(tablet);
  const phone = await w.newAgent();
  const created = createInvitation(laptop, { flags: FLAGS.PROVE, label: 'phone' });
  const invitation = parseInvitation(created.text);
  await answerInvitation(phone, invitation, created.passcode, 'phone', provisionKeys(phone.wallet));
  expect(pairingRequest(await drainPairing(laptop, invitation.id), invitation.id)).toBeDefined();
  return { laptop, tablet, phone, invitation };
}

/** Everything an uninterrupted pairing leaves: one grant more on the ledger, and every side knowing the others. */
async function expectPaired(laptop: EdgeAgent, tablet: EdgeAgent, phone: EdgeAgent, seqBefore: number): Promise<void> {
  const record = await laptop.policy();
  expect(record.seq).toBe(seqBefore + 1);
  expect(record.policy.agents.find((a) => a.key === phone.profile.key)).toEqual({ key: phone.profile.key, kx: phone.profile.kx, flags: FLAGS.PROVE });
  expect(unfinishedPairing(laptop)).toBeUndefined();
  expect(laptop.store.agentView()?.agents.find((a) => a.key === phone.profile.key)?.label).toBe('phone');
  expect(phone.profile.policy).toBe(laptop.profile.policy);
  expect(phone.profile.cloud).toEqual(laptop.profile.cloud);
  expect(phone.store.linkSecret()).toEqual(laptop.store.linkSecret());
  expect(phone.store.agentView()?.agents.find((a) => a.key === laptop.profile.key)?.label).toBe('laptop');
  // Nothing of the pairing is left for the phone to take again.
  expect((await drain(phone)).filter((e) => e.outcome === 'handled')).toEqual([]);
  const heard = await drain(tablet);
  expect(heard.length).toBeGreaterThan(0);
  expect(heard.every((e) => e.type === AGENTS_CHANGED && e.outcome === 'handled')).toBe(true);
  expect(tablet.store.agentView()?.agents.some((a) => a.key === phone.profile.key)).toBe(true);
}

describe('a confirmed pairing, failed at each step, finishes when completed again', () => {
  for (const step of STEPS) {
    for (const failure of FAILURES) {
      it(`${step.name}: ${failure === 'before' ? 'failed before the server did it' : 'done by the server, its answer lost'}`, async () => {
        const w = await world();
        const { laptop, tablet, phone, invitation } = await answered(w);
        const seqBefore = (await laptop.policy()).seq;
        const { agent: faulty, faults } = withFaults(laptop);
        step.arm(faults, failure);

        await expectCodeAsync(completePairing(faulty, invitation.id, true), step.code);
        expect(faults.struck).toBe(true);
        // The confirmation is kept: this pairing is what `dkms agent pair` finishes when run again.
        expect(unfinishedPairing(laptop)).toEqual({ invitation: invitation.id, label: 'phone' });
        // The phone is not an agent yet; it answered, so run again it only waits.
        expect(phone.store.hasProfile()).toBe(false);
        expect(answeredWith(phone, invitation)).toBe('phone');

        expect(await completePairing(laptop, invitation.id, true)).toEqual({
          key: phone.wallet.getKey('agent-sign').publicKey,
          label: 'phone',
          flags: FLAGS.PROVE,
        });
        const welcome = await awaitWelcome(phone, invitation, 'phone', Date.now() + 15_000);
        expect(welcome.type).toBe(PAIRING_WELCOME);
        await expectPaired(laptop, tablet, phone, seqBefore);
        // Done: the invitation is spent.
        await expectCodeAsync(completePairing(laptop, invitation.id, true), 'INVITATION_MALFORMED');
      });
    }
  }

  it('a new device that gave up waiting gets the welcome the inviter sends late, and is told it is paired when run again', async () => {
    const w = await world();
    const { laptop, tablet, phone, invitation } = await answered(w);
    const seqBefore = (await laptop.policy()).seq;
    const { agent: faulty, faults } = withFaults(laptop);
    faults.arm(inbound, 0, 'before');
    await expectCodeAsync(completePairing(faulty, invitation.id, true), 'AGENCY_UNREACHABLE');
    // The phone's wait ends with nothing; the inviter finishes later.
    await expectCodeAsync(awaitWelcome(phone, invitation, 'phone', Date.now() + 1500), 'PAIRING_TIMEOUT');
    expect(answeredWith(phone, invitation)).toBe('phone');
    await completePairing(laptop, unfinishedPairing(laptop)?.invitation ?? '', true);
    await awaitWelcome(phone, invitation, 'phone', Date.now() + 15_000);
    await expectPaired(laptop, tablet, phone, seqBefore);
    // What `agent accept` run once more sees: this device answered this invitation and is paired.
    expect(answeredWith(phone, invitation)).toBe('phone');
  });

  it('a grant the ledger now refuses for good drops the pairing, tells the new device, and leaves `agent pair` free to start afresh', async () => {
    const w = await world();
    const laptop = await w.makeOwner('laptop');
    await w.pairAgent(laptop, 'tablet', FLAGS.ADMIN);
    const phone = await w.newAgent();
    const created = createInvitation(laptop, { flags: FLAGS.PROVE, label: 'phone' });
    const invitation = parseInvitation(created.text);
    await answerInvitation(phone, invitation, created.passcode, 'phone', provisionKeys(phone.wallet));
    await drainPairing(laptop, invitation.id);
    const { agent: faulty, faults } = withFaults(laptop);
    faults.armLedger((e) => e.type === 'policy.grant', 0, 'before');
    await expectCodeAsync(completePairing(faulty, invitation.id, true), 'LEDGER_UNREACHABLE');
    // Meanwhile the rules come to need two signatures to grant.
    const record = await laptop.policy();
    await laptop.ledger.submit(
      signEvent(nextEvent('policy.rules', record.subject, record, { rules: { grant: 2, revoke: 1, rules: 1, did: 1 } }), [agentSigner(laptop.wallet)]),
    );
    const seq = (await laptop.policy()).seq;

    await expectCodeAsync(completePairing(laptop, invitation.id, true), 'EVENT_THRESHOLD');
    expect(unfinishedPairing(laptop)).toBeUndefined();
    await expectCodeAsync(awaitWelcome(phone, invitation, 'phone', Date.now() + 15_000), 'EVENT_THRESHOLD');
    expect(answeredWith(phone, invitation)).toBeUndefined();
    expect((await laptop.policy()).seq).toBe(seq);
    await expectCodeAsync(completePairing(laptop, invitation.id, true), 'INVITATION_MALFORMED');
  });

  it('a refusal clears the answer, so that the new device answers again (the right passcode) rather than wait', async () => {
    const w = await world();
    const laptop = await w.makeOwner('laptop');
    const phone = await w.newAgent();
    const keys = provisionKeys(phone.wallet);
    const created = createInvitation(laptop, { flags: FLAGS.PROVE, label: 'phone' });
    const invitation = parseInvitation(created.text);
    await answerInvitation(phone, invitation, created.passcode.startsWith('0') ? '1111-1111' : '0000-0000', 'phone', keys);
    await drainPairing(laptop, invitation.id);
    await expectCodeAsync(awaitWelcome(phone, invitation, 'phone', Date.now() + 15_000), 'PASSCODE_WRONG');
    expect(answeredWith(phone, invitation)).toBeUndefined();
  });
});

describe('what a pairing could never finish is refused before anything is written or sent', () => {
  const invitations = (agent: EdgeAgent) => agent.wallet.find({ category: CATEGORIES.invitation }).length;

  it('a label that is empty, too long or has control characters: BAD_INPUT', async () => {
    const w = await world();
    const laptop = await w.makeOwner('laptop');
    for (const label of ['', 'x'.repeat(65), 'phone\u001b[2J']) expectCode(() => createInvitation(laptop, { flags: FLAGS.PROVE, label }), 'BAD_INPUT');
    expect(invitations(laptop)).toBe(0);
  });

  it('an agent that may not grant the flags: EVENT_UNAUTHORIZED; rules that need several signatures to grant: EVENT_THRESHOLD', async () => {
    const w = await world();
    const laptop = await w.makeOwner('laptop');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.PROVE);
    await expectCodeAsync(checkPairing(phone, FLAGS.PROVE), 'EVENT_UNAUTHORIZED');
    await checkPairing(laptop, ALL_FLAGS);
    const tablet = await w.pairAgent(laptop, 'tablet', FLAGS.ADMIN);
    const made = invitations(laptop);
    const record = await laptop.policy();
    await laptop.ledger.submit(
      signEvent(nextEvent('policy.rules', record.subject, record, { rules: { grant: 2, revoke: 1, rules: 1, did: 1 } }), [agentSigner(laptop.wallet)]),
    );
    const seq = (await laptop.policy()).seq;
    await expectCodeAsync(checkPairing(laptop, FLAGS.PROVE), 'EVENT_THRESHOLD');
    await expectCodeAsync(checkPairing(tablet, FLAGS.PROVE), 'EVENT_THRESHOLD');
    expect(invitations(laptop)).toBe(made);
    expect((await laptop.policy()).seq).toBe(seq);
  });
});
