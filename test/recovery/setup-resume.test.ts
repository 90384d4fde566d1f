/**
 * Setting up recovery is several steps: the paper shown, the change kept, a share sent to each
 * trustee; then a backup the new secret opens, the commitment on the ledger, the new setup and
 * its backup, the commit to each trustee. Failed at each of them, before the server did it or
 * after (its answer lost): before the ledger commitment the change is rolled back or kept whole,
 * and setting up again ends as a setup that never failed; after it, committing again finishes
 * the same change. What could never be set up is refused before anything is made or sent.
 */
import { describe, expect, it } from 'vitest';
import { fetchBackupIndex } from '../../src/agency/agency-client.js';
import { DkmsError } from '../../src/errors.js';
import { RecoveryKeys } from '../../src/recovery/secret.js';
import { abortRecoveryChange, commitRecovery, prepareRecovery } from '../../src/recovery/setup.js';
import { readPrepared, readSetup } from '../../src/recovery/state.js';
import { SHARE } from '../../src/recovery/trustees.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { FAILURES, withFaults } from '../helpers/faults.js';
import { aliceAndTrustees, backupPost, copy, describeFailure, expectSetUp, inbound, social, type CommitStep } from '../helpers/recovery-setup.js';
import { drain, settle } from '../helpers/world.js';

describe('a recovery setup is checked before anything is made, shown, kept or sent', () => {
  it('refuses no way to recover, unknown, repeated and unaccepted trustees, and a threshold of 1; and keeps nothing when the paper cannot be shown', async () => {
    const { alice, people } = await aliceAndTrustees(3, 2);
    const seq = (await alice.policy()).seq;
    let shown = 0;
    const show = async () => {
      shown++;
    };
    await expectCodeAsync(prepareRecovery(alice, { offline: false, delay: 0 }, show), 'BAD_INPUT');
    await expectCodeAsync(prepareRecovery(alice, social(['trustee1', 'nobody'], 2), show), 'TRUSTEE_NOT_FOUND');
    await expectCodeAsync(prepareRecovery(alice, social(['trustee1', 'trustee1', 'trustee2'], 2), show), 'BAD_INPUT');
    await expectCodeAsync(prepareRecovery(alice, social(['trustee1', 'trustee2', 'trustee3'], 1), show), 'TRUSTEES_TOO_FEW');
    await expectCodeAsync(prepareRecovery(alice, social(['trustee1', 'trustee2', 'trustee3'], 2), show), 'TRUSTEE_NOT_FOUND');
    expect(shown).toBe(0);
    // The paper could not be written: nothing of the change is kept, no trustee hears of it.
    const failingPaper = async () => {
      throw new DkmsError('IO_ERROR', 'cannot write the paper');
    };
    await expectCodeAsync(prepareRecovery(alice, social(['trustee1', 'trustee2'], 2), failingPaper), 'IO_ERROR');
    expect(readPrepared(alice)).toBeUndefined();
    for (const t of people) expect((await drain(t)).filter((e) => e.type === SHARE)).toEqual([]);
    expect((await alice.policy()).seq).toBe(seq);
    expect(readSetup(alice)).toBeUndefined();
  });
});

describe('a setup whose shares failed to go out is rolled back; setting up again ends as if it never failed', () => {
  for (const nth of [0, 2]) {
    for (const failure of FAILURES) {
      it(`the share to trustee ${nth + 1}: ${describeFailure(failure)}`, async () => {
        const { w, alice, people } = await aliceAndTrustees(3);
        const seq = (await alice.policy()).seq;
        const { agent: faulty, faults } = withFaults(alice);
        faults.arm(inbound, nth, failure);
        let abandoned: Uint8Array | undefined;
        await expectCodeAsync(
          prepareRecovery(faulty, social(['trustee1', 'trustee2', 'trustee3'], 2), async (r) => void (abandoned = copy(r))),
          'AGENCY_UNREACHABLE',
        );
        // Nothing prepared to commit; nothing on the ledger; no backup under the abandoned secret.
        expect(readPrepared(alice)).toBeUndefined();
        expect((await alice.policy()).seq).toBe(seq);
        await settle(alice, ...people);
        await expectCodeAsync(commitRecovery(alice), 'TRUSTEE_CHANGE_INCOMPLETE');

        const { secret } = await prepareRecovery(alice, social(['trustee1', 'trustee2', 'trustee3'], 2));
        await settle(alice, ...people);
        expect((await commitRecovery(alice)).state).toBe('committed');
        await expectSetUp(w, alice, people, people, secret, seq, 2);
        await expectCodeAsync(fetchBackupIndex(w.agencyUrl, new RecoveryKeys(abandoned as Uint8Array).locator), 'BACKUP_NOT_FOUND');
      });
    }
  }
});

const FIRST_SETUP: readonly CommitStep[] = [
  { name: 'the backup the new secret opens', code: 'AGENCY_UNREACHABLE', committed: false, backup: true, arm: (f, x) => f.arm(backupPost, 0, x) },
  { name: 'the commitment on the ledger', code: 'LEDGER_UNREACHABLE', committed: false, arm: (f, x) => f.armLedger((e) => e.type === 'policy.recover', 0, x) },
  { name: "the new setup's backup", code: 'AGENCY_UNREACHABLE', committed: true, backup: true, arm: (f, x) => f.arm(backupPost, 1, x) },
  { name: 'the commit to a trustee', code: 'AGENCY_UNREACHABLE', committed: true, arm: (f, x) => f.arm(inbound, 1, x) },
];

describe('a first setup, its commit failed at each step, finishes when committed again', () => {
  for (const step of FIRST_SETUP) {
    for (const failure of FAILURES) {
      it(`${step.name}: ${describeFailure(failure)}`, async () => {
        const { w, alice, people } = await aliceAndTrustees(3);
        const seq = (await alice.policy()).seq;
        const { secret } = await prepareRecovery(alice, social(['trustee1', 'trustee2', 'trustee3'], 2));
        await settle(alice, ...people);
        const { agent: faulty, faults } = withFaults(alice);
        step.arm(faults, failure);
        await expectCodeAsync(commitRecovery(faulty), step.code);
        expect(faults.struck).toBe(true);
        const committed = step.committed || (step.code === 'LEDGER_UNREACHABLE' && failure === 'after');
        expect((await alice.policy()).seq).toBe(committed ? seq + 1 : seq);
        // Before the commitment the old recovery is untouched; after it, the change cannot be dropped.
        if (committed) await expectCodeAsync(abortRecoveryChange(alice), 'TRUSTEE_CHANGE_INCOMPLETE');
        else expect(readSetup(alice)).toBeUndefined();
        expect(readPrepared(alice)).toBeDefined();

        expect((await commitRecovery(alice)).state).toBe('committed');
        await expectSetUp(w, alice, people, people, secret, seq, step.backup === true && failure === 'after' ? 3 : 2);
      });
    }
  }
});
