/**
 * Social recovery walked as users would, in process over loopback HTTP with a real ledger and a
 * real agency (docs/recovery.md): Alice makes five trustees, sets up 3-of-5 recovery, loses
 * every device, and recovers on a new one through three of them; her connection with Bob keeps
 * working. Around it, what keeps it safe: trustees release nothing without the challenge the
 * owner reads out, wrong answers are recorded and refused, requests are rate limited, the
 * backup endpoint wants a committed recovery key, a half-done trustee change leaves the old set
 * working, and a thief holding a device loses to the recovery key.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgencyClient, fetchBackupIndex } from '../../src/agency/agency-client.js';

import { connections, inbox, peerState, rotateConnection, sendText } from '../../src/agent/connections.js';
import { ALL_HANDLERS } from '../../src/recovery/protocols.js';
import type { EdgeAgent } from '../../src/agent/edge-agent.js';
import { agentSigner, provisionKeys } from '../../src/agent/provision.js';
import { revokeAgent } from '../../src/agent/revocation.js';
import { equalBytes, type Signer, toBase64url } from '../../src/crypto/index.js';
import { nextEvent, signEvent } from '../../src/ledger/build.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { parseBackup } from '../../src/recovery/backup.js';
import {
  CHALLENGE_WORDS,
  REQUEST_SCHEME,
  REQUESTS_PER_HOUR,
  addRecoveryRequest,
  approveRecoveryRequest,
  collectReleases,
  createRecoveryRequest,
  denyRecoveryRequest,
  rebuiltSecrets,
  recoveryRequests,
} from '../../src/recovery/requests.js';
import { cancelRecovery, completeRecovery, noBackupMessage, restoreFromSecret } from '../../src/recovery/restore.js';
import { RecoveryKeys } from '../../src/recovery/secret.js';
import { commitRecovery, makeBackup, prepareRecovery } from '../../src/recovery/setup.js';
import { readSetup } from '../../src/recovery/state.js';
import { answerOffer, heldShares, inviteTrustee, trusteeOffers } from '../../src/recovery/trustees.js';
import { expectCodeAsync, expectCode } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { aliceWithTrustees, connect, drain, recoverThrough, settle } from '../helpers/world.js';
import { CATEGORIES } from '../../src/agent/agent-store.js';
import { RECOVERY_CATEGORIES } from '../../src/recovery/categories.js';

const PLANTED = 'test.planted';

/** Whether any 8 consecutive bytes of R appear in any item of the agent's categories, raw or as base64url or hex text. */
function carriesSecret(agent: EdgeAgent, secret: Uint8Array): boolean {
  const windows = Array.from({ length: secret.length - 7 }, (_, i) => Buffer.from(secret.subarray(i, i + 8)));
  for (const category of [...Object.values(CATEGORIES), ...Object.values(RECOVERY_CATEGORIES), PLANTED]) {
    for (const item of agent.wallet.find({ category })) {
      const raw = Buffer.from(item.value);
      const text = raw.toString('latin1');
      if (windows.some((w) => raw.includes(w) || text.includes(w.toString('hex')))) return true;
      if (text.includes(toBase64url(secret).slice(0, 11)) || text.includes(toBase64url(secret.subarray(8)).slice(0, 11))) return true;
    }
  }
  return false;
}

/** Test-only: stores R in an item, to show `carriesSecret` finds it. */
function t0Put(agent: EdgeAgent, secret: Uint8Array): void {
  agent.wallet.put(PLANTED, 'r', secret);
}

const agentKeys = async (agent: EdgeAgent) => (await agent.policy()).policy.agents.map((a) => a.key).sort();

