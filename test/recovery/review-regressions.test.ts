/**
 * Regressions for the security review of recovery: each finding's attack, replayed against the
 * fixed code, in process over loopback HTTP with a real ledger and a real agency. The
 * intercepted-request finding (a request swapped on its way to a trustee) is covered in
 * social.test.ts ('a request swapped on the way fails the challenge the owner reads').
 */
import { join } from 'node:path';
import type { Signer } from '../../src/crypto/index.js';
import { describe, expect, it } from 'vitest';
import { AgencyClient, fetchBackupIndex } from '../../src/agency/agency-client.js';
import { connections, peerState } from '../../src/agent/connections.js';
import { AgentStore, CATEGORIES } from '../../src/agent/agent-store.js';
import { newMessage } from '../../src/didcomm/index.js';
import { EdgeAgent } from '../../src/agent/edge-agent.js';
import { provisionKeys } from '../../src/agent/provision.js';
import { BACKUP_LIMITS } from '../../src/agency/agency.js';
import { canonicalBytes, equalBytes, fromBase64url, randomBytes, toBase64url } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { backupSecret, encryptBackup, parseBackup } from '../../src/recovery/backup.js';
import {
  RELEASE,
  addRecoveryRequest,
  approveRecoveryRequest,
  collectReleases,
  createRecoveryRequest,
  rebuiltSecrets,
  releasedShares,
} from '../../src/recovery/requests.js';
import { cancelRecovery, completeRecovery, restoreFromSecret } from '../../src/recovery/restore.js';
import { RecoveryKeys } from '../../src/recovery/secret.js';
import { abortRecoveryChange, commitRecovery, makeBackup, prepareRecovery } from '../../src/recovery/setup.js';
import { splitRecoverySecret, type RecoveryShare } from '../../src/recovery/shares.js';
import { readPrepared, readSetup } from '../../src/recovery/state.js';
import { heldShares } from '../../src/recovery/trustees.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { aliceWithTrustees, recoverThrough, settle, type World } from '../helpers/world.js';
import { RECOVERY_CATEGORIES } from '../../src/recovery/categories.js';
import { claiming } from '../helpers/edge.js';

const agentKeys = async (agent: EdgeAgent) => (await agent.policy()).policy.agents.map((a) => a.key).sort();
const copy = (secret: Uint8Array) => Uint8Array.from(secret);

/**
 * A backup an attacker made: a wallet whose recovery setup sends every later backup to the
 * attacker's key, encrypted to the owner's (public) backup key and signed by `signer`.
 */
async function forgedBackup(w: World, about: { policy: string; backupKey: string }, attacker: RecoveryKeys, signer: Signer): Promise<Uint8Array> {
  const wallet = await Wallet.create(join(tempDir(), 'forged.db'), rawSecret(randomBytes(32)));
  try {
    const store = new AgentStore(wallet);
    const created = new Date().toISOString();
    store.write(CATEGORIES.agent, 'profile', {
      v: 1,
      label: 'alice',
      policy: about.policy,
      ledger: w.ledgerUrl,
      key: signer.multikey,
      kx: signer.multikey,
      created,
    });
    store.write(RECOVERY_CATEGORIES.recovery, 'setup', {
      v: 1,
      backupKey: attacker.backupKey,
      locator: attacker.locator,
      index: 0,
      delay: 0,
      offline: true,
      created,
    });
    return await encryptBackup(wallet, about.backupKey, { policy: about.policy, signer });
  } finally {
    wallet.close();
  }
}

/** A fresh Ed25519 key of the attacker's, as a backup signer. */
async function attackerSigner(w: World): Promise<Signer> {
  const agent = await w.newAgent();
  provisionKeys(agent.wallet);
  return agent.signingKey();
}

/**
 * An agency (or a network attacker in front of it) that serves `swap(version)` instead of the
 * backup bytes whenever it returns something, and records every backup posted through it.
 */
function lyingAgency(swap: (version: number) => Uint8Array | undefined): { fetch: typeof fetch; uploads: { locator: string; data: Uint8Array }[] } {
  const uploads: { locator: string; data: Uint8Array }[] = [];
  const lying: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    if (init?.method === 'POST' && /\/backups$/.test(url.pathname)) {
      const body = JSON.parse(String(init.body)) as { locator: string; data: string };
      uploads.push({ locator: body.locator, data: fromBase64url(body.data) });
    }
    const res = await fetch(input, init);
    if (!/\/v1\/backups\/[^/]+\/data$/.test(url.pathname) || !res.ok) return res;
    const real = (await res.json()) as { version: number; created: string; data: string };
    const forged = swap(real.version);
    const body = forged === undefined ? real : { ...real, data: toBase64url(forged) };
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  return { fetch: lying, uploads };
}

