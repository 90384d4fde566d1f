import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePublicKey, ed25519Verify, randomBytes, sha256, toHex, utf8 } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { Wallet, passphraseSecret, rawSecret, type WalletItem } from '../../src/wallet/index.js';
import { HELD_KEYS } from '../../src/wallet/wallet.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

const KEY_A = rawSecret(new Uint8Array(32).fill(0xa1));
const KEY_B = rawSecret(new Uint8Array(32).fill(0xb2));
const fast = { kdfTier: 'interactive' } as const;

function walletPath(): string {
  return join(tempDir(), 'wallet.db');
}

async function newWallet(path = walletPath()): Promise<Wallet> {
  return Wallet.create(path, KEY_A);
}

/** SHA-256 of the database file and its WAL, to show that a failed operation changed nothing. */
function fileState(path: string): string {
  const parts = ['', '-wal'].map((suffix) => {
    try {
      return toHex(sha256(readFileSync(path + suffix)));
    } catch {
      return 'absent';
    }
  });
  return parts.join('/');
}

describe('items', () => {
  it('puts, gets, finds by category and tags, updates and deletes', async () => {
    const w = await newWallet();
    w.put('notes', 'shopping', utf8('milk'), { kind: 'list', owner: 'alice' });
    w.put('notes', 'todo', utf8('write tests'), { kind: 'list', owner: 'bob' });
    w.put('cards', 'visa', utf8('4111'), { kind: 'card' });

    expect(w.get('notes', 'shopping')).toEqual({ category: 'notes', name: 'shopping', value: utf8('milk'), tags: { kind: 'list', owner: 'alice' } });
    expect(w.find({ category: 'notes' }).map((i) => i.name)).toEqual(['shopping', 'todo']);
    expect(w.find({ category: 'notes', tags: { owner: 'bob' } }).map((i) => i.name)).toEqual(['todo']);
    expect(w.find({ category: 'notes', tags: { kind: 'list', owner: 'alice' } }).map((i) => i.name)).toEqual(['shopping']);
    expect(w.find({ category: 'notes', tags: { kind: 'card' } })).toEqual([]);
    expect(w.find({ category: 'nothing' })).toEqual([]);

    const updated = w.update('notes', 'shopping', { value: utf8('milk, eggs') });
    expect(updated.tags).toEqual({ kind: 'list', owner: 'alice' });
    expect(w.get('notes', 'shopping').value).toEqual(utf8('milk, eggs'));
    w.update('notes', 'shopping', { tags: { kind: 'done' } });
    expect(w.find({ category: 'notes', tags: { owner: 'alice' } })).toEqual([]);
    expect(w.find({ category: 'notes', tags: { kind: 'done' } }).map((i) => i.name)).toEqual(['shopping']);

    w.delete('notes', 'todo');
    expectCode(() => w.get('notes', 'todo'), 'ITEM_NOT_FOUND');
    expectCode(() => w.delete('notes', 'todo'), 'ITEM_NOT_FOUND');
    expectCode(() => w.update('notes', 'todo', { value: utf8('x') }), 'ITEM_NOT_FOUND');
    w.close();
  });

  it('refuses a second item with the same category and name', async () => {
    const w = await newWallet();
    w.put('notes', 'a', utf8('first'));
    expectCode(() => w.put('notes', 'a', utf8('second')), 'ITEM_EXISTS');
    expect(w.get('notes', 'a').value).toEqual(utf8('first'));
    w.put('other', 'a', utf8('same name, other category'));
    w.close();
  });

  it('keeps items across close and reopen', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    w.put('notes', 'a', utf8('kept'), { t: '1' });
    w.close();
    const again = await Wallet.open(path, KEY_A);
    expect(again.get('notes', 'a')).toEqual({ category: 'notes', name: 'a', value: utf8('kept'), tags: { t: '1' } });
    again.close();
  });

  it('stores no category, name, tag or value in clear', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    w.put('plaincategory', 'plainname', utf8('plainvalue'), { plaintagname: 'plaintagvalue' });
    w.close();
    const file = readFileSync(path).toString('latin1');
    for (const word of ['plaincategory', 'plainname', 'plainvalue', 'plaintagname', 'plaintagvalue']) {
      expect(file).not.toContain(word);
    }
  });

  it('rejects bad input with BAD_INPUT and stores nothing', async () => {
    const w = await newWallet();
    expectCode(() => w.put('', 'a', utf8('x')), 'BAD_INPUT');
    expectCode(() => w.put('c', '', utf8('x')), 'BAD_INPUT');
    expectCode(() => w.put('c', 'a', 'text' as unknown as Uint8Array), 'BAD_INPUT');
    expectCode(() => w.put('c', 'a', utf8('x'), { t: 1 as unknown as string }), 'BAD_INPUT');
    expectCode(() => w.put('c', 'x'.repeat(513), utf8('x')), 'BAD_INPUT');
    expectCode(() => w.put('c', 'a', utf8('x'), Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`t${i}`, 'v']))), 'BAD_INPUT');
    expectCode(() => w.put('c', 'a\uD800', utf8('x')), 'BAD_INPUT');
    expectCode(() => w.put('dkms:key', 'a', utf8('x')), 'BAD_INPUT');
    expectCode(() => w.get('dkms:key', 'a'), 'BAD_INPUT');
    expectCode(() => w.find({ category: 'dkms:key' }), 'BAD_INPUT');
    expect(w.info().items).toBe(0);
    w.close();
  });

  it('round-trips any item (property)', async () => {
    const w = await newWallet();
    const text = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !s.startsWith('dkms:') && !/[\uD800-\uDFFF]/u.test(s));
    let n = 0;
    fc.assert(
      fc.property(text, fc.uint8Array({ maxLength: 300 }), fc.dictionary(text, fc.string({ maxLength: 20 }), { maxKeys: 5 }), (category, value, tags) => {
        const name = `item-${n++}`;
        w.put(category, name, value, tags);
        const got = w.get(category, name);
        expect(got.value).toEqual(value);
        expect(got.tags).toEqual(tags);
        expect(w.find({ category, tags }).some((i) => i.name === name)).toBe(true);
      }),
      { numRuns: 300 },
    );
    w.close();
  });

  it('runs a transaction as one unit', async () => {
    const w = await newWallet();
    expect(() =>
      w.transaction(() => {
        w.put('notes', 'a', utf8('1'));
        w.put('notes', 'a', utf8('2'));
      }),
    ).toThrow(DkmsError);
    expectCode(() => w.get('notes', 'a'), 'ITEM_NOT_FOUND');
    w.transaction(() => {
      w.put('notes', 'a', utf8('1'));
      w.put('notes', 'b', utf8('2'));
    });
    expect(w.find({ category: 'notes' })).toHaveLength(2);
    w.close();
  });
});