describe('social recovery, 3 of 5', () => {
  it('Alice loses every device and recovers through three trustees; Bob keeps talking to her', async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(5, 3);
    const bob = await w.makeOwner('bob');
    await connect(alice, bob);
    await makeBackup(alice);
    const laptopKey = alice.profile.key;
    const cloudKey = alice.cloud().key;

    // Each trustee holds one active share, and nothing in its wallet carries R.
    for (const t of people) {
      const held = heldShares(t);
      expect(held).toHaveLength(1);
      expect(held[0]?.shares.map((s) => s.state)).toEqual(['active']);
      expect(carriesSecret(t, secret)).toBe(false);
    }
    // The check can see R where it is: in the bytes of the item that holds it, had it been stored.
    t0Put(people[0] as EdgeAgent, secret);
    expect(carriesSecret(people[0] as EdgeAgent, secret)).toBe(true);

    const { device, secrets } = await recoverThrough(w, people.slice(0, 3));
    expect(secrets).toHaveLength(1);
    expect(equalBytes(secrets[0] as Uint8Array, secret)).toBe(true);
    const steps: string[] = [];
    const outcome = await restoreFromSecret(device, secrets[0] as Uint8Array, { agency: w.agencyUrl, onProgress: (step) => steps.push(step) });
    expect(outcome.state).toBe('recovered');
    // A person waiting is told each step as it begins.
    expect(steps).toEqual([
      `Finding your backups at ${w.agencyUrl}…`,
      `Restoring your wallet from backup version ${String(outcome.backupVersion)}…`,
      'Replacing your old agents with this device on the ledger…',
      'Moving your mailbox and connections to this device, and backing up…',
    ]);

    // The ledger: the laptop is out, the new device and the cloud agent are in.
    expect(await agentKeys(device)).toEqual([device.profile.key, cloudKey].sort());
    expect((await device.policy()).policy.agents.find((a) => a.key === device.profile.key)?.flags).toBe(ALL_FLAGS);
    expect(device.profile.policy).toBe(alice.profile.policy);
    // Her link secret and connections came back from the backup.
    expect(device.store.linkSecret()).toEqual(alice.store.linkSecret());
    // The old laptop can no longer change her policy.
    const record = await alice.policy();
    const grant = signEvent(nextEvent('policy.grant', record.subject, record, { agent: { key: laptopKey, flags: FLAGS.PROVE } }), [agentSigner(alice.wallet)]);
    await expectCodeAsync(alice.ledger.submit(grant), 'EVENT_UNAUTHORIZED');

    // Bob learns of the rotation and talks to the new device; the new device answers.
    await drain(bob);
    await sendText(bob, 'alice', 'are you back?');
    await drain(device);
    expect(inbox(device).map((m) => m.content)).toContain('are you back?');
    await sendText(device, 'bob', 'yes, on a new phone');
    await drain(bob);
    expect(inbox(bob).map((m) => m.content)).toContain('yes, on a new phone');
    // The next recovery key is committed, so the same paper and shares work again.
    expect(readSetup(device)?.index).toBe(1);
  });

  it('two shares are not enough, and a trustee without the challenge releases nothing', async () => {
    const { w, trustees: people } = await aliceWithTrustees(5, 3);
    const { secrets } = await recoverThrough(w, people.slice(0, 2));
    expect(secrets).toEqual([]);

    const device = await w.newAgent();
    const { text, challenge, request } = createRecoveryRequest(device, { agency: w.agencyUrl, label: 'alice?' });
    const t = people[0] as EdgeAgent;
    addRecoveryRequest(t, text);
    expect(await collectReleases(device)).toEqual([]);
    // Wrong answers are refused and recorded; the third refuses the request for good.
    const wrong = challenge === 'abandon ability able about above absent' ? 'zoo zoo zoo zoo zoo zoo' : 'abandon ability able about above absent';
    await expectCodeAsync(approveRecoveryRequest(t, request.id, 'alice', wrong), 'CHALLENGE_WRONG');
    await expectCodeAsync(approveRecoveryRequest(t, request.id, 'alice', wrong), 'CHALLENGE_WRONG');
    const mine = () => recoveryRequests(t).find((r) => r.id === request.id);
    expect(mine()?.failures).toHaveLength(2);
    await expectCodeAsync(approveRecoveryRequest(t, request.id, 'alice', wrong), 'CHALLENGE_WRONG');
    expect(mine()?.status).toBe('refused');
    await expectCodeAsync(approveRecoveryRequest(t, request.id, 'alice', challenge), 'RECOVERY_REQUEST_NOT_FOUND');
    expect(await collectReleases(device)).toEqual([]);
    expect(await rebuiltSecrets(device)).toEqual([]);
  });

  it('a request swapped on the way fails the challenge the owner reads; the text holds nothing to grind', async () => {
    const { w, trustees: people } = await aliceWithTrustees(3, 2);
    const phone = await w.newAgent();
    const real = createRecoveryRequest(phone, { agency: w.agencyUrl, label: 'alice (new phone)' });
    expect(real.challenge.split(' ')).toHaveLength(CHALLENGE_WORDS);
    // The text carries only public facts: no hash of the challenge or of anything secret.
    const fields = JSON.parse(Buffer.from(real.text.slice(REQUEST_SCHEME.length), 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(fields).sort()).toEqual(['expires', 'id', 'key', 'kx', 'label', 'v']);
    // Mallory intercepts the mail and sends her own request, same label, to the trustee.
    const mallory = createRecoveryRequest(await w.newAgent(), { agency: w.agencyUrl, label: 'alice (new phone)' });
    const t = people[0] as EdgeAgent;
    addRecoveryRequest(t, mallory.text);
    // Alice reads her challenge to the trustee: it does not match Mallory's request.
    await expectCodeAsync(approveRecoveryRequest(t, mallory.request.id, 'alice', real.challenge), 'CHALLENGE_WRONG');
    // With the real request, the same words work, however the trustee types them.
    addRecoveryRequest(t, real.text);
    await approveRecoveryRequest(t, real.request.id, 'alice', real.challenge.toUpperCase().replace(/ /g, ', '));
  });

  it('a trustee takes a limited number of requests per hour, and can deny one', async () => {
    const { w, trustees: people } = await aliceWithTrustees(3, 2);
    const t = people[0] as EdgeAgent;
    const texts: string[] = [];
    for (let i = 0; i <= REQUESTS_PER_HOUR; i++) texts.push(createRecoveryRequest(await w.newAgent(), { agency: w.agencyUrl, label: `x${i}` }).text);
    for (const text of texts.slice(0, REQUESTS_PER_HOUR)) addRecoveryRequest(t, text);
    expectCode(() => addRecoveryRequest(t, texts[REQUESTS_PER_HOUR] as string), 'RECOVERY_RATE_LIMITED');
    expect(recoveryRequests(t)).toHaveLength(REQUESTS_PER_HOUR);
    // An hour later it takes requests again.
    addRecoveryRequest(t, texts[REQUESTS_PER_HOUR] as string, Date.now() + 3601_000);
    const first = recoveryRequests(t)[0] as { id: string };
    expect(denyRecoveryRequest(t, first.id).status).toBe('denied');
  });
});