/** A new device whose agency calls (the restore's and its own afterwards) go through `fetchFn`. */
async function deviceBehind(w: World, fetchFn: typeof fetch): Promise<EdgeAgent> {
  const base = await w.newAgent();
  return new EdgeAgent(base.wallet, base.ledger, { fetch: fetchFn });
}

/** Makes the ledger's answer to the first `policy.recover` this agent submits get lost: the ledger accepts it, the client throws. */
function loseFirstRecoverAnswer(agent: EdgeAgent): void {
  const real = agent.ledger.submit.bind(agent.ledger);
  let lost = false;
  agent.ledger.submit = async (event) => {
    const receipt = await real(event);
    if (!lost && event.type === 'policy.recover') {
      lost = true;
      throw new DkmsError('LEDGER_UNREACHABLE', 'the ledger did not answer in time');
    }
    return receipt;
  };
}

describe('forged backup', () => {
  // Attack: the agency (or anyone on the restore's HTTP path) serves a backup it made itself, whose setup names the attacker's backup key.
  it('a restore refuses backups it cannot trust: not signed by an ADMIN agent, or signed by another key than the one named', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    await makeBackup(alice);
    const setup = readSetup(alice);
    expect(setup).toBeDefined();
    const about = { policy: alice.profile.policy, backupKey: setup?.backupKey ?? '' };
    const attacker = new RecoveryKeys(randomBytes(32));
    const thiefKey = await attackerSigner(w);
    // Signed by the attacker's own key, and naming it.
    const selfSigned = await forgedBackup(w, about, attacker, thiefKey);
    // Naming Alice's laptop (an ADMIN agent), but signed by the attacker.
    const misnamed = await forgedBackup(w, about, attacker, claiming(alice.profile.key, thiefKey));
    const versions = (await fetchBackupIndex(w.agencyUrl, setup?.locator ?? '')).versions.map((v) => v.version);
    expect(versions.length).toBeGreaterThan(1);

    // Every version swapped, one forgery or the other.
    const agency = lyingAgency((version) => (version % 2 === 0 ? selfSigned : misnamed));
    const device = await deviceBehind(w, agency.fetch);
    await expectCodeAsync(restoreFromSecret(device, copy(secret), { agency: w.agencyUrl, fetch: agency.fetch }), 'BACKUP_UNREADABLE');
    expect(device.store.hasProfile()).toBe(false);
    expect(readSetup(device)).toBeUndefined();
    expect(agency.uploads).toEqual([]);
    // Nothing happened on the ledger, and nothing was stored for the attacker.
    expect(await agentKeys(alice)).toEqual([alice.profile.key, alice.cloud().key].sort());
    await expectCodeAsync(fetchBackupIndex(w.agencyUrl, attacker.locator), 'BACKUP_NOT_FOUND');
  });

  it('with only the newest version swapped, the restore takes the genuine one before it; the device never backs up to the attacker', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const genuine = await makeBackup(alice);
    const setup = readSetup(alice);
    const keys = new RecoveryKeys(copy(secret));
    expect(setup?.backupKey).toBe(keys.backupKey);
    const attacker = new RecoveryKeys(randomBytes(32));
    const forged = await forgedBackup(w, { policy: alice.profile.policy, backupKey: keys.backupKey }, attacker, await attackerSigner(w));
    // The attacker's version is the newest the agency lists.
    const newest = (genuine.version ?? 0) + 1;
    const agency = lyingAgency((version) => (version === newest ? forged : undefined));
    await makeBackup(alice);

    const device = await deviceBehind(w, agency.fetch);
    const outcome = await restoreFromSecret(device, copy(secret), { agency: w.agencyUrl, fetch: agency.fetch });
    expect(outcome).toMatchObject({ state: 'recovered', backupVersion: genuine.version, backupBy: alice.profile.key });
    expect(readSetup(device)?.backupKey).toBe(keys.backupKey);
    expect(readSetup(device)?.locator).toBe(keys.locator);
    // What the device uploaded went to R's locator, encrypted to R's key: the attacker cannot open it.
    expect(agency.uploads.length).toBeGreaterThan(0);
    for (const upload of agency.uploads) {
      expect(upload.locator).toBe(keys.locator);
      expect(parseBackup(upload.data).header.backupKey).toBe(keys.backupKey);
      expect(() => backupSecret(upload.data, attacker)).toThrow(DkmsError);
    }
    await expectCodeAsync(fetchBackupIndex(w.agencyUrl, attacker.locator), 'BACKUP_NOT_FOUND');
    expect(await agentKeys(device)).toEqual([device.profile.key, alice.cloud().key].sort());
    keys.wipe();
  });
});

