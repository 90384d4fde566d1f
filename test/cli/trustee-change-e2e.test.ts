/**
 * A trustee change killed between prepare and commit, end to end through real `dkms` processes
 * against `dkms up`: the old trustees still recover the owner.
 */
import { describe, expect, it } from 'vitest';
import { type Json } from '../helpers/cli.js';
import {
  upForFile,
  newOwner,
  newOwners,
  connectAll,
  makeTrustees,
  setupWithTrustees,
  recoverSocially,
  agentKeys,
  type Owner,
} from '../helpers/recovery-cli.js';

const services = upForFile();

describe('recovery end to end, through real processes', () => {
  it('a trustee change killed between prepare and commit leaves the old trustees working', { timeout: 180_000 }, async () => {
    const { agency, env } = services();
    const alice = await newOwner('alice', agency, env);
    const policy = String(alice.init['policy']);
    // The trustees unlock once, as people would (alice does not: her change is killed mid-way, as its own process).
    const people = await newOwners(['trustee1', 'trustee2', 'trustee3', 'trustee4'], agency, env, { session: true });
    await connectAll(alice, people, 'alice');
    await makeTrustees(alice, people.slice(0, 3));
    const printed = await setupWithTrustees(
      alice,
      ['--offline', '--social', '--threshold', '2', '--trustee', 'trustee1', 'trustee2', 'trustee3'],
      people.slice(0, 3).map((p) => p.o),
    );
    const phrase = String((printed[0]?.['paper'] as Json)['mnemonic']);
    await makeTrustees(alice, people.slice(3));

    // The change: trustees 2, 3 and 4, 2 of 3, with a new secret. Killed once the shares are out.
    const change = alice.background(
      ['recovery', 'setup', '--social', '--trustee', 'trustee2', 'trustee3', 'trustee4', '--threshold', '2', '--mnemonic', '--wait', '50', '--json'],
      { DKMS_RECOVERY_PHRASE: phrase },
    );
    expect(JSON.parse(await change.nextLine())).toMatchObject({ state: 'prepared' });
    await people[1]?.o.run(['message', 'inbox']);
    change.kill();
    await change.done;
    expect(((await people[1]?.o.run(['trustee', 'list']))?.['holding'] as Json[])[0]).toMatchObject({ shares: 'active,prepared' });
    expect((await alice.run(['recovery', 'status']))['prepared']).not.toBeNull();

    // Alice loses her device now: trustees 1 and 2 (of the old set) recover her.
    const { device, outcome } = await recoverSocially(agency, env, [people[0]?.o as Owner, people[1]?.o as Owner]);
    expect(outcome).toMatchObject({ state: 'recovered', profile: { policy } });
    expect(await agentKeys(device, policy)).toContain(String((outcome['profile'] as Json)['key']));
  });
});