describe('backups', () => {
  it('are released only to a request signed by the committed recovery key', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const keys = new RecoveryKeys(secret);
    const index = await fetchBackupIndex(w.agencyUrl, keys.locator);
    expect(index.policy).toBe(alice.profile.policy);
    expect(index.versions.length).toBeGreaterThan(0);
    const committed = keys.signer(0);
    const asKey = (s: Signer) => new AgencyClient(w.agencyUrl, s);
    // Alice's own agent key, the next (not yet committed) recovery key: refused.
    await expectCodeAsync(asKey(alice.signingKey()).getBackup(keys.locator), 'BACKUP_UNAUTHORIZED');
    await expectCodeAsync(asKey(keys.signer(1)).getBackup(keys.locator), 'BACKUP_UNAUTHORIZED');
    // No signature at all.
    const unsigned = await fetch(`${w.agencyUrl}/v1/backups/${keys.locator}/data`);
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { code: string }).code).toBe('BACKUP_UNAUTHORIZED');
    // The committed key gets the newest version; it is encrypted, naming only public facts.
    const got = await asKey(committed).getBackup(keys.locator);
    const { header } = parseBackup(got.data);
    expect(header.backupKey).toBe(keys.backupKey);
    expect(Buffer.from(got.data).toString('latin1')).not.toContain('link-secret');
    keys.wipe();
  });
});

