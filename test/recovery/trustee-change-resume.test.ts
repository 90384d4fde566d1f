/**
 * Changing trustees commits like a first setup, and then ends the trustees left out and
 * deletes the old secret's backups, signed by the old secret's key. Failed at each of those
 * steps, before the server did it or after (its answer lost), committing again finishes the
 * same change: the trustee left out holds nothing, the old backups are gone. Invitations to
 * trustees are checked whole before the first is sent, and an invite that failed part way is
 * finished by inviting again.
 */
import { describe, expect, it } from 'vitest';
import { fetchBackupIndex } from '../../src/agency/agency-client.js';
import type { EdgeAgent } from '../../src/agent/edge-agent.js';
import { RecoveryKeys } from '../../src/recovery/secret.js';
import { commitRecovery, prepareRecovery } from '../../src/recovery/setup.js';
import { trustees } from '../../src/recovery/state.js';
import { TRUSTEE_OFFER, answerOffer, heldShares, inviteTrustee, inviteTrustees, trusteeOffers } from '../../src/recovery/trustees.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { FAILURES, withFaults } from '../helpers/faults.js';
import { copy, describeFailure, expectSetUp, inbound, social, type CommitStep } from '../helpers/recovery-setup.js';
import { aliceWithTrustees, connect, drain, settle, world } from '../helpers/world.js';

const CHANGE: readonly CommitStep[] = [
  {
    name: 'the commitment, signed by the current secret',
    code: 'LEDGER_UNREACHABLE',
    committed: false,
    arm: (f, x) => f.armLedger((e) => e.type === 'policy.recover', 0, x),
  },
  { name: 'the end sent to the trustee left out', code: 'AGENCY_UNREACHABLE', committed: true, arm: (f, x) => f.arm(inbound, 2, x) },
  { name: "the old secret's backups deleted", code: 'AGENCY_UNREACHABLE', committed: true, arm: (f, x) => f.arm(({ method }) => method === 'DELETE', 0, x) },
];

describe('a change of trustees, its commit failed at each step, finishes when committed again', () => {
  for (const step of CHANGE) {
    for (const failure of FAILURES) {
      it(`${step.name}: ${describeFailure(failure)}`, async () => {
        const { w, alice, trustees: people, secret: oldR } = await aliceWithTrustees(3, 2);
        const [left, ...kept] = people as [EdgeAgent, ...EdgeAgent[]];
        const seq = (await alice.policy()).seq;
        const old = new RecoveryKeys(copy(oldR));
        const { secret } = await prepareRecovery(alice, social(['trustee2', 'trustee3'], 2));
        await settle(alice, ...people);
        const { agent: faulty, faults } = withFaults(alice);
        step.arm(faults, failure);
        await expectCodeAsync(commitRecovery(faulty, new RecoveryKeys(copy(oldR))), step.code);
        expect(faults.struck).toBe(true);

        expect((await commitRecovery(alice, new RecoveryKeys(copy(oldR)))).state).toBe('committed');
        await expectSetUp(w, alice, people, kept, secret, seq, 2);
        // The trustee left out holds nothing for Alice any more, nor the key her shares were sealed to.
        expect(heldShares(left)).toEqual([]);
        expect(left.wallet.listKeys('x25519').filter((k) => k.name.startsWith('trustee-'))).toEqual([]);
        expect(
          trustees(alice)
            .map((t) => t.label)
            .sort(),
        ).toEqual(['trustee2', 'trustee3']);
        // The old secret's backups are gone.
        await expectCodeAsync(fetchBackupIndex(w.agencyUrl, old.locator), 'BACKUP_NOT_FOUND');
        old.wipe();
      });
    }
  }
});

describe('inviting trustees', () => {
  it('checks every connection named before the first offer goes out; one that failed part way is finished by inviting again, one offer each', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    const carol = await w.makeOwner('carol');
    await connect(alice, bob);
    await connect(alice, carol);
    await expectCodeAsync(inviteTrustees(alice, ['bob', 'nobody']), 'CONNECTION_NOT_FOUND');
    await expectCodeAsync(inviteTrustees(alice, ['bob', 'bob']), 'BAD_INPUT');
    expect(trustees(alice)).toEqual([]);
    expect(await drain(bob)).toEqual([]);

    const { agent: faulty, faults } = withFaults(alice);
    faults.arm(inbound, 1, 'before');
    await expectCodeAsync(inviteTrustees(faulty, ['bob', 'carol']), 'AGENCY_UNREACHABLE');
    const again = await inviteTrustees(alice, ['bob', 'carol']);
    expect(again.map((t) => t.label)).toEqual(['bob', 'carol']);
    await settle(alice, bob, carol);
    expect(trusteeOffers(bob)).toHaveLength(1);
    expect(trusteeOffers(carol)).toHaveLength(1);
    expect(trustees(alice).map((t) => [t.label, t.status])).toEqual(
      expect.arrayContaining([
        ['bob', 'offered'],
        ['carol', 'offered'],
      ]),
    );
    expect(trustees(alice)).toHaveLength(2);
    // Accepted, a trustee is not invited again.
    await answerOffer(bob, (trusteeOffers(bob)[0] as { id: string }).id, true);
    await settle(alice, bob);
    await expectCodeAsync(inviteTrustee(alice, 'bob'), 'BAD_INPUT');
    expect((await drain(bob)).filter((e) => e.type === TRUSTEE_OFFER)).toEqual([]);
  });
});
