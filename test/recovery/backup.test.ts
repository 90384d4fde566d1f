/**
 * Backups and the recovery secret on their own: a wallet encrypted to R's backup key and merged
 * into a new device's wallet, what the backup bytes reveal, every way a backup can be damaged
 * or meant for another secret (and that none of them adds anything), the keys R yields, and
 * Wallet.merge and Wallet.changes underneath a restore.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { decodePublicKey, ed25519Generate, ed25519Verify, memorySigner, randomBytes, readU32be, unframe, utf8 } from '../../src/crypto/index.js';
import { BACKUP_VERSION, encryptBackup, mergeBackup, parseBackup } from '../../src/recovery/backup.js';
import { MAX_RECOVERY_INDEX, RECOVERY_SECRET_BYTES, RecoveryKeys, newRecoverySecret, withRecoveryKeys } from '../../src/recovery/secret.js';
import { decodeExport } from '../../src/wallet/export.js';
import { Wallet, rawSecret, type WalletItem, type WalletSecret } from '../../src/wallet/index.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

const MAKER = ed25519Generate();
/** What a backup is of, and the agent that makes (and signs) it. */
const ABOUT = {
  policy: 'policy:zTestPolicyAddress',
  signer: memorySigner(MAKER.privateKey, MAKER.publicKey),
};
/** The category the wallet keeps its keys in (reserved: not reachable through get/put). */
const KEY_CATEGORY = 'dkms:key';
/** magic "DKMSBK" ‖ version ‖ header length: where the header starts. */
const HEADER_START = 6 + 1 + 4;

const walletSecret = (): WalletSecret => rawSecret(randomBytes(32));

/** A fresh wallet (raw secret: no Argon2), closed when the test finishes. */
async function newWallet(secret: WalletSecret = walletSecret(), path = join(tempDir('dkms-backup-'), 'wallet.db')): Promise<Wallet> {
  const wallet = await Wallet.create(path, secret);
  onTestFinished(() => wallet.close());
  return wallet;
}

async function reopen(wallet: Wallet, secret: WalletSecret, profile?: string): Promise<Wallet> {
  wallet.close();
  const again = await Wallet.open(wallet.path, secret, profile === undefined ? {} : { profile });
  onTestFinished(() => again.close());
  return again;
}

/** A value no other test bytes share: random, with a readable marker. */
const secretValue = (label: string) => new Uint8Array([...utf8(`plaintext:${label}:`), ...randomBytes(24)]);

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle)) !== -1;
}

interface OldDevice {
  readonly wallet: Wallet;
  /** What the default profile holds, by "category/name". */
  readonly items: Map<string, Uint8Array>;
  /** What the "work" profile holds. */
  readonly work: Map<string, Uint8Array>;
  /** The keys' private halves, as the wallet's own export carries them. */
  readonly privateKeys: Uint8Array[];
  readonly publicKeys: Map<string, string>;
}

/**
 * An old device's wallet: items in two profiles, and keys (its own agent key among them, which a
 * restore leaves behind). The private key bytes are read from the wallet's own export.
 */
async function oldDevice(): Promise<OldDevice> {
  const secret = walletSecret();
  const first = await newWallet(secret);
  first.createProfile('work');
  const work = new Map<string, Uint8Array>();
  const atWork = await reopen(first, secret, 'work');
  for (const name of ['vpn', 'badge']) {
    const value = secretValue(`work-${name}`);
    atWork.put('credentials', name, value, { place: 'office' });
    work.set(`credentials/${name}`, value);
  }
  const wallet = await reopen(atWork, secret);
  const items = new Map<string, Uint8Array>();
  for (const [category, name] of [
    ['notes', 'diary'],
    ['notes', 'shopping'],
    ['cards', 'visa'],
    ['link', 'secret'],
  ] as const) {
    const value = secretValue(`${category}-${name}`);
    wallet.put(category, name, value, { kind: category });
    items.set(`${category}/${name}`, value);
  }
  const publicKeys = new Map<string, string>();
  for (const [name, type] of [
    ['agent-sign', 'ed25519'],
    ['agent-kx', 'x25519'],
    ['connection-1', 'ed25519'],
  ] as const) {
    publicKeys.set(name, wallet.createKey(name, type).publicKey);
  }
  const exportSecret = walletSecret();
  const exported = await decodeExport(await wallet.export(exportSecret), exportSecret);
  const keyItems = (exported.get('default') ?? []).filter((i) => i.category === KEY_CATEGORY);
  expect(keyItems.map((i) => i.name).sort()).toEqual([...publicKeys.keys()].sort());
  // A key record is framed(version, type, private key, public key, createdAt).
  const privateKeys = keyItems.map((i) => unframe(i.value)[2] as Uint8Array);
  for (const key of privateKeys) expect(key.length).toBe(32);
  return { wallet, items, work, privateKeys, publicKeys };
}

