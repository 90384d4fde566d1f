/**
 * Recovery end to end, every step a real `dkms` process on loopback against `dkms up`: Alice
 * (laptop, phone, cloud agent) sets up 3-of-5 social recovery and a paper wallet, loses every
 * device and recovers on a new one through three trustees: her old agents are out, her public
 * DID resolves to the new agent's keys, and Bob still talks with her. (The 24 words and the QR
 * code: recovery-words-e2e.test.ts; a trustee change killed half way:
 * trustee-change-e2e.test.ts.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { owner, type Json } from '../helpers/cli.js';
import { upForFile, newOwner, newOwners, connectAll, makeTrustees, setupWithTrustees, recoverSocially, agentKeys } from '../helpers/recovery-cli.js';
import { secretFile, tempDir } from '../helpers/tmp.js';

const services = upForFile();

describe('recovery end to end, through real processes', () => {
  it('3-of-5 trustees and a paper wallet; every device lost; recovered through three trustees', { timeout: 240_000 }, async () => {
    const { agency, env } = services();
    const laptop = await newOwner('alice', agency, env, ['--did']);
    const policy = String(laptop.init['policy']);
    const did = String(laptop.init['did']);
    const cloudKey = String((laptop.init['cloud'] as Json)['key']);

    // Her phone, paired.
    const phone = owner(tempDir(), env);
    const pairing = laptop.background(['agent', 'pair', '--label', 'phone', '--flags', 'PROVE', '--yes', '--json']);
    const invitation = JSON.parse(await pairing.nextLine()) as { invitation: string; passcode: string };
    await phone.run(['agent', 'accept', invitation.invitation, '--passcode-file', secretFile(invitation.passcode), '--label', 'phone', '--wait', '30']);
    expect((await pairing.done).code).toBe(0);

    // Five trustees and Bob, each connected with Alice.
    const [people, bob] = await Promise.all([
      // The trustees and Bob unlock once, as people who use dkms every day would.
      newOwners(['trustee1', 'trustee2', 'trustee3', 'trustee4', 'trustee5'], agency, env, { session: true }),
      newOwner('bob', agency, env, [], { session: true }),
    ]);
    await connectAll(laptop, [...people, { o: bob, name: 'bob' }], 'alice');
    await phone.run(['message', 'inbox']);
    await laptop.run(['message', 'inbox']);
    await makeTrustees(laptop, people);

    // Recovery setup: paper wallet (words, PNG, printable page) and 3-of-5 shares.
    const paperDir = join(tempDir(), 'paper');
    const printed = await setupWithTrustees(
      laptop,
      ['--offline', '--social', '--threshold', '3', '--paper-dir', paperDir],
      people.map((p) => p.o),
    );
    const paper = printed.find((l) => l['paper'] !== undefined)?.['paper'] as { mnemonic: string; files: string[] };
    expect(paper.mnemonic.split(' ')).toHaveLength(24);
    expect(paper.files).toHaveLength(2);
    expect(readFileSync(join(paperDir, 'dkms-recovery-paper.html'), 'utf8')).toContain(paper.mnemonic.split(' ')[23]);
    expect(printed.at(-1)).toMatchObject({ state: 'committed', setup: { offline: true, social: { threshold: 3 } } });
    const status = await laptop.run(['recovery', 'status']);
    expect(status).toMatchObject({ setUp: true, offline: true });
    for (const holding of await Promise.all(people.map((p) => p.o.run(['trustee', 'list']))))
      expect((holding['holding'] as Json[])[0]).toMatchObject({ owner: 'alice', shares: 'active' });

    // A message from Bob before the loss; the wallet changed, so a new backup version is stored.
    await bob.run(['message', 'send', 'alice', 'see you']);
    await laptop.run(['message', 'inbox']);
    const backedUp = (await laptop.run(['recovery', 'status']))['lastBackup'] as { version: number };
    expect(backedUp.version).toBeGreaterThan(1);

    // Every device is lost. A new phone recovers through trustees 1, 2 and 3.
    const { device, outcome } = await recoverSocially(
      agency,
      env,
      people.slice(0, 3).map((p) => p.o),
    );
    expect(outcome).toMatchObject({ state: 'recovered', profile: { policy, label: 'alice', did } });
    const newKey = String((outcome['profile'] as Json)['key']);
    expect(await agentKeys(device, policy)).toEqual([newKey, cloudKey].sort());

    // The old laptop and phone are out: their changes are refused, and each says on its next
    // agent command that a recovery replaced it.
    for (const old of [laptop, phone]) {
      const refused = await old.fails(['policy', 'grant', '--policy', policy, '--agent', newKey, '--flags', 'PROVE', '--key', 'agent-sign']);
      expect(refused.code).toBe('EVENT_UNAUTHORIZED');
      const inbox = await old.dkms(['message', 'inbox']);
      expect(inbox.code).toBe(ERROR_CODES.AGENT_REMOVED.exit);
      expect(inbox.stderr).toMatch(
        /^dkms: AGENT_REMOVED: this device's agent \(z6Mk\w+\) was replaced at \S+ by a recovery of the owner's policy that named other agents \(ledger event \d+\): it no longer acts for the owner/,
      );
    }
    // Her public DID now lists the new agent's keys only.
    const document = (await device.run(['did', 'resolve', did]))['didDocument'] as { verificationMethod: { publicKeyMultibase: string }[] };
    const methods = document.verificationMethod.map((m) => m.publicKeyMultibase);
    expect(methods).toContain(newKey);
    expect(methods).not.toContain(String(laptop.init['key']));

    // Bob accepts the rotation and the conversation goes on, both ways.
    const bobInbox = await bob.run(['message', 'inbox']);
    expect(bobInbox['refused']).toEqual([]);
    await bob.run(['message', 'send', 'alice', 'welcome', 'back']);
    expect(((await device.run(['message', 'inbox']))['messages'] as Json[]).map((m) => m['content'])).toEqual(['welcome back']);
    await device.run(['message', 'send', 'bob', 'thanks']);
    expect(((await bob.run(['message', 'inbox']))['messages'] as Json[]).map((m) => m['content'])).toEqual(['thanks']);
    // The message received before the loss came back with the backup.
    expect(((await device.run(['message', 'inbox', '--all']))['messages'] as Json[]).map((m) => m['content'])).toContain('see you');
  });
});
