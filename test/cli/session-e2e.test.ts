/**
 * What the unlock session is for, with real servers: while `agent pair` waits for the new device
 * (up to the invitation's lifetime), the owner's other commands on that device run. Without a
 * session they cannot: the waiting command holds the wallet (WALLET_BUSY), as the control shows.
 */
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { background, killBackground, owner, type Json } from '../helpers/cli.js';
import { secretFile, tempDir } from '../helpers/tmp.js';
import { afterEach } from 'vitest';

afterEach(killBackground);

describe('a waiting command and the unlock session', { timeout: 60_000 }, () => {
  it('blocks every other command without a session, and none with one', async () => {
    const server = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: tempDir('dkms-services-') });
    const services = JSON.parse(await server.nextLine()) as { ledger: string; agency: string };
    const env = { DKMS_LEDGER: services.ledger };
    const laptop = owner(tempDir('dkms-laptop-'), env);
    const tablet = owner(tempDir('dkms-tablet-'), env);
    await laptop.run(['agent', 'init', '--label', 'laptop', '--agency', services.agency, '--yes']);

    // The control: a pairing waiting in its own process holds the wallet.
    const alone = laptop.background(['agent', 'pair', '--label', 'tablet', '--flags', 'PROVE', '--yes', '--json']);
    await alone.nextLine();
    const busy = await laptop.dkms(['agent', 'list', '--json']);
    expect(busy.code).toBe(ERROR_CODES.WALLET_BUSY.exit);
    alone.kill('SIGINT');
    expect((await alone.done).code).toBe(130);

    const unlocked = await laptop.run(['unlock']);
    const pairing = laptop.background(['agent', 'pair', '--label', 'tablet', '--flags', 'PROVE', '--yes', '--json']);
    const invitation = JSON.parse(await pairing.nextLine()) as { invitation: string; passcode: string };
    // While it waits: reading the ledger, the wallet and the mailbox, and writing the wallet.
    const agents = (await laptop.run(['agent', 'list']))['agents'] as Json[];
    expect(agents.map((a) => a['label']).sort()).toEqual(['cloud', 'laptop']);
    await laptop.run(['key', 'create', '--name', 'meanwhile', '--type', 'ed25519']);
    await laptop.run(['message', 'inbox']);
    const accepted = await tablet.run([
      'agent',
      'accept',
      invitation.invitation,
      '--passcode-file',
      secretFile(invitation.passcode),
      '--label',
      'tablet',
      '--wait',
      '30',
    ]);
    expect(accepted['flags']).toEqual(['PROVE']);
    const paired = await pairing.done;
    expect(paired.code, paired.stderr).toBe(0);
    expect(JSON.parse(paired.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ label: 'tablet', flags: ['PROVE'] });
    const after = (await laptop.run(['agent', 'list']))['agents'] as Json[];
    expect(after.map((a) => a['label']).sort()).toEqual(['cloud', 'laptop', 'tablet']);
    const keys = (await laptop.run(['key', 'list']))['keys'] as Json[];
    expect(keys.map((k) => k['name'])).toContain('meanwhile');
    expect(await laptop.run(['lock'])).toEqual({ locked: true });
    expect(unlocked['already']).toBe(false);
  });
});