describe('forged backup from a stolen device', () => {
  // Attack: a thief with a PROVE-only phone of the owner pushes a forged backup (its own backup key in the setup) as the newest version.
  it('a PROVE-only device cannot store a backup, and one it signed is refused even when an agency serves it', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const phone = await w.pairAgent(alice, 'phone', FLAGS.PROVE);
    const setup = readSetup(alice);
    const keys = new RecoveryKeys(copy(secret));
    const before = (await fetchBackupIndex(w.agencyUrl, keys.locator)).versions;
    const thief = new RecoveryKeys(randomBytes(32));
    const forged = await forgedBackup(w, { policy: alice.profile.policy, backupKey: setup?.backupKey ?? '' }, thief, phone.signingKey());

    await expectCodeAsync(phone.agency(alice.cloud()).putBackup(alice.cloud().id, keys.locator, forged), 'REQUEST_UNAUTHORIZED');
    expect((await fetchBackupIndex(w.agencyUrl, keys.locator)).versions).toEqual(before);

    // Served as the newest version anyway (a colluding agency): the restore skips it.
    const newest = Math.max(...before.map((v) => v.version));
    const agency = lyingAgency((version) => (version === newest ? forged : undefined));
    const device = await deviceBehind(w, agency.fetch);
    const outcome = await restoreFromSecret(device, copy(secret), { agency: w.agencyUrl, fetch: agency.fetch });
    expect(outcome).toMatchObject({ state: 'recovered', backupBy: alice.profile.key });
    expect(outcome.backupVersion).toBeLessThan(newest);
    expect(readSetup(device)?.backupKey).toBe(keys.backupKey);
    // The thief's phone is out, and nothing was ever stored under the thief's locator.
    expect(await agentKeys(device)).toEqual([device.profile.key, alice.cloud().key].sort());
    await expectCodeAsync(fetchBackupIndex(w.agencyUrl, thief.locator), 'BACKUP_NOT_FOUND');
    keys.wipe();
  });
});