describe('keys', () => {
  it('creates Ed25519 keys that sign and X25519 keys that agree, without revealing them', async () => {
    const alice = await newWallet();
    const bob = await Wallet.create(walletPath(), KEY_B);
    const signing = alice.createKey('main', 'ed25519');
    expect(signing.publicKey).toMatch(/^z6Mk/);
    const message = utf8('I authorize this');
    const signature = alice.sign('main', message);
    expect(ed25519Verify(decodePublicKey(signing.publicKey, 'ed25519').publicKey, message, signature)).toBe(true);

    const a = alice.createKey('kx', 'x25519');
    const b = bob.createKey('kx', 'x25519');
    expect(a.publicKey).toMatch(/^z6LS/);
    const ab = alice.agree('kx', decodePublicKey(b.publicKey, 'x25519').publicKey);
    const ba = bob.agree('kx', decodePublicKey(a.publicKey, 'x25519').publicKey);
    expect(ab).toEqual(ba);

    expect(
      alice
        .listKeys()
        .map((k) => k.name)
        .sort(),
    ).toEqual(['kx', 'main']);
    expect(alice.listKeys('x25519').map((k) => k.name)).toEqual(['kx']);
    // The one key-handle shape: raw public key, multikey, and the operation done in the wallet.
    const signer = alice.signer('main');
    expect(signer.multikey).toBe(alice.getKey('main').publicKey);
    expect(signer.publicKey).toEqual(decodePublicKey(signer.multikey, 'ed25519').publicKey);
    expect(ed25519Verify(signer.publicKey, message, signer.sign(message))).toBe(true);
    const agreement = alice.agreementKey('kx');
    expect(agreement.multikey).toBe(a.publicKey);
    expect(agreement.agree(decodePublicKey(b.publicKey, 'x25519').publicKey)).toEqual(ba);
    for (const shown of [signing, signer, agreement, ...alice.listKeys(), alice.getKey('main')]) {
      expect(Object.keys(shown)).not.toContain('privateKey');
      expect(JSON.stringify(shown)).not.toMatch(/private/i);
    }
    alice.close();
    bob.close();
  });

  it('refuses duplicate, missing and wrong-type keys with their codes', async () => {
    const w = await newWallet();
    w.createKey('sig', 'ed25519');
    w.createKey('kx', 'x25519');
    expectCode(() => w.createKey('sig', 'x25519'), 'KEY_EXISTS');
    expectCode(() => w.sign('nope', utf8('m')), 'KEY_NOT_FOUND');
    expectCode(() => w.getKey('nope'), 'KEY_NOT_FOUND');
    expectCode(() => w.sign('kx', utf8('m')), 'KEY_WRONG_TYPE');
    expectCode(() => w.agree('sig', randomBytes(32)), 'KEY_WRONG_TYPE');
    expectCode(() => w.signer('kx'), 'KEY_WRONG_TYPE');
    expectCode(() => w.agreementKey('sig'), 'KEY_WRONG_TYPE');
    expectCode(() => w.signer('nope'), 'KEY_NOT_FOUND');
    expectCode(() => w.agree('kx', new Uint8Array(32)), 'BAD_INPUT');
    expectCode(() => w.createKey('bad name', 'ed25519'), 'BAD_INPUT');
    expectCode(() => w.createKey('k', 'rsa' as 'ed25519'), 'BAD_INPUT');
    w.deleteKey('sig');
    expectCode(() => w.deleteKey('sig'), 'KEY_NOT_FOUND');
    expect(w.listKeys().map((k) => k.name)).toEqual(['kx']);
    w.close();
  });
});

