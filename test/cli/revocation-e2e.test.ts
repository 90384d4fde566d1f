/**
 * A revocation end to end, every step a real `dkms` process on loopback: Alice's laptop has a
 * cloud agent at the agency `dkms up` runs, and her phone is paired. She revokes the phone with
 * `dkms policy revoke` alone: no `dkms agent revoke`, no sync. Within 2 s of the revocation the
 * phone can no longer pick up, and mail sent to Alice after the revocation never reaches it,
 * while the laptop gets it. The mail comes from a correspondent posting to Alice's cloud agent,
 * as any peer's agent does. From then on every agent command on the phone stops with
 * AGENT_REMOVED, saying that it was revoked and when.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgencyClient, postEnvelope } from '../../src/agency/agency-client.js';
import { agentSigner } from '../../src/agent/provision.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { anoncrypt, didKeyUrl, messageBytes, newMessage, recipientFromKid, wrapForward } from '../../src/didcomm/index.js';
import { x25519Generate } from '../../src/crypto/index.js';
import { ERROR_CODES } from '../../src/errors.js';
import { background, killBackground, owner, type Json } from '../helpers/cli.js';
import { secretFile, tempDir } from '../helpers/tmp.js';

afterEach(killBackground);

/** Mail for every agent of the owner of `cloud`; what it carries is sealed to a throwaway key, which the agency cannot tell. */
async function mailTo(cloud: Json, text: string): Promise<void> {
  const { publicKey } = x25519Generate();
  const inner = anoncrypt(messageBytes(newMessage('https://example.org/test/1.0/note', { text })), [{ kid: didKeyUrl('x25519', publicKey), publicKey }]);
  await postEnvelope(String(cloud['endpoint']), wrapForward(inner, String(cloud['did']), [recipientFromKid(String(cloud['routingKey']))]));
}

// About 12 s on two busy cores; the bound leaves five times that.
describe('revocation end to end, through real processes', { timeout: 60_000 }, () => {
  it('within 2 s of `dkms policy revoke`, the revoked phone picks up nothing, not even mail sent after the revocation', async () => {
    const server = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: tempDir() });
    const services = JSON.parse(await server.nextLine()) as { ledger: string; agency: string };
    const env = { DKMS_LEDGER: services.ledger };
    const laptop = owner(tempDir(), env);
    const phone = owner(tempDir(), env);

    const alice = await laptop.run(['agent', 'init', '--label', 'laptop', '--agency', services.agency, '--yes']);
    const policy = String(alice['policy']);
    const cloud = alice['cloud'] as Json;
    const pairing = laptop.background(['agent', 'pair', '--label', 'phone', '--flags', 'PROVE', '--yes', '--json']);
    const invitation = JSON.parse(await pairing.nextLine()) as { invitation: string; passcode: string };
    await phone.run(['agent', 'accept', invitation.invitation, '--passcode-file', secretFile(invitation.passcode), '--label', 'phone', '--wait', '30']);
    const paired = await pairing.done;
    expect(paired.code, paired.stderr).toBe(0);
    const phoneKey = String((JSON.parse(paired.stdout.trim().split('\n').at(-1) ?? '{}') as Json)['paired']);

    // While it is an agent, the phone gets Alice's mail.
    await mailTo(cloud, 'before');
    expect((await phone.run(['message', 'inbox']))['received']).toBe(1);

    const revoked = await laptop.run(['policy', 'revoke', '--policy', policy, '--agent', phoneKey, '--key', 'agent-sign']);
    await mailTo(cloud, 'after the revocation');
    // The claim is about time: what holds once 2 s have passed since the revocation, so no wait for a condition (that would drop the bound).
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(String(revoked['time'])) + 2000 - Date.now())));

    // The agency keeps no mailbox for the revoked phone: a pickup signed by its key is refused, not answered empty.
    const wallet = await Wallet.open(join(phone.home, 'wallet.db'), rawSecret(phone.walletKey()));
    try {
      await expect(new AgencyClient(services.agency, agentSigner(wallet)).pickup()).rejects.toMatchObject({ code: 'MAILBOX_NOT_FOUND' });
    } finally {
      wallet.close();
    }
    expect((await laptop.run(['message', 'inbox']))['received']).toBe(2);

    // The phone itself says, on every agent command, that it was revoked and when: no "sent", no
    // "no new messages", no advice to back up.
    for (const args of [
      ['message', 'inbox'],
      ['message', 'send', 'anyone', 'hello'],
      ['agent', 'list'],
      ['recovery', 'backup'],
    ]) {
      const refused = await phone.dkms(args);
      expect({ args, exit: refused.code }).toEqual({ args, exit: ERROR_CODES.AGENT_REMOVED.exit });
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toBe(
        `dkms: AGENT_REMOVED: this device's agent (${phoneKey}) was revoked at ${String(revoked['time'])} (ledger event ${String(revoked['gseq'])}): it no longer acts for the owner, and nothing it signs or sends counts. Use one of the owner's current devices, or pair this one again from a fresh data directory\n`,
      );
    }
    expect(await phone.fails(['agent', 'list'])).toEqual({ code: 'AGENT_REMOVED', exit: ERROR_CODES.AGENT_REMOVED.exit });
    // The laptop, still an agent, goes on as before.
    const listing = await laptop.run(['agent', 'list']);
    expect(listing['listed']).toBe(true);
    const agents = listing['agents'] as { key: string; me: boolean }[];
    expect(agents.find((a) => a.me)).toBeDefined();
    expect(agents.map((a) => a.key)).not.toContain(phoneKey);
  });
});