/** The old device's own agent keys stay behind; everything else comes. */
const notOwnAgentKeys = (_profile: string, item: WalletItem) => !(item.category === KEY_CATEGORY && item.name.startsWith('agent-'));

/** Everything the default profile of `wallet` holds, as "category/name" → value (public categories only). */
function publicItems(wallet: Wallet, categories: readonly string[]): Map<string, Uint8Array> {
  return new Map(categories.flatMap((category) => wallet.find({ category }).map((i) => [`${category}/${i.name}`, i.value] as const)));
}

/** What can be seen of a wallet from outside: to show that a refused merge changed nothing. */
function snapshot(wallet: Wallet): { changes: number; items: number; profiles: readonly string[] } {
  const info = wallet.info();
  return { changes: wallet.changes(), items: info.items, profiles: info.profiles };
}

describe('a backup restores a wallet on a new device', () => {
  it('brings every item and key but what accept refuses, in every profile', async () => {
    const old = await oldDevice();
    const keys = new RecoveryKeys(newRecoverySecret());
    const backup = await encryptBackup(old.wallet, keys.backupKey, ABOUT, new Date('2030-01-02T03:04:05.000Z'));

    const targetSecret = walletSecret();
    const target = await newWallet(targetSecret);
    const ownKey = target.createKey('agent-sign', 'ed25519');
    const seen: string[] = [];
    const { header, items } = await mergeBackup(target, backup, keys, (profile, item) => {
      seen.push(`${profile}:${item.category}/${item.name}`);
      return notOwnAgentKeys(profile, item);
    });

    expect(header).toEqual({
      v: 1,
      epk: header.epk,
      backupKey: keys.backupKey,
      policy: ABOUT.policy,
      agent: ABOUT.signer.multikey,
      created: '2030-01-02T03:04:05.000Z',
    });
    // accept saw every item of every profile, keys included.
    expect(seen.sort()).toEqual(
      [
        ...[...old.items.keys()].map((k) => `default:${k}`),
        ...[...old.publicKeys.keys()].map((k) => `default:${KEY_CATEGORY}/${k}`),
        ...[...old.work.keys()].map((k) => `work:${k}`),
      ].sort(),
    );
    // Four items, one key (the connection key) and two work items; not the two agent keys.
    expect(items).toBe(old.items.size + 1 + old.work.size);

    expect(publicItems(target, ['notes', 'cards', 'link'])).toEqual(old.items);
    expect(target.get('notes', 'diary').tags).toEqual({ kind: 'notes' });
    // The new device keeps its own agent key; the old one's did not come.
    expect(target.getKey('agent-sign').publicKey).toBe(ownKey.publicKey);
    expect(target.getKey('agent-sign').publicKey).not.toBe(old.publicKeys.get('agent-sign'));
    expectCode(() => target.getKey('agent-kx'), 'KEY_NOT_FOUND');
    // The restored key is the old one: what it signs verifies under the old public key.
    const restored = target.getKey('connection-1');
    expect(restored.publicKey).toBe(old.publicKeys.get('connection-1'));
    const message = utf8('signed on the new device');
    expect(ed25519Verify(decodePublicKey(restored.publicKey, 'ed25519').publicKey, message, target.sign('connection-1', message))).toBe(true);

    // The profile the new wallet lacked was created, with its items.
    const atWork = await reopen(target, targetSecret, 'work');
    expect(publicItems(atWork, ['credentials'])).toEqual(old.work);
    expect(atWork.get('credentials', 'vpn').tags).toEqual({ place: 'office' });
  });

  it("carries none of the items' values and none of the private keys in the clear", async () => {
    const old = await oldDevice();
    const keys = new RecoveryKeys(newRecoverySecret());
    const backup = await encryptBackup(old.wallet, keys.backupKey, ABOUT);
    const secrets = [...old.items.values(), ...old.work.values(), ...old.privateKeys];
    expect(secrets.length).toBe(old.items.size + old.work.size + old.publicKeys.size);
    for (const value of secrets) expect(contains(backup, value)).toBe(false);
    // The check itself can fail: a value is found where it is.
    const first = secrets[0] as Uint8Array;
    expect(contains(new Uint8Array([1, 2, ...first, 3]), first)).toBe(true);
    // What the header tells is public: the key it is for, the policy, the agent.
    const { header } = parseBackup(backup);
    expect(header.backupKey).toBe(keys.backupKey);
    expect(header.policy).toBe(ABOUT.policy);
  });

  it('makes a different backup each time (a fresh one-time key), both readable', async () => {
    const old = await oldDevice();
    const keys = new RecoveryKeys(newRecoverySecret());
    const a = await encryptBackup(old.wallet, keys.backupKey, ABOUT);
    const b = await encryptBackup(old.wallet, keys.backupKey, ABOUT);
    expect(parseBackup(a).header.epk).not.toBe(parseBackup(b).header.epk);
    expect((await mergeBackup(await newWallet(), a, keys, () => true)).items).toBe(old.items.size + old.publicKeys.size + old.work.size);
    expect((await mergeBackup(await newWallet(), b, keys, () => true)).items).toBe(old.items.size + old.publicKeys.size + old.work.size);
  });
});

