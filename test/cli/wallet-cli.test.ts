import { readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { dkms, json } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const PASS = 'first passphrase for tests';
const FAST = ['--kdf-tier', 'interactive'];

function home(): { env: Record<string, string>; dir: string } {
  const dir = tempDir();
  return { dir, env: { DKMS_HOME: dir, DKMS_PASSPHRASE: PASS } };
}

describe('dkms wallet', () => {
  it('creates a wallet, shows it, and refuses to create it twice', async () => {
    const { dir, env } = home();
    const created = await dkms(['wallet', 'create', ...FAST, '--json'], env);
    expect(created.code).toBe(0);
    expect(json(created)).toMatchObject({ path: join(dir, 'wallet.db'), keyVersion: 0, items: 0, kdf: { alg: 'argon2id', tier: 'interactive' } });
    expect(statSync(join(dir, 'wallet.db')).mode & 0o777).toBe(0o600);

    // info needs no passphrase.
    const info = await dkms(['wallet', 'info'], { DKMS_HOME: dir });
    expect(info.code).toBe(0);
    expect(info.stdout).toContain('argon2id (interactive');

    const again = await dkms(['wallet', 'create', ...FAST], env);
    expect(again.code).toBe(ERROR_CODES.WALLET_EXISTS.exit);
    expect(again.stderr).toMatch(/^dkms: WALLET_EXISTS: a wallet already exists at .+\n$/);
  });

  it('takes the data directory from --home before DKMS_HOME', async () => {
    const { env } = home();
    const other = tempDir();
    expect((await dkms(['--home', other, 'wallet', 'create', ...FAST], env)).code).toBe(0);
    expect(existsSync(join(other, 'wallet.db'))).toBe(true);
    expect(existsSync(join(env['DKMS_HOME'] ?? '', 'wallet.db'))).toBe(false);
  });

  it('reads the passphrase from --passphrase-file, then DKMS_PASSPHRASE, and never from a pipe without a terminal', async () => {
    const dir = tempDir();
    const file = join(dir, 'pass.txt');
    writeFileSync(file, `${PASS}\nignored second line\n`);
    expect((await dkms(['--passphrase-file', file, 'wallet', 'create', ...FAST], { DKMS_HOME: dir })).code).toBe(0);
    expect((await dkms(['key', 'list'], { DKMS_HOME: dir, DKMS_PASSPHRASE: PASS })).code).toBe(0);
    // The file wins over a wrong environment variable.
    expect((await dkms(['key', 'list', '--passphrase-file', file], { DKMS_HOME: dir, DKMS_PASSPHRASE: 'wrong one!' })).code).toBe(0);

    const none = await dkms(['key', 'list'], { DKMS_HOME: dir }, `${PASS}\n`);
    expect(none.code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect(none.stderr).toMatch(/^dkms: BAD_INPUT: no wallet passphrase: use --passphrase-file, set DKMS_PASSPHRASE, or run in a terminal\n$/);
  });

  it('refuses a wrong passphrase with its exit status and never prints a secret', async () => {
    const { env } = home();
    await dkms(['wallet', 'create', ...FAST], env);
    const wrong = await dkms(['key', 'list', '--json'], { ...env, DKMS_PASSPHRASE: 'not the passphrase' });
    expect(wrong.code).toBe(ERROR_CODES.WALLET_BAD_PASSPHRASE.exit);
    expect(wrong.stderr).toBe('dkms: WALLET_BAD_PASSPHRASE: wrong passphrase or key for this wallet\n');
    expect(json(wrong)).toEqual({ error: { code: 'WALLET_BAD_PASSPHRASE', message: 'wrong passphrase or key for this wallet' } });
    expect(wrong.stdout + wrong.stderr).not.toContain('not the passphrase');
  });

  it('rekeys with DKMS_NEW_PASSPHRASE or --new-passphrase-file', async () => {
    const { dir, env } = home();
    await dkms(['wallet', 'create', ...FAST], env);
    await dkms(['key', 'create', '--type', 'ed25519', '--name', 'main'], env);
    const rekeyed = await dkms(['wallet', 'rekey', ...FAST, '--json'], { ...env, DKMS_NEW_PASSPHRASE: 'second passphrase' });
    expect(rekeyed.code).toBe(0);
    expect(json(rekeyed)).toMatchObject({ keyVersion: 1 });
    expect((await dkms(['key', 'list'], env)).code).toBe(ERROR_CODES.WALLET_BAD_PASSPHRASE.exit);

    const file = join(dir, 'third.txt');
    writeFileSync(file, 'third passphrase\n');
    const viaFile = await dkms(['wallet', 'rekey', ...FAST, '--new-passphrase-file', file], { ...env, DKMS_PASSPHRASE: 'second passphrase' });
    expect(viaFile.code).toBe(0);
    const list = await dkms(['key', 'list', '--json'], { ...env, DKMS_PASSPHRASE: 'third passphrase' });
    expect(json<{ keys: { name: string }[] }>(list).keys.map((k) => k.name)).toEqual(['main']);

    const weak = await dkms(['wallet', 'rekey', ...FAST], { ...env, DKMS_PASSPHRASE: 'third passphrase', DKMS_NEW_PASSPHRASE: 'short' });
    expect(weak.code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect((await dkms(['key', 'list'], { ...env, DKMS_PASSPHRASE: 'third passphrase' })).code).toBe(0);
  });

  it('opens with a raw key file instead of a passphrase', async () => {
    const dir = tempDir();
    const keyFile = join(dir, 'wallet.key');
    writeFileSync(keyFile, `${'ab'.repeat(32)}\n`);
    expect((await dkms(['--key-file', keyFile, 'wallet', 'create'], { DKMS_HOME: dir })).code).toBe(0);
    expect((await dkms(['--key-file', keyFile, 'key', 'create', '--type', 'x25519', '--name', 'kx'], { DKMS_HOME: dir })).code).toBe(0);
    const info = await dkms(['wallet', 'info', '--json'], { DKMS_HOME: dir });
    expect(json(info)).toMatchObject({ kdf: { alg: 'raw' }, items: 1 });
    writeFileSync(keyFile, 'not a key');
    expect((await dkms(['--key-file', keyFile, 'key', 'list'], { DKMS_HOME: dir })).code).toBe(ERROR_CODES.BAD_INPUT.exit);
  });

  it('refuses a passphrase under 8 characters (characters, not bytes), and makes no wallet', async () => {
    for (const short of ['1234567', 'ééééééé']) {
      const { dir } = home();
      const run = await dkms(['wallet', 'create', ...FAST, '--json'], { DKMS_HOME: dir, DKMS_PASSPHRASE: short });
      expect(JSON.parse(run.stdout)).toEqual({ error: { code: 'BAD_INPUT', message: 'passphrase must have at least 8 characters' } });
      expect(existsSync(join(dir, 'wallet.db'))).toBe(false);
    }
    const { dir } = home();
    expect((await dkms(['wallet', 'create', ...FAST], { DKMS_HOME: dir, DKMS_PASSPHRASE: 'éééééééé' })).code).toBe(0);
  });

  it('exports to an encrypted file and imports it into a new data directory', async () => {
    const { dir, env } = home();
    await dkms(['wallet', 'create', ...FAST], env);
    const key = json<{ publicKey: string }>(await dkms(['key', 'create', '--type', 'ed25519', '--name', 'main', '--json'], env));
    const out = join(dir, 'backup.dkmsx');
    const exportEnv = { ...env, DKMS_EXPORT_PASSPHRASE: 'export passphrase' };
    const exported = await dkms(['wallet', 'export', '--out', out, ...FAST, '--json'], exportEnv);
    expect(exported.code).toBe(0);
    expect(json(exported)).toMatchObject({ out, items: 1 });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out).toString('latin1')).not.toContain('main');

    const again = await dkms(['wallet', 'export', '--out', out, ...FAST], exportEnv);
    expect(again.code).toBe(ERROR_CODES.FILE_EXISTS.exit);

    // What the export needs besides the wallet is checked before the wallet is unlocked: with a
    // wrong wallet passphrase, each of these is refused for itself, not as WALLET_BAD_PASSPHRASE.
    const wrongWallet = { ...exportEnv, DKMS_PASSPHRASE: 'not the wallet passphrase' };
    const exists = await dkms(['wallet', 'export', '--out', out, '--json'], wrongWallet);
    expect(JSON.parse(exists.stdout)).toMatchObject({ error: { code: 'FILE_EXISTS' } });
    const noDir = await dkms(['wallet', 'export', '--out', join(dir, 'missing', 'x.dkmsx'), '--json'], wrongWallet);
    expect(JSON.parse(noDir.stdout)).toMatchObject({ error: { code: 'BAD_INPUT', message: expect.stringContaining('--out') } });
    const noSecret = await dkms(['wallet', 'export', '--out', join(dir, 'other.dkmsx'), '--json'], { ...env, DKMS_PASSPHRASE: 'not the wallet passphrase' });
    expect(JSON.parse(noSecret.stdout)).toEqual({
      error: { code: 'BAD_INPUT', message: 'no export passphrase: use --export-passphrase-file, set DKMS_EXPORT_PASSPHRASE, or run in a terminal' },
    });
    expect(existsSync(join(dir, 'other.dkmsx'))).toBe(false);

    const target = tempDir();
    const wrong = await dkms(['wallet', 'import', '--in', out, ...FAST], {
      ...exportEnv,
      DKMS_HOME: target,
      DKMS_EXPORT_PASSPHRASE: 'wrong export passphrase',
    });
    expect(wrong.code).toBe(ERROR_CODES.WALLET_BAD_PASSPHRASE.exit);
    expect(existsSync(join(target, 'wallet.db'))).toBe(false);

    const imported = await dkms(['wallet', 'import', '--in', out, ...FAST], { ...exportEnv, DKMS_HOME: target, DKMS_PASSPHRASE: 'new device passphrase' });
    expect(imported.code).toBe(0);
    const shown = await dkms(['key', 'show', '--name', 'main', '--json'], { DKMS_HOME: target, DKMS_PASSPHRASE: 'new device passphrase' });
    expect(json(shown)).toMatchObject({ name: 'main', type: 'ed25519', publicKey: key.publicKey });
  });
});