describe('a backup file', () => {
  it("restores without the agency's copy, and only with its own recovery secret", async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const file = join(tempDir(), 'alice.backup');
    await makeBackup(alice, { file });
    const bytes = new Uint8Array(readFileSync(file));
    const other = await aliceWithTrustees(3, 2);
    await expectCodeAsync(restoreFromSecret(await w.newAgent(), other.secret, { agency: w.agencyUrl, backup: bytes }), 'BACKUP_UNREADABLE');
    const device = await w.newAgent();
    const outcome = await restoreFromSecret(device, secret, { agency: 'http://127.0.0.1:9', backup: bytes });
    expect(outcome).toMatchObject({ state: 'recovered', backupVersion: 0, warnings: [] });
    expect(await agentKeys(device)).toEqual([device.profile.key, alice.cloud().key].sort());
    expect(device.profile.cloud?.agency).toBe(alice.cloud().agency);
  });
});

describe('changing trustees', () => {
  it('a change prepared but never committed leaves the old set working', async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(3, 2);
    const newcomer = await w.makeOwner('trustee4');
    await connect(alice, newcomer);
    await inviteTrustee(alice, 'trustee4');
    await settle(alice, newcomer);
    await answerOffer(newcomer, (trusteeOffers(newcomer)[0] as { id: string }).id, true);
    await settle(alice, newcomer);
    // New shares of a new secret go to trustees 2, 3 and 4; then Alice's device is lost.
    await prepareRecovery(alice, { offline: false, social: { trustees: ['trustee2', 'trustee3', 'trustee4'], threshold: 2, insist: false }, delay: 0 });
    await settle(alice, ...people, newcomer);
    expect(
      heldShares(people[1] as EdgeAgent)[0]
        ?.shares.map((s) => s.state)
        .sort(),
    ).toEqual(['active', 'prepared']);

    // Trustees 1 and 2 release what they hold: the old set is complete, the new one is not.
    const { device, secrets } = await recoverThrough(w, people.slice(0, 2));
    expect(secrets).toHaveLength(1);
    expect(equalBytes(secrets[0] as Uint8Array, secret)).toBe(true);
    expect((await restoreFromSecret(device, secrets[0] as Uint8Array, { agency: w.agencyUrl })).state).toBe('recovered');
  });

  it('a working agent gets the current secret from its trustees (no paper) to change them', async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(3, 2);
    const { challenge, request, text } = createRecoveryRequest(alice, { agency: w.agencyUrl, label: 'alice' });
    for (const t of people.slice(1)) {
      addRecoveryRequest(t, text);
      await approveRecoveryRequest(t, request.id, 'alice', challenge);
    }
    await collectReleases(alice, 0, ALL_HANDLERS);
    const [current] = (await rebuiltSecrets(alice)).map((r) => r.secret);
    expect(equalBytes(current as Uint8Array, secret)).toBe(true);
    await prepareRecovery(alice, { offline: true, social: { trustees: ['trustee2', 'trustee3'], threshold: 2, insist: true }, delay: 0 });
    await settle(alice, ...people);
    expect((await commitRecovery(alice, new RecoveryKeys(current as Uint8Array))).state).toBe('committed');
    // The released shares (together, the old R) do not stay in the wallet.
    expect(alice.wallet.find({ category: RECOVERY_CATEGORIES.releasedShare })).toEqual([]);
    expect(readSetup(alice)?.social?.trustees).toHaveLength(2);
  });

  it('once committed, the old secret no longer recovers and old trustees forget their shares', async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(3, 2);
    const old = new RecoveryKeys(secret);
    await prepareRecovery(alice, { offline: true, social: { trustees: ['trustee1', 'trustee2'], threshold: 2, insist: true }, delay: 0 });
    await settle(alice, ...people);
    await expectCodeAsync(commitRecovery(alice), 'BAD_INPUT');
    expect((await commitRecovery(alice, old)).state).toBe('committed');
    await settle(alice, ...people);
    expect(heldShares(people[2] as EdgeAgent)).toEqual([]);
    expect(heldShares(people[0] as EdgeAgent)[0]?.shares.map((s) => s.state)).toEqual(['active']);
    // The old secret's backups are gone and its key is no longer committed.
    await expectCodeAsync(fetchBackupIndex(w.agencyUrl, old.locator), 'BACKUP_NOT_FOUND');
    const device = await w.newAgent();
    const refused = await expectCodeAsync(restoreFromSecret(device, secret, { agency: w.agencyUrl }), 'BACKUP_NOT_FOUND');
    // The words say what an outdated paper is and what to use instead.
    expect(refused.message).toBe(noBackupMessage(w.agencyUrl));
    expect(refused.message).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+ holds no backup for this recovery secret\. It may be an outdated one: .*use your newest paper, or your trustees/,
    );
    old.wipe();
  });
});