describe('fake share set', () => {
  // Attack: a stranger who saw the request text sends the new device a complete set of shares of a secret of her own.
  it("a set signed by a stranger is ignored when it claims Alice's policy, and refused for Alice when it names the stranger's own", async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(3, 2);
    // Mallory: her own identity at the same agency, labelled 'alice', with recovery set up (R').
    const mallory = await w.makeOwner('alice');
    const { secret: rPrime } = await prepareRecovery(mallory, { offline: true, delay: 0 });
    expect((await commitRecovery(mallory)).state).toBe('committed');
    const malloryAgents = await agentKeys(mallory);

    const phone = await w.newAgent();
    const { text, challenge, request } = createRecoveryRequest(phone, { agency: w.agencyUrl, label: 'alice (new phone)' });
    const phoneKeys = provisionKeys(phone.wallet);
    const release = async (policy: string) => {
      const signing = mallory.signingKey();
      const shares = await splitRecoverySecret(rPrime, {
        threshold: 2,
        insist: true,
        trustees: [
          { id: 't1', label: 'trustee1' },
          { id: 't2', label: 'trustee2' },
        ],
        owner: { policy, label: 'alice' },
        signer: signing,
      });
      const cloud = mallory.cloud();
      // Mallory is an agent of her own policy: her cloud agent takes guest mail for any key she allows.
      await mallory.agency(cloud).allowGuest(cloud.kx, phoneKeys.key);
      await mallory.sendToKey(
        newMessage(RELEASE, { request: request.id, owner: 'alice', shares }),
        mallory.agreementKey(),
        { key: phoneKeys.key, kx: phoneKeys.kx },
        { endpoint: cloud.endpoint, routingKey: cloud.routingKey },
      );
    };

    // Claiming Alice's policy: Mallory's key was never an agent of it, so the set counts for nothing.
    await release(alice.profile.policy);
    await collectReleases(phone);
    expect(releasedShares(phone)).toHaveLength(2);
    expect(await rebuiltSecrets(phone)).toEqual([]);

    // Naming her own policy: it is rebuilt, and says whose it is.
    await release(mallory.profile.policy);
    await collectReleases(phone);
    const rebuilt = await rebuiltSecrets(phone);
    expect(rebuilt.map((r) => ({ policy: r.policy, owner: r.owner, secret: equalBytes(r.secret, rPrime) }))).toEqual([
      { policy: mallory.profile.policy, owner: 'alice', secret: true },
    ]);
    // Restoring it as Alice is refused, before anything is merged or submitted.
    await expectCodeAsync(
      restoreFromSecret(phone, (rebuilt[0] as { secret: Uint8Array }).secret, { agency: w.agencyUrl, policy: alice.profile.policy }),
      'BACKUP_UNREADABLE',
    );
    expect(phone.store.hasProfile()).toBe(false);
    expect(await agentKeys(mallory)).toEqual(malloryAgents);

    // Alice's real trustees then release, and her own set is there beside Mallory's.
    for (const t of people.slice(0, 2)) {
      addRecoveryRequest(t, text);
      await approveRecoveryRequest(t, request.id, 'alice', challenge);
    }
    await collectReleases(phone);
    const hers = (await rebuiltSecrets(phone)).filter((r) => r.policy === alice.profile.policy);
    expect(hers).toHaveLength(1);
    expect(equalBytes((hers[0] as { secret: Uint8Array }).secret, secret)).toBe(true);
    const outcome = await restoreFromSecret(phone, (hers[0] as { secret: Uint8Array }).secret, { agency: w.agencyUrl, policy: alice.profile.policy });
    expect(outcome.state).toBe('recovered');
    expect(phone.profile.policy).toBe(alice.profile.policy);
  });
});

describe('a thief destroys the backups', () => {
  // Attack: a thief holding one of the owner's devices deletes every backup version, so the paper no longer recovers.
  it('no agent key may delete them, whatever its flags; the paper still recovers', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const phone = await w.pairAgent(alice, 'phone', FLAGS.PROVE);
    const tablet = await w.pairAgent(alice, 'tablet', ALL_FLAGS);
    const keys = new RecoveryKeys(copy(secret));
    const before = (await fetchBackupIndex(w.agencyUrl, keys.locator)).versions;
    expect(before.length).toBeGreaterThan(0);
    for (const device of [phone, tablet, alice]) {
      await expectCodeAsync(device.agency(alice.cloud()).deleteBackups(alice.cloud().id, keys.locator), 'BACKUP_UNAUTHORIZED');
    }
    expect((await fetchBackupIndex(w.agencyUrl, keys.locator)).versions).toEqual(before);
    const device = await w.newAgent();
    expect((await restoreFromSecret(device, copy(secret), { agency: w.agencyUrl })).state).toBe('recovered');
    keys.wipe();
  });

  // Attack: the thief pushes junk versions until the owner's real ones are evicted.
  it('junk pushed by an ADMIN device does not evict the versions another agent made', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const tablet = await w.pairAgent(alice, 'tablet', ALL_FLAGS);
    const last = await makeBackup(alice);
    const keys = new RecoveryKeys(copy(secret));
    for (let i = 0; i < BACKUP_LIMITS.versionsPerAgent + 5; i++) await tablet.agency(alice.cloud()).putBackup(alice.cloud().id, keys.locator, randomBytes(100));
    const listed = (await fetchBackupIndex(w.agencyUrl, keys.locator)).versions.map((v) => v.version);
    expect(listed).toContain(last.version);
    const device = await w.newAgent();
    const outcome = await restoreFromSecret(device, copy(secret), { agency: w.agencyUrl });
    expect(outcome).toMatchObject({ state: 'recovered', backupVersion: last.version, backupBy: alice.profile.key });
    expect(await agentKeys(device)).toEqual([device.profile.key, alice.cloud().key].sort());
    keys.wipe();
  });
});

