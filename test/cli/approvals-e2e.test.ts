/**
 * A revocation that needs two signatures, as a new user would run it, every step a real `dkms`
 * process on loopback: Alice pairs her tablet, makes it ADMIN with `dkms policy grant`, sets
 * `dkms policy rules --set revoke=2`, and revokes her cloud agent from the laptop. The laptop
 * cannot finish alone (APPROVAL_TIMEOUT after its wait); the tablet sees the request in
 * `message inbox` and in `agent approvals`, approves it, and the laptop's next inbox submits the
 * revocation with both signatures.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { APPROVAL_REQUEST } from '../../src/agent/revocation.js';
import { ERROR_CODES } from '../../src/errors.js';
import { background, killBackground, owner, type Json } from '../helpers/cli.js';
import { secretFile, tempDir } from '../helpers/tmp.js';

afterEach(killBackground);

// About 20 s on two busy cores; the bound leaves four times that.
describe('co-signing a revocation, through real processes', { timeout: 90_000 }, () => {
  it('the ADMIN tablet is asked to co-sign, sees the request in its inbox and its approvals, and its approval completes the revocation', async () => {
    const server = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: tempDir() });
    const services = JSON.parse(await server.nextLine()) as { ledger: string; agency: string };
    const env = { DKMS_LEDGER: services.ledger };
    const laptop = owner(tempDir(), env);
    const tablet = owner(tempDir(), env);

    const alice = await laptop.run(['agent', 'init', '--label', 'laptop', '--agency', services.agency, '--yes']);
    const policy = String(alice['policy']);
    const cloudKey = String((alice['cloud'] as Json)['key']);
    const pairing = laptop.background(['agent', 'pair', '--label', 'tablet', '--flags', 'PROVE', '--yes', '--json']);
    const invitation = JSON.parse(await pairing.nextLine()) as { invitation: string; passcode: string };
    await tablet.run(['agent', 'accept', invitation.invitation, '--passcode-file', secretFile(invitation.passcode), '--label', 'tablet', '--wait', '30']);
    const paired = await pairing.done;
    expect(paired.code, paired.stderr).toBe(0);
    const tabletKey = String((JSON.parse(paired.stdout.trim().split('\n').at(-1) ?? '{}') as Json)['paired']);

    await laptop.run(['policy', 'grant', '--policy', policy, '--agent', tabletKey, '--flags', 'ADMIN', '--key', 'agent-sign']);
    await laptop.run(['policy', 'rules', '--policy', policy, '--set', 'revoke=2', '--key', 'agent-sign']);
    // The grant kept the tablet's key-agreement key: it can still be asked.
    const agents = (await laptop.run(['agent', 'list']))['agents'] as Json[];
    expect(agents.find((a) => a['key'] === tabletKey)).toMatchObject({ flags: 'ADMIN', kx: expect.stringMatching(/^z6LS/) });

    // Alone, the laptop waits for a co-signer and gives up; the request stays open.
    expect(await laptop.fails(['agent', 'revoke', 'cloud', '--wait', '1'])).toEqual({ code: 'APPROVAL_TIMEOUT', exit: ERROR_CODES.APPROVAL_TIMEOUT.exit });

    const inbox = await tablet.run(['message', 'inbox']);
    const asked = (inbox['handled'] as Json[]).find((e) => e['type'] === APPROVAL_REQUEST);
    expect(asked?.['detail']).toContain("revoke agent 'cloud'");
    const approvals = (await tablet.run(['agent', 'approvals']))['approvals'] as Json[];
    expect(approvals).toEqual([expect.objectContaining({ from: 'laptop', reason: expect.stringContaining(cloudKey) })]);

    await tablet.run(['agent', 'approve', String(approvals[0]?.['id']), '--yes']);
    const done = await laptop.run(['message', 'inbox']);
    expect((done['handled'] as Json[]).map((e) => e['detail'])).toContainEqual(expect.stringContaining(`revoked ${cloudKey} with 2 signatures`));
    const after = ((await laptop.run(['agent', 'list']))['agents'] as Json[]).map((a) => a['key']);
    expect(after).not.toContain(cloudKey);
    expect(after).toContain(tabletKey);
    expect((await tablet.run(['agent', 'approvals']))['approvals']).toEqual([]);
  });
});