describe('a backup that cannot be read adds nothing', () => {
  /** A backup of a small wallet, a target wallet with one item of its own, and the keys. */
  async function setup(): Promise<{ backup: Uint8Array; keys: RecoveryKeys; target: Wallet; before: ReturnType<typeof snapshot> }> {
    const source = await newWallet();
    source.put('notes', 'diary', secretValue('diary'), { kind: 'notes' });
    source.put('notes', 'todo', secretValue('todo'));
    source.createKey('connection-1', 'ed25519');
    source.createProfile('work');
    const keys = new RecoveryKeys(newRecoverySecret());
    const backup = await encryptBackup(source, keys.backupKey, ABOUT);
    const target = await newWallet();
    target.put('notes', 'mine', utf8('kept'));
    return { backup, keys, target, before: snapshot(target) };
  }

  async function refused(target: Wallet, backup: Uint8Array, keys: RecoveryKeys, before: ReturnType<typeof snapshot>): Promise<string> {
    const error = await expectCodeAsync(
      mergeBackup(target, backup, keys, () => true),
      'BACKUP_UNREADABLE',
    );
    expect(snapshot(target)).toEqual(before);
    return error.message;
  }

  it('reads with the right keys (the control for the cases below)', async () => {
    const { backup, keys, target, before } = await setup();
    expect((await mergeBackup(target, backup, keys, () => true)).items).toBe(3);
    expect(snapshot(target)).not.toEqual(before);
    expect(snapshot(target).profiles).toEqual(['default', 'work']);
  });

  it("refuses another recovery secret's keys, saying so", async () => {
    const { backup, target, before } = await setup();
    const message = await refused(target, backup, new RecoveryKeys(newRecoverySecret()), before);
    expect(message).toMatch(/another recovery secret/);
  });

  it("refuses a backup whose header names this secret's key but was sealed to another", async () => {
    const { keys, target, before } = await setup();
    const source = await newWallet();
    source.put('notes', 'diary', secretValue('diary'));
    const other = new RecoveryKeys(newRecoverySecret());
    const sealed = await encryptBackup(source, other.backupKey, ABOUT);
    const { headerBytes } = parseBackup(sealed);
    // Same length, so the rest of the layout stays put.
    const relabelled = utf8(new TextDecoder().decode(headerBytes).replace(other.backupKey, keys.backupKey));
    expect(relabelled.length).toBe(headerBytes.length);
    const forged = sealed.slice();
    forged.set(relabelled, HEADER_START);
    await refused(target, forged, keys, before);
  });

  it('refuses a backup with any header byte changed', async () => {
    const { backup, keys, target, before } = await setup();
    const headerEnd = HEADER_START + readU32be(backup, HEADER_START - 4);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: headerEnd - 1 }), fc.integer({ min: 1, max: 255 }), async (position, mask) => {
        const damaged = backup.slice();
        damaged[position] = (damaged[position] as number) ^ mask;
        await refused(target, damaged, keys, before);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a backup whose one-time key was damaged into text that is not base64url', async () => {
    const { backup, keys, target, before } = await setup();
    const { header, headerBytes } = parseBackup(backup);
    // The one-time key's first character, replaced by one outside the base64url alphabet: the
    // header is still JSON of the right shape, so only the key's decoding can notice.
    const at = HEADER_START + new TextDecoder().decode(headerBytes).indexOf(`"epk":"${header.epk}"`) + '"epk":"'.length;
    const damaged = backup.slice();
    damaged[at] = '!'.charCodeAt(0);
    await refused(target, damaged, keys, before);
  });

  it('refuses a backup with any byte of the export changed', async () => {
    const { backup, keys, target, before } = await setup();
    const headerEnd = HEADER_START + readU32be(backup, HEADER_START - 4);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: headerEnd, max: backup.length - 1 }), fc.integer({ min: 1, max: 255 }), async (position, mask) => {
        const damaged = backup.slice();
        damaged[position] = (damaged[position] as number) ^ mask;
        await refused(target, damaged, keys, before);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a truncated backup, at any length', async () => {
    const { backup, keys, target, before } = await setup();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: backup.length - 1 }), async (length) => {
        await refused(target, backup.slice(0, length), keys, before);
      }),
      { numRuns: 200 },
    );
    // Cut at the end of the header, exactly: no export at all.
    await refused(target, backup.slice(0, HEADER_START + readU32be(backup, HEADER_START - 4)), keys, before);
  });

  it('refuses a file that is not a backup, and a backup version it does not know', async () => {
    const { backup, keys, target, before } = await setup();
    const magic = backup.slice();
    magic.set(utf8('DKMSWX'), 0);
    expect(await refused(target, magic, keys, before)).toMatch(/not a dkms backup/);
    const newer = backup.slice();
    newer[6] = BACKUP_VERSION + 1;
    expect(await refused(target, newer, keys, before)).toMatch(/version 2 is not supported/);
    const zero = backup.slice();
    zero[6] = 0;
    expect(await refused(target, zero, keys, before)).toMatch(/version 0 is not supported/);
    // A wallet export is not a backup.
    const exportSecret = walletSecret();
    await refused(target, await target.export(exportSecret), keys, before);
  });
});