describe('backup index substitution', () => {
  // Attack: the unsigned backup index names the stolen laptop as the cloud agent, so the recovery keeps the thief's device.
  it('a restore whose index names another cloud agent than the signed backup is refused, and changes nothing', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const stolen = alice.profile.key;
    const before = (await alice.policy()).policy;
    const lying: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!/\/v1\/backups\/[^/]+$/.test(new URL(String(input)).pathname)) return res;
      const body = (await res.json()) as { cloud: { key: string } };
      body.cloud.key = stolen;
      return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
    };
    const device = await w.newAgent();
    await expectCodeAsync(restoreFromSecret(device, copy(secret), { agency: w.agencyUrl, fetch: lying }), 'AGENCY_BAD_RESPONSE');
    expect(device.store.hasProfile()).toBe(false);
    expect((await alice.policy()).policy).toEqual(before);
  });
});

describe('restore when the ledger answer is lost', () => {
  // Attack (or accident): the ledger accepts policy.recover but its answer never reaches the device, which then had no profile and was stuck.
  it('without a delay: running the restore again resumes it, with one recovery key spent', async () => {
    const { w, alice, secret } = await aliceWithTrustees(3, 2);
    const before = (await alice.policy()).policy;
    const device = await w.newAgent();
    loseFirstRecoverAnswer(device);
    await expectCodeAsync(restoreFromSecret(device, copy(secret), { agency: w.agencyUrl }), 'LEDGER_UNREACHABLE');
    expect(device.store.hasProfile()).toBe(true);
    const outcome = await restoreFromSecret(device, copy(secret), { agency: w.agencyUrl });
    expect(outcome.state).toBe('recovered');
    const keys = new RecoveryKeys(copy(secret));
    const policy = (await device.policy()).policy;
    // One recovery took place: R's index 0 revealed (beside the setup's provisional key), index 1 committed.
    expect(policy.revealed).toEqual([...before.revealed, keys.signer(0).digest].sort());
    expect(policy.recovery.digests).toEqual([keys.signer(1).digest]);
    expect(await agentKeys(device)).toEqual([device.profile.key, alice.cloud().key].sort());
    expect(readSetup(device)).toMatchObject({ index: 1, backupKey: keys.backupKey, locator: keys.locator });
    keys.wipe();
  });

  it('with a delay: running it again finds the pending recovery, and it completes after the delay', async () => {
    let now = Date.now();
    const { w, alice, secret } = await aliceWithTrustees(3, 2, { delay: 3600, ledgerClock: () => now });
    const device = await w.newAgent();
    loseFirstRecoverAnswer(device);
    await expectCodeAsync(restoreFromSecret(device, copy(secret), { agency: w.agencyUrl }), 'LEDGER_UNREACHABLE');
    const again = await restoreFromSecret(device, copy(secret), { agency: w.agencyUrl });
    expect(again.state).toBe('pending');
    await expectCodeAsync(completeRecovery(device), 'RECOVERY_DELAY');
    now += 3601_000;
    const done = await completeRecovery(device);
    expect('rotated' in done).toBe(true);
    expect(await agentKeys(device)).toEqual([device.profile.key, alice.cloud().key].sort());
    expect((await device.policy()).policy.pending).toBeUndefined();
  });
});