describe('compromise', () => {
  it("a thief who revoked the owner's other agents still loses to the recovery key", async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const phone = await w.pairAgent(alice, 'phone', ALL_FLAGS);
    await makeBackup(alice);
    // The phone is stolen; the thief revokes the laptop first.
    await revokeAgent(phone, alice.profile.key);
    expect(await agentKeys(phone)).not.toContain(alice.profile.key);
    const device = await w.newAgent();
    expect((await restoreFromSecret(device, secret, { agency: w.agencyUrl })).state).toBe('recovered');
    expect(await agentKeys(device)).toEqual([device.profile.key, device.cloud().key].sort());
    // The thief's device still signs, and every change it tries is refused.
    const record = await device.policy();
    const takeBack = signEvent(
      nextEvent('policy.grant', record.subject, record, { agent: { key: phone.profile.key, kx: phone.profile.kx, flags: ALL_FLAGS } }),
      [agentSigner(phone.wallet)],
    );
    await expectCodeAsync(phone.ledger.submit(takeBack), 'EVENT_UNAUTHORIZED');
    const revokeOwner = signEvent(nextEvent('policy.revoke', record.subject, record, { key: device.profile.key }), [agentSigner(phone.wallet)]);
    await expectCodeAsync(phone.ledger.submit(revokeOwner), 'EVENT_UNAUTHORIZED');
    expect(await agentKeys(device)).toEqual([device.profile.key, device.cloud().key].sort());
  });

  it("the thief signing while the owner recovers: the ledger ends with only the owner's new agent", async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const phone = await w.pairAgent(alice, 'phone', ALL_FLAGS);
    await makeBackup(alice);
    const device = await w.newAgent();
    // The thief keeps granting and revoking a key of its own while the owner restores.
    const extra = await w.newAgent();
    const extraKeys = provisionKeys(extra.wallet);
    let stop = false;
    let firstChange: () => void = () => undefined;
    const changed = new Promise<void>((resolve) => (firstChange = resolve));
    const thief = (async () => {
      const codes: string[] = [];
      while (!stop) {
        const record = await phone.policy();
        const granted = record.policy.agents.some((a) => a.key === extraKeys.key);
        const body = granted ? { key: extraKeys.key } : { agent: { key: extraKeys.key, kx: extraKeys.kx, flags: FLAGS.PROVE } };
        const event = signEvent(nextEvent(granted ? 'policy.revoke' : 'policy.grant', record.subject, record, body), [agentSigner(phone.wallet)]);
        await phone.ledger.submit(event).then(
          () => {
            codes.push('accepted');
            firstChange();
          },
          (e: { code?: string }) => codes.push(e.code ?? 'error'),
        );
        // A person with a stolen phone, not a tight loop: a change every few tens of milliseconds.
        // (The thief's pace, part of the scenario, not a wait for a condition: the test waits for `changed`.)
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return codes;
    })();
    await changed;
    let outcome;
    try {
      outcome = await restoreFromSecret(device, secret, { agency: w.agencyUrl });
    } finally {
      stop = true;
    }
    const codes = await thief;
    expect(outcome.state).toBe('recovered');
    // The thief really was changing the policy while the owner restored.
    expect(codes).toContain('accepted');
    const record = await device.policy();
    const again = signEvent(nextEvent('policy.grant', record.subject, record, { agent: { key: extraKeys.key, kx: extraKeys.kx, flags: FLAGS.PROVE } }), [
      agentSigner(phone.wallet),
    ]);
    await expectCodeAsync(phone.ledger.submit(again), 'EVENT_UNAUTHORIZED');
    expect(await agentKeys(device)).toEqual([device.profile.key, device.cloud().key].sort());
  });
});