describe('the keys a recovery secret yields', () => {
  const secretOf = (fill: number) => new Uint8Array(RECOVERY_SECRET_BYTES).fill(fill);

  it('are the same for the same R', () => {
    const a = new RecoveryKeys(secretOf(7));
    const b = new RecoveryKeys(secretOf(7));
    expect(b.backupKey).toBe(a.backupKey);
    expect(b.backupPublicKey).toEqual(a.backupPublicKey);
    expect(b.locator).toBe(a.locator);
    for (const i of [0, 1, 5, MAX_RECOVERY_INDEX - 1]) {
      expect(b.signer(i).multikey).toBe(a.signer(i).multikey);
      expect(b.signer(i).digest).toBe(a.signer(i).digest);
      expect(b.signer(i).index).toBe(i);
    }
    // Agreement with the same peer gives the same secret.
    const peer = new RecoveryKeys(secretOf(9)).backupPublicKey;
    expect(b.agree(peer)).toEqual(a.agree(peer));
  });

  it('have the shapes their names promise', () => {
    const keys = new RecoveryKeys(newRecoverySecret());
    expect(keys.backupKey).toMatch(/^z6LS/);
    expect(keys.backupPublicKey.length).toBe(32);
    expect(keys.locator).toMatch(/^[1-9A-HJ-NP-Za-km-z]{16,30}$/);
    const signer = keys.signer(0);
    expect(signer.multikey).toMatch(/^z6Mk/);
    const message = utf8('recovery');
    expect(ed25519Verify(decodePublicKey(signer.multikey, 'ed25519').publicKey, message, signer.sign(message))).toBe(true);
    expect(ed25519Verify(decodePublicKey(keys.signer(1).multikey, 'ed25519').publicKey, message, signer.sign(message))).toBe(false);
  });

  it('differ by index', () => {
    const keys = new RecoveryKeys(newRecoverySecret());
    const signers = Array.from({ length: MAX_RECOVERY_INDEX }, (_, i) => keys.signer(i));
    expect(new Set(signers.map((s) => s.multikey)).size).toBe(MAX_RECOVERY_INDEX);
    expect(new Set(signers.map((s) => s.digest)).size).toBe(MAX_RECOVERY_INDEX);
    // None of them is the backup key.
    expect(signers.map((s) => s.multikey)).not.toContain(keys.backupKey);
  });

  it('differ entirely for a different R, even by one bit', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: RECOVERY_SECRET_BYTES, maxLength: RECOVERY_SECRET_BYTES }),
        fc.integer({ min: 0, max: RECOVERY_SECRET_BYTES * 8 - 1 }),
        (secret, bit) => {
          const other = secret.slice();
          other[bit >> 3] = (other[bit >> 3] as number) ^ (1 << (bit & 7));
          const a = new RecoveryKeys(secret);
          const b = new RecoveryKeys(other);
          expect(b.backupKey).not.toBe(a.backupKey);
          expect(b.locator).not.toBe(a.locator);
          expect(b.signer(0).multikey).not.toBe(a.signer(0).multikey);
          expect(b.signer(3).multikey).not.toBe(a.signer(3).multikey);
          expect(b.signer(0).digest).not.toBe(a.signer(0).digest);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('refuses an R of the wrong length and an index out of range', () => {
    expect(() => new RecoveryKeys(new Uint8Array(RECOVERY_SECRET_BYTES - 1))).toThrow();
    expect(() => new RecoveryKeys(new Uint8Array(RECOVERY_SECRET_BYTES + 1))).toThrow();
    const keys = new RecoveryKeys(newRecoverySecret());
    for (const bad of [-1, MAX_RECOVERY_INDEX, 1.5, Number.NaN]) expectCode(() => keys.signer(bad), 'BAD_INPUT');
  });

  it('find the committed signer: the first index whose digest the commitment holds', () => {
    const keys = new RecoveryKeys(newRecoverySecret());
    const stranger = new RecoveryKeys(newRecoverySecret());
    expect(keys.committedSigner({ digests: [stranger.signer(0).digest, keys.signer(3).digest], threshold: 1 }).index).toBe(3);
    expect(keys.committedSigner({ digests: [keys.signer(5).digest, keys.signer(2).digest], threshold: 2 }).index).toBe(2);
    expect(keys.committedSigner({ digests: [keys.signer(MAX_RECOVERY_INDEX - 1).digest], threshold: 1 }).multikey).toBe(
      keys.signer(MAX_RECOVERY_INDEX - 1).multikey,
    );
    expectCode(() => keys.committedSigner({ digests: [stranger.signer(0).digest, stranger.signer(1).digest], threshold: 1 }), 'RECOVERY_KEY_NOT_COMMITTED');
    expectCode(() => keys.committedSigner({ digests: [], threshold: 1 }), 'RECOVERY_KEY_NOT_COMMITTED');
  });

  it("keep a copy of R: changing the caller's buffer afterwards changes nothing", () => {
    const secret = newRecoverySecret();
    const expected = new RecoveryKeys(secret.slice());
    const keys = new RecoveryKeys(secret);
    secret.fill(0);
    expect(keys.signer(4).multikey).toBe(expected.signer(4).multikey);
  });

  it('wipe() zeroes that copy: keys derived afterwards are those of an all-zero R', () => {
    const secret = newRecoverySecret();
    const keys = new RecoveryKeys(secret);
    const before = keys.signer(2).multikey;
    keys.wipe();
    expect(secret).not.toEqual(new Uint8Array(RECOVERY_SECRET_BYTES));
    expect(keys.signer(2).multikey).not.toBe(before);
    expect(keys.signer(2).multikey).toBe(new RecoveryKeys(new Uint8Array(RECOVERY_SECRET_BYTES)).signer(2).multikey);
  });

  it("withRecoveryKeys hands over the keys of R and then wipes the caller's R, also when the use fails", async () => {
    const secret = newRecoverySecret();
    const expected = new RecoveryKeys(secret.slice());
    const found = await withRecoveryKeys(secret, (keys) => ({ locator: keys.locator, key: keys.signer(0).multikey }));
    expect(found).toEqual({ locator: expected.locator, key: expected.signer(0).multikey });
    expect(secret).toEqual(new Uint8Array(RECOVERY_SECRET_BYTES));

    const failing = newRecoverySecret();
    await expect(withRecoveryKeys(failing, async () => Promise.reject(new Error('the use failed')))).rejects.toThrow('the use failed');
    expect(failing).toEqual(new Uint8Array(RECOVERY_SECRET_BYTES));
  });
});