describe('a poisoned share', () => {
  /**
   * A share with trustee 1's index and junk bytes, made from the share trustee `bad` holds and
   * signed by `signer` (`bad`'s own agent unless told); `policy` replaces the owner it names.
   */
  function forgedShare(bad: EdgeAgent, policy?: string, signer = bad.signingKey()): RecoveryShare {
    const own = heldShares(bad)[0]?.shares[0]?.share as RecoveryShare;
    const bytes = new Uint8Array(33);
    bytes.set(randomBytes(32));
    bytes[32] = 1;
    const hint = policy === undefined ? own.hint : { ...own.hint, owner: { ...own.hint.owner, policy } };
    const { sig: _sig, ...body } = { ...own, index: 1, share: toBase64url(bytes), signer: signer.multikey, hint };
    return { ...body, sig: toBase64url(signer.sign(canonicalBytes(body))) };
  }

  /** Trustee 5 sends `forged` to the new device first; then trustees 1 to 3 release their real shares. */
  async function poisonedRecovery(people: readonly EdgeAgent[], w: World, alice: EdgeAgent, forged: RecoveryShare): Promise<EdgeAgent> {
    const bad = people[4] as EdgeAgent;
    const device = await w.newAgent();
    const { text, challenge, request } = createRecoveryRequest(device, { agency: w.agencyUrl, label: 'alice' });
    const keys = provisionKeys(device.wallet);
    const cloud = alice.cloud();
    // A trustee is a sponsor at Alice's cloud agent: it may let the new device have guest mail.
    const withAlice = connections(bad).find((c) => peerState(c).endpoint.routingKey === cloud.routingKey);
    if (withAlice?.mine === undefined) throw new Error('the bad trustee has no connection with Alice');
    await new AgencyClient(cloud.agency, bad.signingKey(withAlice.mine.sign)).allowGuest(cloud.kx, keys.key);
    await bad.sendToKey(
      newMessage(RELEASE, { request: request.id, owner: 'alice', shares: [forged] }),
      bad.agreementKey(),
      { key: keys.key, kx: keys.kx },
      { endpoint: cloud.endpoint, routingKey: cloud.routingKey },
    );
    await collectReleases(device);
    for (const t of people.slice(0, 3)) {
      addRecoveryRequest(t, text);
      await approveRecoveryRequest(t, request.id, 'alice', challenge);
    }
    await collectReleases(device);
    expect(releasedShares(device)).toHaveLength(4);
    return device;
  }

  // Attack: one malicious trustee sends a self-signed share with another trustee's index, so the real share is displaced and the set refused.
  it("a share the trustee signed itself, with another trustee's index, does not stop a recovery the others support", async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(5, 3);
    const device = await poisonedRecovery(people, w, alice, forgedShare(people[4] as EdgeAgent));
    const rebuilt = await rebuiltSecrets(device);
    expect(rebuilt).toHaveLength(1);
    expect(rebuilt[0]?.policy).toBe(alice.profile.policy);
    expect(equalBytes((rebuilt[0] as { secret: Uint8Array }).secret, secret)).toBe(true);
    const outcome = await restoreFromSecret(device, (rebuilt[0] as { secret: Uint8Array }).secret, { agency: w.agencyUrl, policy: alice.profile.policy });
    expect(outcome.state).toBe('recovered');
  });

  // Attack: the same share, naming the malicious trustee's own policy (where its key is an agent) and arriving first.
  it("nor does one that names the trustee's own policy, where its signature counts", async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(5, 3);
    const bad = people[4] as EdgeAgent;
    const device = await poisonedRecovery(people, w, alice, forgedShare(bad, bad.profile.policy));
    const hers = (await rebuiltSecrets(device)).filter((r) => r.policy === alice.profile.policy);
    expect(hers).toHaveLength(1);
    expect(equalBytes((hers[0] as { secret: Uint8Array }).secret, secret)).toBe(true);
  });

  // Attack: the same share, signed by another agent Alice's policy has (a stolen phone, say), whose signature counts for Alice.
  it("nor does one signed by another of Alice's agents than the one that split the secret", async () => {
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(5, 3);
    const phone = await w.pairAgent(alice, 'phone', FLAGS.PROVE);
    const device = await poisonedRecovery(people, w, alice, forgedShare(people[4] as EdgeAgent, undefined, phone.signingKey()));
    const hers = (await rebuiltSecrets(device)).filter((r) => r.policy === alice.profile.policy);
    expect(hers).toHaveLength(1);
    expect(equalBytes((hers[0] as { secret: Uint8Array }).secret, secret)).toBe(true);
  });
});