describe('opening', () => {
  it('refuses a wrong passphrase with WALLET_BAD_PASSPHRASE and changes nothing', async () => {
    const path = walletPath();
    const w = await Wallet.create(path, passphraseSecret('right passphrase'), fast);
    w.put('notes', 'a', utf8('secret'));
    w.close();
    const before = fileState(path);
    await expectCodeAsync(Wallet.open(path, passphraseSecret('wrong passphrase')), 'WALLET_BAD_PASSPHRASE');
    await expectCodeAsync(Wallet.open(path, passphraseSecret('right passphrasf')), 'WALLET_BAD_PASSPHRASE');
    expect(fileState(path)).toBe(before);
    const again = await Wallet.open(path, passphraseSecret('right passphrase'));
    expect(again.get('notes', 'a').value).toEqual(utf8('secret'));
    again.close();
  });

  it('refuses a raw key for a passphrase wallet and the other way round', async () => {
    const path = walletPath();
    (await Wallet.create(path, passphraseSecret('right passphrase'), fast)).close();
    await expectCodeAsync(Wallet.open(path, KEY_A), 'BAD_INPUT');
    const rawPath = walletPath();
    (await Wallet.create(rawPath, KEY_A)).close();
    await expectCodeAsync(Wallet.open(rawPath, passphraseSecret('right passphrase')), 'BAD_INPUT');
    await expectCodeAsync(Wallet.open(rawPath, KEY_B), 'WALLET_BAD_PASSPHRASE');
  });

  it('reports a missing wallet, an existing one, and weak secrets', async () => {
    const path = walletPath();
    await expectCodeAsync(Wallet.open(path, KEY_A), 'WALLET_NOT_FOUND');
    expectCode(() => Wallet.inspect(path), 'WALLET_NOT_FOUND');
    await expectCodeAsync(Wallet.create(path, passphraseSecret('short')), 'BAD_INPUT');
    const w = await Wallet.create(path, KEY_A);
    w.put('notes', 'a', utf8('1'));
    w.close();
    const before = fileState(path);
    await expectCodeAsync(Wallet.create(path, KEY_B), 'WALLET_EXISTS');
    expect(fileState(path)).toBe(before);
  });

  it('gives WALLET_BUSY while another handle or process holds the wallet', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    await expectCodeAsync(Wallet.open(path, KEY_A), 'WALLET_BUSY');
    w.close();

    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { Wallet, rawSecret } from ${JSON.stringify(new URL('../../dist/src/wallet/index.js', import.meta.url).href)};
         const w = await Wallet.open(process.argv[1], rawSecret(new Uint8Array(32).fill(0xa1)));
         process.stdout.write('held\\n');
         process.stdin.once('data', () => { w.close(); process.exit(0); });`,
        path,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`holder exited early with ${String(code)}`)));
    });
    await expectCodeAsync(Wallet.open(path, KEY_A), 'WALLET_BUSY');
    expectCode(() => Wallet.inspect(path), 'WALLET_BUSY');
    holder.stdin.write('release\n');
    await new Promise((resolve) => holder.once('exit', resolve));
    const again = await Wallet.open(path, KEY_A);
    again.close();
  });

  it('tells whether a secret opens the open wallet, without opening it again, before and after a rekey', async () => {
    const path = walletPath();
    const w = await Wallet.create(path, passphraseSecret('right passphrase'), fast);
    const before = fileState(path);
    expect(await w.checkSecret(passphraseSecret('right passphrase'))).toBe('opens');
    expect(await w.checkSecret(passphraseSecret('right passphrasf'))).toBe('wrong');
    // A raw key is not what opens this wallet: nothing to compare.
    expect(await w.checkSecret(KEY_A)).toBe('unavailable');
    // Told from the open wallet: the file was not read (it is held, and unchanged).
    expect(fileState(path)).toBe(before);
    await w.rekey(passphraseSecret('new passphrase'), fast);
    expect(await w.checkSecret(passphraseSecret('right passphrase'))).toBe('wrong');
    expect(await w.checkSecret(passphraseSecret('new passphrase'))).toBe('opens');
    // Format 2 with a passphrase alone: checked against its passphrase part.
    await w.protect({ secret: passphraseSecret('format two passphrase'), kdfTier: 'interactive' });
    expect(w.info().format).toBe(2);
    expect(await w.checkSecret(passphraseSecret('format two passphrase'))).toBe('opens');
    expect(await w.checkSecret(passphraseSecret('new passphrase'))).toBe('wrong');
    w.close();
    await expectCodeAsync(w.checkSecret(passphraseSecret('format two passphrase')), 'WALLET_CLOSED');

    const raw = await Wallet.create(walletPath(), KEY_A);
    expect(await raw.checkSecret(KEY_A)).toBe('opens');
    expect(await raw.checkSecret(KEY_B)).toBe('wrong');
    expect(await raw.checkSecret(passphraseSecret('right passphrase'))).toBe('unavailable');
    raw.close();
  });

  it('wipes key material on close and refuses use afterwards', async () => {
    const w = await newWallet();
    w.createKey('sig', 'ed25519');
    const signer = w.signer('sig');
    const held = w[HELD_KEYS]();
    expect(held.every((k) => k.length === 32 && k.some((b) => b !== 0))).toBe(true);
    w.close();
    expect(held.every((k) => k.every((b) => b === 0))).toBe(true);
    expect(w.closed).toBe(true);
    expectCode(() => w.sign('sig', utf8('m')), 'WALLET_CLOSED');
    expectCode(() => signer.sign(utf8('m')), 'WALLET_CLOSED');
    expectCode(() => w.get('notes', 'a'), 'WALLET_CLOSED');
    w.close();
  });
});

/** Flips one byte of one blob in the closed wallet, straight in SQLite. */
function flipByte(path: string, table: string, column: string, rowid: number, index: number): void {
  const db = new Database(path);
  try {
    const row = db.prepare(`SELECT ${column} AS v FROM ${table} WHERE rowid = ?`).get(rowid) as { v: Buffer | string };
    const bytes = Buffer.from(row.v);
    bytes[index] = (bytes[index] ?? 0) ^ 0x01;
    db.prepare(`UPDATE ${table} SET ${column} = ? WHERE rowid = ?`).run(typeof row.v === 'string' ? bytes.toString('latin1') : bytes, rowid);
  } finally {
    db.close();
  }
}

function blobLength(path: string, table: string, column: string, rowid: number): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`SELECT length(${column}) AS n FROM ${table} WHERE rowid = ?`).get(rowid) as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('tamper detection', () => {
  const value = utf8('the one true value');

  async function seeded(): Promise<string> {
    const path = walletPath();
    const w = await newWallet(path);
    w.put('notes', 'a', value, { t: 'x' });
    w.close();
    return path;
  }

  /** Opening and reading must fail with WALLET_TAMPERED, or (for the search index) find nothing; never a wrong value. */
  async function readBack(path: string): Promise<'tampered' | 'intact'> {
    let w: Wallet | undefined;
    try {
      w = await Wallet.open(path, KEY_A);
      const item: WalletItem = w.get('notes', 'a');
      expect(item.value).toEqual(value);
      expect(item.tags).toEqual({ t: 'x' });
      return 'intact';
    } catch (e) {
      expect(e).toBeInstanceOf(DkmsError);
      expect(['WALLET_TAMPERED', 'ITEM_NOT_FOUND']).toContain((e as DkmsError).code);
      return 'tampered';
    } finally {
      w?.close();
    }
  }

  for (const [table, column] of [
    ['items', 'item_key'],
    ['items', 'value'],
    ['items', 'category'],
    ['items', 'name'],
    ['profiles', 'kek'],
    ['keyring', 'digest'],
    ['keyring', 'header'],
  ] as const) {
    it(`any flipped byte of ${table}.${column} is WALLET_TAMPERED`, async () => {
      const path = await seeded();
      const length = blobLength(path, table, column, 1);
      const original = readFileSync(path);
      for (let i = 0; i < length; i++) {
        flipByte(path, table, column, 1, i);
        const w = Wallet.open(path, KEY_A).then((opened) => {
          try {
            return opened.get('notes', 'a');
          } finally {
            opened.close();
          }
        });
        await expectCodeAsync(w, 'WALLET_TAMPERED');
        flipByte(path, table, column, 1, i);
      }
      expect(readFileSync(path).length).toBe(original.length);
      expect(await readBack(path)).toBe('intact');
    });
  }

  for (const column of ['category_key', 'name_key'] as const) {
    it(`a flipped byte of the lookup key items.${column} hides the item but a full read reports it`, async () => {
      const path = await seeded();
      const length = blobLength(path, 'items', column, 1);
      for (let i = 0; i < length; i++) {
        flipByte(path, 'items', column, 1, i);
        const w = await Wallet.open(path, KEY_A);
        expectCode(() => w.get('notes', 'a'), 'ITEM_NOT_FOUND');
        if (column === 'name_key') expectCode(() => w.find({ category: 'notes' }), 'WALLET_TAMPERED');
        else expect(w.find({ category: 'notes' })).toEqual([]);
        // Export decrypts every stored field, so the damage is reported, not skipped.
        await expectCodeAsync(w.export(KEY_B), 'WALLET_TAMPERED');
        w.close();
        flipByte(path, 'items', column, 1, i);
      }
      expect(await readBack(path)).toBe('intact');
    });
  }

  it('a value moved to another item does not open', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    w.put('notes', 'a', utf8('value of a'));
    w.put('notes', 'b', utf8('value of b'));
    w.close();
    const db = new Database(path);
    db.prepare(
      'UPDATE items SET value = (SELECT value FROM items WHERE rowid = 2), item_key = (SELECT item_key FROM items WHERE rowid = 2) WHERE rowid = 1',
    ).run();
    db.close();
    const again = await Wallet.open(path, KEY_A);
    expectCode(() => again.get('notes', 'a'), 'WALLET_TAMPERED');
    expect(again.get('notes', 'b').value).toEqual(utf8('value of b'));
    again.close();
  });

  it('a damaged tag index can hide an item from find but never returns a wrong one', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    w.put('notes', 'a', value, { t: 'x' });
    w.put('notes', 'b', utf8('other'), { t: 'y' });
    w.close();
    const db = new Database(path);
    // Point b's tag entry at a: a find for b's tag must not return a.
    db.prepare('UPDATE item_tags SET item_id = 1 WHERE item_id = 2').run();
    db.close();
    const again = await Wallet.open(path, KEY_A);
    expect(again.find({ category: 'notes', tags: { t: 'y' } })).toEqual([]);
    expect(again.find({ category: 'notes', tags: { t: 'x' } }).map((i) => i.name)).toEqual(['a']);
    expect(again.get('notes', 'b').tags).toEqual({ t: 'y' });
    again.close();
  });

  it('a row moved under another name does not open', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    w.put('notes', 'a', utf8('value of a'));
    w.put('notes', 'b', utf8('value of b'));
    w.close();
    const db = new Database(path);
    const keyOfA = (db.prepare('SELECT name_key FROM items WHERE rowid = 1').get() as { name_key: Buffer }).name_key;
    db.prepare("UPDATE items SET name_key = x'01' WHERE rowid = 1").run();
    db.prepare('UPDATE items SET name_key = ? WHERE rowid = 2').run(keyOfA);
    db.close();
    const again = await Wallet.open(path, KEY_A);
    // b's row now answers to a's lookup key: it must not pass for a.
    expectCode(() => again.get('notes', 'a'), 'WALLET_TAMPERED');
    expectCode(() => again.find({ category: 'notes' }), 'WALLET_TAMPERED');
    again.close();
  });
});

describe('rekey', () => {
  it('switches the secret: the old one stops working, every item stays', async () => {
    const path = walletPath();
    const w = await Wallet.create(path, passphraseSecret('first passphrase'), fast);
    w.put('notes', 'a', utf8('kept'));
    w.createKey('sig', 'ed25519');
    const signer = w.getKey('sig');
    await w.rekey(passphraseSecret('second passphrase'), fast);
    expect(w.info().keyVersion).toBe(1);
    expect(w.get('notes', 'a').value).toEqual(utf8('kept'));
    w.close();

    await expectCodeAsync(Wallet.open(path, passphraseSecret('first passphrase')), 'WALLET_BAD_PASSPHRASE');
    const again = await Wallet.open(path, passphraseSecret('second passphrase'));
    expect(again.get('notes', 'a').value).toEqual(utf8('kept'));
    const m = utf8('after rekey');
    expect(ed25519Verify(decodePublicKey(signer.publicKey).publicKey, m, again.sign('sig', m))).toBe(true);
    await again.rekey(KEY_B);
    again.close();
    const raw = await Wallet.open(path, KEY_B);
    expect(raw.info().kdf).toEqual({ alg: 'raw' });
    expect(raw.info().keyVersion).toBe(2);
    raw.close();
  });

  it('re-wraps only the keyring: no item row changes', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    for (let i = 0; i < 50; i++) w.put('notes', `n${i}`, utf8(`v${i}`), { i: String(i) });
    w.close();
    const snapshot = () => {
      const db = new Database(path, { readonly: true });
      try {
        return toHex(
          sha256(
            Buffer.from(
              JSON.stringify(db.prepare('SELECT * FROM items ORDER BY id').all()) +
                JSON.stringify(db.prepare('SELECT * FROM item_tags ORDER BY tag, item_id').all()),
            ),
          ),
        );
      } finally {
        db.close();
      }
    };
    const before = snapshot();
    const again = await Wallet.open(path, KEY_A);
    await again.rekey(KEY_B);
    again.close();
    expect(snapshot()).toBe(before);
  });

  it('re-wraps every profile', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    w.createProfile('work');
    await expectCodeAsync(
      Promise.resolve().then(() => w.createProfile('work')),
      'ITEM_EXISTS',
    );
    w.close();
    const work = await Wallet.open(path, KEY_A, { profile: 'work' });
    work.put('notes', 'a', utf8('work item'));
    await work.rekey(KEY_B);
    work.close();
    const def = await Wallet.open(path, KEY_B);
    expectCode(() => def.get('notes', 'a'), 'ITEM_NOT_FOUND');
    def.close();
    const again = await Wallet.open(path, KEY_B, { profile: 'work' });
    expect(again.get('notes', 'a').value).toEqual(utf8('work item'));
    expect(again.info().profiles).toEqual(['default', 'work']);
    again.close();
    await expectCodeAsync(Wallet.open(path, KEY_B, { profile: 'absent' }), 'BAD_INPUT');
  });

  it('refuses a weak new passphrase and keeps the old one', async () => {
    const path = walletPath();
    const w = await newWallet(path);
    await expectCodeAsync(w.rekey(passphraseSecret('short')), 'BAD_INPUT');
    w.close();
    (await Wallet.open(path, KEY_A)).close();
  });
});

describe('export and import', () => {
  const exportSecret = passphraseSecret('export passphrase');

  it('restores every item and key into a new wallet', async () => {
    const w = await newWallet();
    w.put('notes', 'a', utf8('one'), { t: '1' });
    w.put('notes', 'b', randomBytes(1000));
    const signer = w.createKey('sig', 'ed25519');
    w.createProfile('work');
    const exported = await w.export(exportSecret, fast);
    const originals = w.find({ category: 'notes' });
    w.close();

    const path = walletPath();
    const restored = await Wallet.import(path, exported, exportSecret, KEY_B);
    expect(restored.find({ category: 'notes' })).toEqual(originals);
    const m = utf8('signed by the restored key');
    expect(ed25519Verify(decodePublicKey(signer.publicKey).publicKey, m, restored.sign('sig', m))).toBe(true);
    expect(restored.info().profiles).toEqual(['default', 'work']);
    restored.close();
    (await Wallet.open(path, KEY_B)).close();
  });

  it('refuses a wrong export secret, damage, and an existing target', async () => {
    const w = await newWallet();
    w.put('notes', 'a', utf8('one'));
    const exported = await w.export(KEY_B);
    w.close();

    await expectCodeAsync(Wallet.import(walletPath(), exported, KEY_A, KEY_A), 'WALLET_BAD_PASSPHRASE');
    for (let i = 0; i < exported.length; i++) {
      const damaged = exported.slice();
      damaged[i] = (damaged[i] ?? 0) ^ 0x80;
      const error = await expectCodeAsync(Wallet.import(walletPath(), damaged, KEY_B, KEY_A), i < 7 ? 'EXPORT_BAD_FORMAT' : 'WALLET_TAMPERED');
      expect(error.message).not.toMatch(/one/);
    }
    await expectCodeAsync(Wallet.import(walletPath(), exported.subarray(0, exported.length - 1), KEY_B, KEY_A), 'WALLET_TAMPERED');

    const existing = walletPath();
    (await Wallet.create(existing, KEY_A)).close();
    const before = fileState(existing);
    await expectCodeAsync(Wallet.import(existing, exported, KEY_B, KEY_A), 'WALLET_EXISTS');
    expect(fileState(existing)).toBe(before);
  });

  it('rejects arbitrary bytes with a code (property)', async () => {
    const target = walletPath();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        const error = await Wallet.import(target, bytes, KEY_B, KEY_A).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(DkmsError);
        expect(['EXPORT_BAD_FORMAT', 'WALLET_TAMPERED']).toContain((error as DkmsError).code);
      }),
      { numRuns: 200 },
    );
  });
});