describe('Wallet.merge and Wallet.changes', () => {
  async function exportOf(build: (wallet: Wallet) => void): Promise<{ exported: Uint8Array; secret: WalletSecret }> {
    const source = await newWallet();
    build(source);
    const secret = walletSecret();
    return { exported: await source.export(secret), secret };
  }

  it('neither duplicates nor overwrites what the wallet holds, and creates the profiles it lacks', async () => {
    const { exported, secret } = await exportOf((source) => {
      source.put('notes', 'shared', utf8('from the export'), { from: 'export' });
      source.put('notes', 'new', utf8('only in the export'));
      source.createProfile('work');
      source.createProfile('travel');
    });
    const targetSecret = walletSecret();
    const target = await newWallet(targetSecret);
    target.put('notes', 'shared', utf8("the target's own"), { from: 'target' });
    target.createProfile('work');

    expect(await target.merge(exported, secret, () => true)).toBe(1);
    expect(target.get('notes', 'shared')).toEqual({ category: 'notes', name: 'shared', value: utf8("the target's own"), tags: { from: 'target' } });
    expect(target.get('notes', 'new').value).toEqual(utf8('only in the export'));
    expect(
      target
        .find({ category: 'notes' })
        .map((i) => i.name)
        .sort(),
    ).toEqual(['new', 'shared']);
    expect(target.info().profiles).toEqual(['default', 'travel', 'work']);

    // Merging again adds nothing.
    expect(await target.merge(exported, secret, () => true)).toBe(0);
    expect(target.info().items).toBe(2);
    const travel = await reopen(target, targetSecret, 'travel');
    expect(travel.find({ category: 'notes' })).toEqual([]);
  });

  it('adds only what accept lets through', async () => {
    const { exported, secret } = await exportOf((source) => {
      for (const name of ['a', 'b', 'c']) source.put('notes', name, utf8(name));
    });
    const target = await newWallet();
    expect(await target.merge(exported, secret, (_profile, item) => item.name !== 'b')).toBe(2);
    expect(
      target
        .find({ category: 'notes' })
        .map((i) => i.name)
        .sort(),
    ).toEqual(['a', 'c']);
  });

  it('is one transaction: when accept fails part-way, nothing is added, not even the missing profiles', async () => {
    const { exported, secret } = await exportOf((source) => {
      source.put('notes', 'a', utf8('a'));
      source.put('notes', 'b', utf8('b'));
      source.createProfile('work');
    });
    const target = await newWallet();
    const before = snapshot(target);
    await expect(
      target.merge(exported, secret, (_profile, item) => {
        if (item.name === 'b') throw new Error('accept failed');
        return true;
      }),
    ).rejects.toThrow('accept failed');
    expect(target.find({ category: 'notes' })).toEqual([]);
    expect(target.info().profiles).toEqual(before.profiles);
  });

  it('refuses an export under a wrong secret, adding nothing', async () => {
    const { exported } = await exportOf((source) => {
      source.put('notes', 'a', utf8('a'));
      source.createProfile('work');
    });
    const target = await newWallet();
    const before = snapshot(target);
    await expectCodeAsync(
      target.merge(exported, walletSecret(), () => true),
      'WALLET_BAD_PASSPHRASE',
    );
    expect(snapshot(target)).toEqual(before);
  });

  it('counts writes: a put, an update, a delete and a merge raise changes(); reads do not', async () => {
    const target = await newWallet();
    const start = target.changes();
    target.put('notes', 'a', utf8('a'));
    const afterPut = target.changes();
    expect(afterPut).toBeGreaterThan(start);

    target.get('notes', 'a');
    target.find({ category: 'notes' });
    target.info();
    target.listKeys();
    expect(target.changes()).toBe(afterPut);

    target.update('notes', 'a', { value: utf8('b') });
    const afterUpdate = target.changes();
    expect(afterUpdate).toBeGreaterThan(afterPut);
    target.delete('notes', 'a');
    const afterDelete = target.changes();
    expect(afterDelete).toBeGreaterThan(afterUpdate);

    const { exported, secret } = await exportOf((source) => source.put('notes', 'b', utf8('b')));
    await target.merge(exported, secret, () => true);
    expect(target.changes()).toBeGreaterThan(afterDelete);
    // An export, the backup's payload, is a read.
    const afterMerge = target.changes();
    await target.export(walletSecret());
    expect(target.changes()).toBe(afterMerge);
    target.close();
    expectCode(() => target.changes(), 'WALLET_CLOSED');
  });
});