describe('trustee change window', () => {
  /** Prepares a change to trustees 1 and 2 and commits it with the ledger's answer lost: the ledger holds R', the wallet does not know it. */
  async function committedUnknowingly(alice: EdgeAgent, people: EdgeAgent[], oldR: Uint8Array): Promise<Uint8Array> {
    const { secret: newR } = await prepareRecovery(alice, {
      offline: true,
      social: { trustees: ['trustee1', 'trustee2'], threshold: 2, insist: true },
      delay: 0,
    });
    await settle(alice, ...people);
    const real = alice.ledger.submit.bind(alice.ledger);
    alice.ledger.submit = async (event) => {
      await real(event);
      throw new DkmsError('LEDGER_UNREACHABLE', 'the ledger did not answer in time');
    };
    await expectCodeAsync(commitRecovery(alice, new RecoveryKeys(copy(oldR))), 'LEDGER_UNREACHABLE');
    alice.ledger.submit = real;
    expect((await alice.policy()).policy.recovery.digests).toEqual([new RecoveryKeys(copy(newR)).signer(0).digest]);
    return newR;
  }

  // Attack (or accident): the ledger commits R' but finishChange never ran, and no secret restored (R is spent, R' had no backup).
  it('after the ledger commit and before finishChange, the new secret restores', async () => {
    const { w, alice, trustees: people, secret: oldR } = await aliceWithTrustees(3, 2);
    const newR = await committedUnknowingly(alice, people, oldR);
    const device = await w.newAgent();
    const outcome = await restoreFromSecret(device, copy(newR), { agency: w.agencyUrl });
    expect(outcome).toMatchObject({ state: 'recovered', backupBy: alice.profile.key });
    expect(device.profile.policy).toBe(alice.profile.policy);
    const keys = new RecoveryKeys(copy(newR));
    expect(readSetup(device)).toMatchObject({ backupKey: keys.backupKey, locator: keys.locator, index: 1 });
    keys.wipe();
  });

  // Attack (or accident): `trustee abort` dropped a change the ledger had committed, losing the only record of R'.
  it('abort is refused once the ledger commits the change, and the change can still be finished', async () => {
    const { w, alice, trustees: people, secret: oldR } = await aliceWithTrustees(3, 2);
    const newR = await committedUnknowingly(alice, people, oldR);
    const prepared = readPrepared(alice);
    await expectCodeAsync(abortRecoveryChange(alice), 'TRUSTEE_CHANGE_INCOMPLETE');
    expect(readPrepared(alice)).toEqual(prepared);
    expect((await commitRecovery(alice, new RecoveryKeys(copy(oldR)))).state).toBe('committed');
    const keys = new RecoveryKeys(copy(newR));
    expect(readSetup(alice)).toMatchObject({ backupKey: keys.backupKey, locator: keys.locator });
    expect((await restoreFromSecret(await w.newAgent(), copy(newR), { agency: w.agencyUrl })).state).toBe('recovered');
    keys.wipe();
  });
});

describe('cancel and replay', () => {
  // Attack: colluding trustees restart a cancelled delayed recovery at once (the key is not burnt), blocking the owner's change of secret behind it.
  it("the owner, with her ADMIN devices and her paper, rotates at once over the trustees' pending recovery", async () => {
    let now = Date.now();
    const { w, alice, trustees: people, secret } = await aliceWithTrustees(3, 2, { delay: 3600, ledgerClock: () => now });
    const tablet = await w.pairAgent(alice, 'tablet', ALL_FLAGS);
    const { device: theirs, secrets } = await recoverThrough(w, people.slice(0, 2));
    const stolen = secrets[0] as Uint8Array;
    expect((await restoreFromSecret(theirs, copy(stolen), { agency: w.agencyUrl })).state).toBe('pending');
    await cancelRecovery(alice);
    // Same R, same key: they start again at once.
    const again = await w.newAgent();
    expect((await restoreFromSecret(again, copy(stolen), { agency: w.agencyUrl })).state).toBe('pending');

    // Alice moves to a new secret, co-signing as an ADMIN agent: it takes effect at once, replacing theirs.
    const { secret: newR } = await prepareRecovery(alice, { offline: true, delay: 3600 });
    expect((await commitRecovery(alice, new RecoveryKeys(copy(secret)))).state).toBe('committed');
    const policy = (await alice.policy()).policy;
    const next = new RecoveryKeys(copy(newR));
    expect(policy.pending).toBeUndefined();
    expect(policy.recovery).toEqual({ digests: [next.signer(0).digest], threshold: 1, delay: 3600 });
    expect(policy.revealed).toContain(new RecoveryKeys(copy(secret)).signer(0).digest);
    expect(await agentKeys(alice)).toEqual([alice.profile.key, tablet.profile.key, alice.cloud().key].sort());

    // Their recovery is gone: it never completes, and their R no longer restores.
    now += 2 * 3600_000;
    await expectCodeAsync(completeRecovery(again), 'EVENT_INVALID');
    await expectCodeAsync(restoreFromSecret(await w.newAgent(), copy(stolen), { agency: w.agencyUrl }), 'BACKUP_NOT_FOUND');
    expect(await agentKeys(alice)).toEqual([alice.profile.key, tablet.profile.key, alice.cloud().key].sort());
    next.wipe();
  });
});