describe('a recovery delay', () => {
  it("lets the owner's devices cancel a recovery they did not start; the owner's own completes after the delay", async () => {
    let now = Date.now();
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(3, 2, { delay: 3600, ledgerClock: () => now });
    expect((await alice.policy()).policy.recovery.delay).toBe(3600);

    // Two trustees collude: they rebuild R and start a recovery to a device of theirs.
    const { device: theirs, secrets } = await recoverThrough(w, people.slice(0, 2));
    const started = await restoreFromSecret(theirs, secrets[0] as Uint8Array, { agency: w.agencyUrl });
    expect(started.state).toBe('pending');
    expect(await agentKeys(alice)).toContain(alice.profile.key);
    // Alice's laptop sees it and cancels; the trustees' device cannot complete it, even later.
    expect((await alice.policy()).policy.pending).toBeDefined();
    // Her laptop would never complete someone else's recovery by mistake.
    await expectCodeAsync(completeRecovery(alice), 'RECOVERY_PENDING');
    await cancelRecovery(alice);
    now += 3601_000;
    await expectCodeAsync(completeRecovery(theirs), 'EVENT_INVALID');
    expect(await agentKeys(alice)).toContain(alice.profile.key);

    // Alice really loses her laptop: her recovery waits for the delay, by the ledger's clock.
    const mine = await w.newAgent();
    const pending = await restoreFromSecret(mine, secret, { agency: w.agencyUrl });
    expect(pending.state).toBe('pending');
    await expectCodeAsync(completeRecovery(mine), 'RECOVERY_DELAY');
    now += 3600_000;
    const done = await completeRecovery(mine);
    expect('rotated' in done).toBe(true);
    expect(await agentKeys(mine)).toEqual([mine.profile.key, mine.cloud().key].sort());
  });
});

describe('guest mail for the new device', () => {
  it("is let in by Alice's trustees alone: her setup names their connection keys at her cloud agent, and anyone else is refused", async () => {
    const { w, alice, trustees: held } = await aliceWithTrustees(3, 2);
    const cloud = alice.cloud();
    const device = provisionKeys((await w.newAgent()).wallet);
    // A connection of Alice's who is not her trustee, and a stranger's own agent: refused, nothing kept.
    const bob = await w.makeOwner('bob');
    await connect(alice, bob);
    const bobsKey = connections(bob).find((c) => peerState(c).endpoint.routingKey === cloud.routingKey)?.mine?.sign;
    if (bobsKey === undefined) throw new Error('bob has no connection with alice');
    await expectCodeAsync(new AgencyClient(cloud.agency, bob.signingKey(bobsKey)).allowGuest(cloud.kx, device.key), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(new AgencyClient(cloud.agency, bob.signingKey()).allowGuest(cloud.kx, device.key), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(new AgencyClient(cloud.agency, bob.signingKey(bobsKey)).pickup(), 'MAILBOX_NOT_FOUND');
    // Each trustee, signing with its connection key, may.
    const keyWithAlice = (trustee: EdgeAgent) => {
      const key = connections(trustee).find((c) => peerState(c).endpoint.routingKey === cloud.routingKey)?.mine?.sign;
      if (key === undefined) throw new Error('a trustee has no connection with alice');
      return key;
    };
    for (const trustee of held)
      expect(await new AgencyClient(cloud.agency, trustee.signingKey(keyWithAlice(trustee))).allowGuest(cloud.kx, device.key)).toMatchObject({
        key: device.key,
      });
    // A trustee rotates its keys of the connection: once Alice's agent has the new ones, so does her cloud agent.
    const first = held[0] as EdgeAgent;
    const before = keyWithAlice(first);
    const withAlice = connections(first).find((c) => peerState(c).endpoint.routingKey === cloud.routingKey);
    if (withAlice === undefined) throw new Error('no connection');
    await rotateConnection(first, withAlice);
    const after = keyWithAlice(first);
    expect(after).not.toBe(before);
    await settle(alice, first);
    expect(await new AgencyClient(cloud.agency, first.signingKey(after)).allowGuest(cloud.kx, provisionKeys((await w.newAgent()).wallet).key)).toBeDefined();
  });
});
