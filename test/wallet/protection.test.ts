/**
 * What opens a wallet beyond its passphrase (src/wallet/protection.ts), against a SoftHSM2 token
 * of the test's own: a wallet bound to a token does not open without it (missing, wrong PIN, its
 * key gone, another token); keys made in the token are listed as there and sign there; an older
 * copy of a wallet bound to a token is told apart (WALLET_ROLLED_BACK), and a generation edited
 * upward is damage; custodians' secret is a factor in unseal mode and seals single keys in
 * approval mode. Each refusal changes nothing.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { canonicalJson, decodePublicKey, ed25519Verify, randomBytes, sha256, toHex, utf8 } from '../../src/crypto/index.js';
import { Pkcs11Token } from '../../src/hsm/pkcs11.js';
import { Wallet, passphraseSecret } from '../../src/wallet/index.js';
import { buildKeyring, type KeyringHeader } from '../../src/wallet/keyring.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { SOFTHSM_MODULE, TOKEN_PIN, destroyTokenObjects, softhsmSuite } from '../helpers/softhsm.js';
import { suiteDirs } from '../helpers/tmp.js';

const SECRET = passphraseSecret('correct horse battery');
const fast = { kdfTier: 'interactive' } as const;
const message = utf8('a message to sign');

const openToken = (label: string, pin = TOKEN_PIN) => Pkcs11Token.open({ module: SOFTHSM_MODULE, token: label, pin });

function fileState(path: string): string {
  return toHex(sha256(readFileSync(path)));
}

/** A custody factor as src/custody makes one, for the wallet's part (which treats the document as opaque). */
function custodyFactor(mode: 'unseal' | 'approval', epoch = 1) {
  const set = toHex(randomBytes(16));
  return { factor: { set, epoch, mode, document: canonicalJson({ type: 'dkms-custody', set, epoch }) }, secret: randomBytes(32) };
}

