/**
 * Agents end to end, every step a real `dkms` process on loopback: Alice's laptop (first edge
 * agent) with a cloud agent at the agency `dkms up` runs; her phone paired by passcode; Bob with
 * his own agent; Alice and Bob connect and exchange messages through their cloud agents; Alice
 * rotates her connection keys and Bob accepts the rotation; Alice revokes the phone from the
 * laptop, after which the phone's ledger events and signatures are refused.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgencyClient } from '../../src/agency/agency-client.js';
import { agentSigner } from '../../src/agent/provision.js';
import { ERROR_CODES } from '../../src/errors.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { background, killBackground, owner, type Json } from '../helpers/cli.js';
import { filesUnder, notPrivate } from '../helpers/private.js';
import { secretFile, suiteDirs, tempDir } from '../helpers/tmp.js';

type Owner = ReturnType<typeof owner>;

// One story in steps that run in order, each on what the steps before it left: every `dkms`
// command is a process of its own (about half a second each, most of it Node starting: wallets
// open with raw key files, not passphrases; see owner() in helpers/cli.ts).
// Each step takes up to about 15 s on two busy cores; the bound leaves four times that.
describe('agents end to end, through real processes', { timeout: 60_000 }, () => {
  afterAll(killBackground);
  const lasting = suiteDirs();
  let services: { ledger: string; agency: string };
  let servicesHome: string;
  let laptop: Owner;
  let phone: Owner;
  let bob: Owner;
  let env: Record<string, string>;
  let policy: string;
  let phoneKey: string;

  it('starts a ledger and an agency, and makes Alice (with a DID) and Bob their first agents', async () => {
    servicesHome = lasting();
    const server = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: servicesHome });
    services = JSON.parse(await server.nextLine()) as { ledger: string; agency: string };
    env = { DKMS_LEDGER: services.ledger };

    laptop = owner(lasting(), env, { session: true });
    phone = owner(lasting(), env, { session: true });
    bob = owner(lasting(), env, { session: true });

    const alice = await laptop.run(['agent', 'init', '--label', 'laptop', '--did', '--agency', services.agency, '--yes']);
    policy = String(alice['policy']);
    expect(policy).toMatch(/^policy:/);
    expect((alice['cloud'] as Json)['agency']).toBe(services.agency);
    await bob.run(['agent', 'init', '--label', 'bob', '--agency', services.agency, '--yes']);
  });

  it('pairs the phone by passcode, and the same invitation cannot pair a second device', async () => {
    // Pairing: the laptop shows an invitation and passcode and waits; the phone answers.
    const pairing = laptop.background(['agent', 'pair', '--label', 'phone', '--flags', 'PROVE', '--yes', '--json']);
    const invitation = JSON.parse(await pairing.nextLine()) as { invitation: string; passcode: string };
    expect(invitation.invitation).toMatch(/^dkms-pair:/);
    expect(invitation.passcode).toMatch(/^\d{4}-\d{4}$/);
    const accepted = await phone.run([
      'agent',
      'accept',
      invitation.invitation,
      '--passcode-file',
      secretFile(invitation.passcode),
      '--label',
      'phone',
      '--wait',
      '30',
    ]);
    expect(accepted['policy']).toBe(policy);
    expect(accepted['flags']).toEqual(['PROVE']);
    const paired = await pairing.done;
    expect(paired.code, paired.stderr).toBe(0);
    phoneKey = String((JSON.parse(paired.stdout.trim().split('\n').at(-1) ?? '{}') as Json)['paired']);
    const agents = (await laptop.run(['agent', 'list']))['agents'] as { key: string; label: string; flags: string }[];
    expect(agents.find((a) => a.key === phoneKey)).toMatchObject({ label: 'phone', flags: 'PROVE' });

    // The same invitation cannot pair a second device.
    const thief = owner(tempDir(), env);
    expect((await thief.fails(['agent', 'accept', invitation.invitation, '--passcode-file', secretFile(invitation.passcode), '--wait', '1'])).code).toBe(
      'PAIRING_TIMEOUT',
    );
    const refused = (await laptop.run(['message', 'inbox']))['refused'] as { code: string }[];
    expect(refused.map((r) => r.code)).toContain('INVITATION_USED');
  });

  it('connects Alice and Bob, the phone joining with its own keys, and carries messages both ways', async () => {
    const connectionInvite = await laptop.run(['connection', 'invite', '--label', 'bob']);
    const bobSide = await bob.run(['connection', 'accept', String(connectionInvite['invitation']), '--label', 'alice']);
    await laptop.run(['message', 'inbox']);
    await phone.run(['message', 'inbox']);
    await laptop.run(['message', 'inbox']);
    await bob.run(['message', 'inbox']);
    const aliceConnections = (await laptop.run(['connection', 'list']))['connections'] as Json[];
    expect(aliceConnections).toHaveLength(1);
    expect(aliceConnections[0]).toMatchObject({ label: 'bob', state: 'active', peer: bobSide['id'], myKeys: 2 });

    // Through the cloud agents.
    await laptop.run(['message', 'send', 'bob', 'hello', 'bob']);
    expect(((await bob.run(['message', 'inbox']))['messages'] as Json[]).map((m) => m['content'])).toEqual(['hello bob']);
    // The sender keeps what it sent: `--all` shows it, marked as sent; a plain inbox does not.
    expect((await laptop.run(['message', 'inbox', '--all']))['messages']).toEqual([
      expect.objectContaining({ content: 'hello bob', label: 'bob', direction: 'out' }),
    ]);
    expect((await laptop.run(['message', 'inbox']))['messages']).toEqual([]);
    await bob.run(['message', 'send', 'alice', 'hi', 'alice']);
    expect(((await laptop.run(['message', 'inbox']))['messages'] as Json[]).map((m) => m['content'])).toEqual(['hi alice']);
    // Shown to a person with the time it was sent (its created_time), not the time it arrived.
    const human = await phone.dkms(['message', 'inbox']);
    expect(human.code, human.stderr).toBe(0);
    const stored = ((await phone.run(['message', 'inbox', '--all']))['messages'] as { content: string; sent: number }[]).find((m) => m.content === 'hi alice');
    expect(stored).toBeDefined();
    expect(human.stdout.trim().split('\n')).toContain(`[${new Date((stored?.sent ?? 0) * 1000).toISOString()}] bob: hi alice`);
  });

  it("rotates Alice's connection keys: Bob verifies and accepts the rotation, and messages still flow", async () => {
    const before = ((await bob.run(['connection', 'list']))['connections'] as Json[])[0] as Json;
    await laptop.run(['connection', 'rotate', 'bob']);
    await bob.run(['message', 'inbox']);
    const after = ((await bob.run(['connection', 'list']))['connections'] as Json[])[0] as Json;
    expect(after['peerSeq']).toBe(Number(before['peerSeq']) + 1);
    expect(after['flags']).toEqual([]);
    await bob.run(['message', 'send', 'alice', 'after', 'rotation']);
    expect(((await laptop.run(['message', 'inbox']))['messages'] as Json[]).map((m) => m['content'])).toEqual(['after rotation']);
  });

  it("revokes the phone from the laptop: Bob's view drops its key, and its later events, signatures and mail are refused", async () => {
    // The phone signs a file while it is an agent: valid.
    const doc = join(phone.home, 'doc.txt');
    writeFileSync(doc, 'signed by the phone');
    const early = String((await phone.run(['key', 'sign', '--name', 'agent-sign', '--in', doc]))['signature']);
    const signedAt = new Date().toISOString();
    await laptop.run(['verify', '--policy', policy, '--signer', phoneKey, '--signature', early, '--in', doc]);

    // Alice revokes the phone from the laptop: Bob's view of Alice's keys drops the phone's key.
    const revoked = await laptop.run(['agent', 'revoke', 'phone']);
    expect(revoked).toMatchObject({ state: 'revoked', target: phoneKey });
    expect(revoked['rotated']).toHaveLength(1);
    await bob.run(['message', 'inbox']);
    expect((((await bob.run(['connection', 'list']))['connections'] as Json[])[0] as Json)['peerKeys']).toBe(1);
    // The phone says so itself, on its next agent command.
    expect(await phone.fails(['agent', 'list'])).toEqual({ code: 'AGENT_REMOVED', exit: ERROR_CODES.AGENT_REMOVED.exit });

    // The phone's later ledger events and signatures are refused.
    const grant = await phone.fails(['policy', 'grant', '--policy', policy, '--agent', phoneKey, '--flags', 'ADMIN', '--key', 'agent-sign']);
    expect(grant).toEqual({ code: 'EVENT_UNAUTHORIZED', exit: ERROR_CODES.EVENT_UNAUTHORIZED.exit });
    const late = String((await phone.run(['key', 'sign', '--name', 'agent-sign', '--in', doc]))['signature']);
    const verdict = await laptop.fails(['verify', '--policy', policy, '--signer', phoneKey, '--signature', late, '--in', doc]);
    expect(verdict.code).toBe('SIGNATURE_INVALID');
    // The signature made before the revocation: refused at now, with a hint, and valid at its time.
    const atNow = await laptop.dkms(['verify', '--policy', policy, '--signer', phoneKey, '--signature', early, '--in', doc, '--json']);
    expect((JSON.parse(atNow.stdout) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'SIGNATURE_INVALID',
      message: expect.stringMatching(/^REVOKED: .*\(a signature made before then verifies with --time <when it was made>\)$/),
    });
    expect(await laptop.run(['verify', '--policy', policy, '--signer', phoneKey, '--signature', early, '--in', doc, '--time', signedAt])).toMatchObject({
      valid: true,
      time: signedAt,
    });
    // With --time given, no hint: the time is the claim being checked.
    const late2 = await laptop.dkms([
      'verify',
      '--policy',
      policy,
      '--signer',
      phoneKey,
      '--signature',
      late,
      '--in',
      doc,
      '--time',
      new Date().toISOString(),
      '--json',
    ]);
    expect((JSON.parse(late2.stdout) as { error: { message: string } }).error.message).not.toContain('--time');
    // Its mailbox is gone: nothing reaches it any more, and the agency says so.
    await bob.run(['message', 'send', 'alice', 'not for the phone']);
    await phone.lock();
    const wallet = await Wallet.open(join(phone.home, 'wallet.db'), rawSecret(phone.walletKey()));
    try {
      await expect(new AgencyClient(services.agency, agentSigner(wallet)).pickup()).rejects.toMatchObject({ code: 'MAILBOX_NOT_FOUND' });
    } finally {
      wallet.close();
    }
    // The phone's own inbox stops before asking: it was revoked.
    expect(await phone.fails(['message', 'inbox'])).toEqual({ code: 'AGENT_REMOVED', exit: ERROR_CODES.AGENT_REMOVED.exit });
  });

  it('checks `agent init` before it writes anything, and finishes one that failed half way when run again', async () => {
    const carol = owner(lasting(), env);
    // No consent at a non-terminal: refused before a wallet, a key or a ledger event exists.
    const refused = await carol.fails(['agent', 'init', '--label', 'carol', '--did', '--agency', services.agency]);
    expect(refused).toEqual({ code: 'BAD_INPUT', exit: ERROR_CODES.BAD_INPUT.exit });
    expect(await carol.fails(['agent', 'init', '--label', 'carol', '--agency', 'ftp://agency.example', '--yes'])).toEqual({
      code: 'BAD_INPUT',
      exit: ERROR_CODES.BAD_INPUT.exit,
    });
    expect(filesUnder(carol.home)).toEqual([]);
    // The agency is out of reach: the policy and DID are made, the cloud agent is not.
    const dead = 'http://127.0.0.1:9';
    expect((await carol.fails(['agent', 'init', '--label', 'carol', '--did', '--agency', dead, '--yes'])).code).toBe('AGENCY_UNREACHABLE');
    const half = await carol.run(['agent', 'list']);
    // Run again with the agency in reach: only the registration is left, and it is done.
    const done = await carol.run(['agent', 'init', '--label', 'carol', '--did', '--agency', services.agency, '--yes']);
    expect(done['policy']).toBe(half['policy']);
    expect((done['cloud'] as Json)['agency']).toBe(services.agency);
    expect(String(done['did'])).toMatch(/^did:dkms:/);
    expect((await carol.fails(['agent', 'init', '--label', 'carol', '--agency', services.agency, '--yes'])).code).toBe('AGENT_EXISTS');
  });

  it('keeps every file of every data directory private to its user (0600 files in 0700 directories), write-ahead logs included', () => {
    const homes = [servicesHome, laptop.home, phone.home, bob.home];
    // The walk sees the stores and their logs: the ledger's and the agency's, and each wallet's.
    const names = homes.flatMap((home) => filesUnder(home));
    for (const name of ['ledger.db', 'ledger.db-wal', 'agency.db', 'agency.db-wal', 'wallet.db']) expect(names).toContain(name);
    // (doc.txt is the document the test itself wrote for the phone to sign.)
    for (const home of homes) expect(notPrivate(home).filter((entry) => !entry.includes('doc.txt'))).toEqual([]);
  });
});
