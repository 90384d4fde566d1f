/**
 * Recovery from paper, end to end through real `dkms` processes against `dkms up`: an owner
 * recovers from the 24 words alone (after the typos a person makes), and then again from the
 * paper's QR code.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { owner, type Json } from '../helpers/cli.js';
import { upForFile, newOwner, lines, agentKeys } from '../helpers/recovery-cli.js';
import { tempDir } from '../helpers/tmp.js';

const services = upForFile();

describe('recovery end to end, through real processes', () => {
  it('recovers from the 24 words alone, then again from the paper QR code', { timeout: 120_000 }, async () => {
    const { agency, env } = services();
    const first = await newOwner('carol', agency, env);
    const policy = String(first.init['policy']);
    const paperDir = join(tempDir(), 'paper');
    const setup = await first.dkms(['recovery', 'setup', '--offline', '--paper-dir', paperDir, '--json']);
    expect(setup.code, setup.stderr).toBe(0);
    const printed = lines(setup.stdout);
    const words = String((printed[0]?.['paper'] as Json)['mnemonic']).split(' ');
    expect(printed.at(-1)).toMatchObject({ state: 'committed' });
    // A second setup needs the current secret, and is refused before anything changes.
    expect((await first.fails(['recovery', 'setup', '--offline'])).code).toBe('BAD_INPUT');
    expect((await first.fails(['recovery', 'setup'])).code).toBe('BAD_INPUT');
    expect((await first.run(['recovery', 'status']))['prepared']).toBeNull();

    // A new device; the owner types the words with mistakes first.
    const second = owner(tempDir(), env);
    const restore = (phrase: string) => second.dkms(['recovery', 'restore', '--mnemonic', '--agency', agency, '--json'], { DKMS_RECOVERY_PHRASE: phrase });
    const typo = [...words];
    typo[6] = 'zzzz';
    const unknown = await restore(typo.join(' '));
    expect(JSON.parse(unknown.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ error: { code: 'MNEMONIC_UNKNOWN_WORD' } });
    expect(unknown.stderr).toContain('word 7');
    const swapped = [...words];
    [swapped[0], swapped[1]] = [swapped[1] as string, swapped[0] as string];
    if (swapped[0] !== swapped[1]) {
      const checksum = await restore(swapped.join(' '));
      expect(JSON.parse(checksum.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ error: { code: 'MNEMONIC_CHECKSUM' } });
    }
    // Words on the command line are refused (other users could read them in the process list).
    const onCommandLine = await second.dkms(['recovery', 'restore', '--mnemonic', ...words, '--json']);
    expect(JSON.parse(onCommandLine.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ error: { code: 'BAD_INPUT' } });
    expect(onCommandLine.stderr).not.toContain(words.slice(0, 3).join(' '));
    // Valid words of a secret the agency keeps no backups under (an outdated paper is such a
    // secret): BACKUP_NOT_FOUND, with what it may mean, and the wallet the restore began is gone.
    const stranger = await restore(generateMnemonic(wordlist, 256));
    expect(stranger.code).toBe(ERROR_CODES.BACKUP_NOT_FOUND.exit);
    expect(stranger.stderr).toContain('It may be an outdated one: a later `dkms recovery setup` or trustee change replaced it');
    expect(existsSync(join(second.home, 'wallet.db'))).toBe(false);
    const recovered = await restore(words.join('  ').toUpperCase());
    expect(recovered.code, recovered.stderr).toBe(0);
    const outcome = lines(recovered.stdout).at(-1) as Json;
    expect(outcome).toMatchObject({ state: 'recovered', profile: { policy, label: 'carol' } });
    const secondKey = String((outcome['profile'] as Json)['key']);
    expect(await agentKeys(second, policy)).toContain(secondKey);
    expect(await agentKeys(second, policy)).not.toContain(String(first.init['key']));

    // The same paper works again (the next recovery key was committed): a third device, from the QR.
    const third = owner(tempDir(), env);
    const fromQr = await third.run(['recovery', 'restore', '--qr', join(paperDir, 'dkms-recovery-paper.png')]);
    expect(fromQr).toMatchObject({ state: 'recovered', profile: { policy } });
    const keys = await agentKeys(third, policy);
    expect(keys).toContain(String((fromQr['profile'] as Json)['key']));
    expect(keys).not.toContain(secondKey);
  });
});