describe('a wallet bound to a token, keys in the token, custodians', () => {
  const dirs = suiteDirs('dkms-protect-');
  softhsmSuite(dirs, ['bound', 'other', 'lost']);

  it('binds a wallet to a token: it then opens only with the passphrase and the token, and says so', async () => {
    const path = join(dirs(), 'wallet.db');
    const wallet = await Wallet.create(path, SECRET, fast);
    wallet.put('notes', 'n1', utf8('kept'));
    await wallet.protect({ token: { token: await openToken('bound'), module: SOFTHSM_MODULE, key: 'wallet-a' }, secret: SECRET, kdfTier: 'interactive' });
    const info = wallet.info();
    expect(info.format).toBe(2);
    expect(info.protection).toMatchObject({ passphrase: true, token: { token: 'bound', key: 'wallet-a', module: SOFTHSM_MODULE }, generation: 1 });
    // The passphrase alone no longer opens it: no check of it can say it does.
    expect(await wallet.checkSecret(SECRET)).toBe('unavailable');
    wallet.close();

    const before = fileState(path);
    await expectCodeAsync(Wallet.open(path, SECRET), 'HSM_UNAVAILABLE');
    await expectCodeAsync(Wallet.open(path, { secret: SECRET, token: { pin: 'wrong-pin' } }), 'HSM_PIN_WRONG');
    await expectCodeAsync(Wallet.open(path, { token: { pin: TOKEN_PIN } }), 'BAD_INPUT');
    await expectCodeAsync(Wallet.open(path, { secret: passphraseSecret('not the passphrase'), token: { pin: TOKEN_PIN } }), 'WALLET_BAD_PASSPHRASE');
    await expectCodeAsync(Wallet.open(path, { secret: SECRET, token: { pin: TOKEN_PIN, module: join(dirs(), 'no-module.so') } }), 'HSM_UNAVAILABLE');
    // Another token whose label is made to match is not the one: its key is not there.
    await expectCodeAsync(Wallet.open(path, { secret: SECRET, token: await openToken('other') }), 'HSM_TOKEN_NOT_FOUND');
    expect(fileState(path)).toBe(before);

    const opened = await Wallet.open(path, { secret: SECRET, token: { pin: TOKEN_PIN } });
    expect(opened.get('notes', 'n1').value).toEqual(utf8('kept'));
    opened.close();
  });

  it('opens a token-only wallet with the PIN alone, and refuses once the token lost its key', async () => {
    const path = join(dirs(), 'wallet.db');
    const wallet = await Wallet.create(path, SECRET, fast);
    await wallet.protect({ token: { token: await openToken('lost'), module: SOFTHSM_MODULE, key: 'wrap' }, secret: null });
    expect(wallet.info().protection.passphrase).toBe(false);
    wallet.close();
    (await Wallet.open(path, { token: { pin: TOKEN_PIN } })).close();

    // The token's AES key destroyed (a reset token): the wallet cannot open, and says what is missing.
    expect(await destroyTokenObjects('lost', 'wrap')).toBe(1);
    const error = await expectCodeAsync(Wallet.open(path, { token: { pin: TOKEN_PIN } }), 'HSM_KEY_NOT_FOUND');
    expect(error.message).toContain("'wrap'");
  });

  it('tells an older copy of a token-bound wallet apart: a key made after the copy was taken would be lost', async () => {
    const dir = dirs();
    const path = join(dir, 'wallet.db');
    const wallet = await Wallet.create(path, SECRET, fast);
    // The passphrase stays a factor without being given again.
    await wallet.protect({ token: { token: await openToken('bound'), module: SOFTHSM_MODULE, key: 'wallet-rb' } });
    wallet.close();
    copyFileSync(path, join(dir, 'old.db'));

    const newer = await Wallet.open(path, { secret: SECRET, token: { pin: TOKEN_PIN } });
    newer.createKey('made-later', 'ed25519');
    const generation = newer.info().protection.generation ?? 0;
    newer.close();
    expect(generation).toBe(2);

    copyFileSync(join(dir, 'old.db'), path);
    const error = await expectCodeAsync(Wallet.open(path, { secret: SECRET, token: { pin: TOKEN_PIN } }), 'WALLET_ROLLED_BACK');
    expect(error.message).toContain('generation 1');
    expect(error.message).toContain('generation 2');

    // Editing the old copy's generation upward (its digest recomputed) does not pass: the generation is authenticated.
    const db = new Database(path);
    const row = db.prepare('SELECT header FROM keyring WHERE id = 1').get() as { header: string };
    const header = { ...(JSON.parse(row.header) as KeyringHeader), generation: 5 };
    const profiles = new Map(
      (db.prepare('SELECT name, kek FROM profiles').all() as { name: string; kek: Buffer }[]).map((p) => [p.name, new Uint8Array(p.kek)]),
    );
    const rebuilt = buildKeyring(header, profiles);
    db.prepare('UPDATE keyring SET header = ?, digest = ? WHERE id = 1').run(rebuilt.header, rebuilt.digest);
    db.close();
    await expectCodeAsync(Wallet.open(path, { secret: SECRET, token: { pin: TOKEN_PIN } }), 'WALLET_TAMPERED');
  });

  it('makes keys inside the token: listed as there, signing there (verified outside), not without the token', async () => {
    const path = join(dirs(), 'wallet.db');
    const wallet = await Wallet.create(path, SECRET, fast);
    const soft = wallet.createKey('soft', 'ed25519');
    const hard = wallet.createTokenKey('admin', await openToken('bound'), { module: SOFTHSM_MODULE, label: 'admin-key' });
    expect(soft.location).toEqual({ kind: 'wallet' });
    expect(hard.location).toEqual({ kind: 'token', module: SOFTHSM_MODULE, token: 'bound', label: 'admin-key' });
    const { publicKey } = decodePublicKey(hard.publicKey, 'ed25519');
    expect(ed25519Verify(publicKey, message, wallet.sign('admin', message))).toBe(true);
    await expectCodeAsync(
      openToken('bound').then((token) => wallet.createTokenKey('soft', token, { module: SOFTHSM_MODULE })),
      'KEY_EXISTS',
    );
    wallet.close();

    const again = await Wallet.open(path, SECRET);
    try {
      expect(again.tokensNeeded()).toEqual([{ module: SOFTHSM_MODULE, token: 'bound' }]);
      await expectCodeAsync(
        Promise.resolve().then(() => again.sign('admin', message)),
        'HSM_UNAVAILABLE',
      );
      again.useToken(await openToken('bound'));
      expect(again.tokensNeeded()).toEqual([]);
      expect(ed25519Verify(publicKey, message, again.signer('admin').sign(message))).toBe(true);
      expect(again.listKeys().map((k) => [k.name, k.location.kind])).toEqual([
        ['soft', 'wallet'],
        ['admin', 'token'],
      ]);
      // Bound to another token, it still knows which token its keys are in (whose PIN to ask for).
      await again.protect({ token: { token: await openToken('other'), module: SOFTHSM_MODULE, key: 'wrap' } });
      expect(again.info().protection).toMatchObject({ token: { token: 'other' }, keyTokens: ['bound'] });
    } finally {
      again.close();
    }
  });

  it('puts a wallet under custodians who unseal it: without their secret it does not open, with it it does', async () => {
    const path = join(dirs(), 'wallet.db');
    const wallet = await Wallet.create(path, SECRET, fast);
    wallet.createKey('k', 'ed25519');
    const custody = custodyFactor('unseal');
    await wallet.protect({ custody, secret: null });
    expect(wallet.info().protection.custody).toEqual({ set: custody.factor.set, epoch: 1, mode: 'unseal' });
    expect(await wallet.checkSecret(SECRET)).toBe('unavailable');
    wallet.close();

    const before = fileState(path);
    await expectCodeAsync(Wallet.open(path, SECRET), 'CUSTODY_REQUIRED');
    await expectCodeAsync(Wallet.open(path, { custody: randomBytes(32) }), 'WALLET_BAD_PASSPHRASE');
    expect(fileState(path)).toBe(before);
    const opened = await Wallet.open(path, { custody: custody.secret });
    expect(opened.listKeys().map((k) => k.name)).toEqual(['k']);
    opened.close();
  });

  it('seals one master key under custodians who approve each use; a new set re-seals it and the old secret stops working', async () => {
    const path = join(dirs(), 'wallet.db');
    const wallet = await Wallet.create(path, SECRET, fast);
    try {
      const master = wallet.createKey('master', 'ed25519');
      const custody = custodyFactor('approval');
      await wallet.protect({ custody, secret: SECRET, kdfTier: 'interactive' });
      // Approval mode: the passphrase alone still opens the wallet, and is checked.
      expect(await wallet.checkSecret(SECRET)).toBe('opens');
      expect(await wallet.checkSecret(passphraseSecret('not the passphrase'))).toBe('wrong');
      expect(wallet.sealKeyUnderCustody('master', custody.secret).location).toEqual({ kind: 'custody', set: custody.factor.set });
      const { publicKey } = decodePublicKey(master.publicKey, 'ed25519');

      await expectCodeAsync(
        Promise.resolve().then(() => wallet.sign('master', message)),
        'CUSTODY_REQUIRED',
      );
      await expectCodeAsync(
        Promise.resolve().then(() => wallet.signWithCustody('master', message, randomBytes(32))),
        'SHARE_BAD_SIGNATURE',
      );
      expect(ed25519Verify(publicKey, message, wallet.signWithCustody('master', message, custody.secret))).toBe(true);

      const next = custodyFactor('approval', 2);
      await wallet.rotateCustody(custody.secret, next);
      await expectCodeAsync(
        Promise.resolve().then(() => wallet.signWithCustody('master', message, custody.secret)),
        'SHARE_BAD_SIGNATURE',
      );
      expect(ed25519Verify(publicKey, message, wallet.signWithCustody('master', message, next.secret))).toBe(true);
    } finally {
      wallet.close();
    }
    // Approval mode leaves the everyday keys to the passphrase.
    (await Wallet.open(path, SECRET)).close();
  });
});
