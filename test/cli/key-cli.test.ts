import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { dkms, json } from '../helpers/cli.js';

const PASS = 'key tests passphrase';
let env: Record<string, string>;
let dir: string;
let keyFile: string;
/** The wallet opens with a raw key file: these tests are about keys, not about unlocking (wallet-cli.test.ts). */
const keyed = (args: readonly string[]): string[] => ['--key-file', keyFile, ...args];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dkms-key-cli-'));
  keyFile = join(mkdtempSync(join(tmpdir(), 'dkms-key-cli-key-')), 'wallet.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  env = { DKMS_HOME: dir };
  const created = await dkms(keyed(['wallet', 'create']), env);
  expect(created.code).toBe(0);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(dirname(keyFile), { recursive: true, force: true });
});

describe('dkms key', () => {
  it('creates keys and prints name, type and public key as JSON', async () => {
    const ed = json(await dkms(keyed(['key', 'create', '--type', 'ed25519', '--name', 'signer', '--json']), env));
    expect(ed).toMatchObject({ name: 'signer', type: 'ed25519' });
    expect(ed['publicKey']).toMatch(/^z6Mk[1-9A-HJ-NP-Za-km-z]+$/);
    const x = json(await dkms(keyed(['key', 'create', '--type', 'x25519', '--name', 'agree', '--json']), env));
    expect(x['publicKey']).toMatch(/^z6LS/);

    const list = json<{ keys: { name: string; type: string; publicKey: string; location: string }[] }>(await dkms(keyed(['key', 'list', '--json']), env));
    expect(new Set(list.keys.map((k) => k.location))).toEqual(new Set(['wallet']));
    expect(list.keys.map((k) => [k.name, k.type])).toEqual(
      expect.arrayContaining([
        ['signer', 'ed25519'],
        ['agree', 'x25519'],
      ]),
    );
    expect(JSON.stringify(list)).not.toMatch(/private/i);

    const human = await dkms(keyed(['key', 'list']), env);
    expect(human.stdout).toMatch(/^NAME\s+TYPE\s+LOCATION\s+PUBLICKEY/);
    expect(human.stdout).toContain(String(ed['publicKey']));

    const dup = await dkms(keyed(['key', 'create', '--type', 'ed25519', '--name', 'signer']), env);
    expect(dup.code).toBe(ERROR_CODES.KEY_EXISTS.exit);
    expect(dup.stderr).toBe("dkms: KEY_EXISTS: a key named 'signer' already exists\n");
  });

  it('signs a file and verifies it: exit 0 when valid, 1 when not', async () => {
    await dkms(keyed(['key', 'create', '--type', 'ed25519', '--name', 'doc-signer']), env);
    const file = join(dir, 'doc.txt');
    writeFileSync(file, 'a contract');
    const signed = await dkms(keyed(['key', 'sign', '--name', 'doc-signer', '--in', file]), env);
    expect(signed.code).toBe(0);
    const signature = signed.stdout.trim();
    expect(signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
    const publicKey = String(json(await dkms(keyed(['key', 'show', '--name', 'doc-signer', '--json']), env))['publicKey']);

    // Verifying needs no wallet and no passphrase.
    const valid = await dkms(['key', 'verify', '--public-key', publicKey, '--signature', signature, '--in', file], {});
    expect(valid).toMatchObject({ code: 0, stdout: 'valid\n' });

    writeFileSync(file, 'a contract, altered');
    const invalid = await dkms(['key', 'verify', '--public-key', publicKey, '--signature', signature, '--in', file], {});
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toBe('dkms: SIGNATURE_INVALID: the signature does not verify with this public key\n');

    const fromStdin = await dkms(keyed(['key', 'sign', '--name', 'doc-signer', '--in', '-', '--json']), env, 'piped');
    const piped = json<{ signature: string }>(fromStdin);
    const check = await dkms(['key', 'verify', '--public-key', publicKey, '--signature', piped.signature, '--in', '-'], {}, 'piped');
    expect(check.code).toBe(0);
  });

  it('refuses malformed keys, signatures and names with BAD_INPUT', async () => {
    const file = join(dir, 'm.txt');
    writeFileSync(file, 'm');
    const sig = 'A'.repeat(86);
    const cases: string[][] = [
      ['key', 'verify', '--public-key', 'z6LSbysY2xFMRBGMRhT7EJqAjRnaPSDiGbZQq6eRpHzFdhaE', '--signature', sig, '--in', file],
      ['key', 'verify', '--public-key', 'not-a-key', '--signature', sig, '--in', file],
      ['key', 'verify', '--public-key', 'z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', '--signature', 'AAAA', '--in', file],
      ['key', 'verify', '--public-key', 'z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', '--signature', 'a+b/', '--in', file],
      ['key', 'create', '--type', 'rsa', '--name', 'x'],
      ['key', 'create', '--type', 'ed25519', '--name', 'has space'],
      ['key', 'create', '--type', 'ed25519'],
      ['key', 'nonsense'],
      ['--bogus-flag', 'key', 'list'],
    ];
    for (const args of cases) {
      const run = await dkms(keyed(args), env);
      expect(run.code, args.join(' ')).toBe(ERROR_CODES.BAD_INPUT.exit);
      expect(run.stderr, args.join(' ')).toMatch(/^dkms: BAD_INPUT: [^\n]+\n$/);
    }
  });

  it('reports missing keys, wrong key types and missing files with their codes', async () => {
    await dkms(keyed(['key', 'create', '--type', 'x25519', '--name', 'kx-only']), env);
    const file = join(dir, 'n.txt');
    writeFileSync(file, 'n');
    expect((await dkms(keyed(['key', 'sign', '--name', 'absent', '--in', file]), env)).code).toBe(ERROR_CODES.KEY_NOT_FOUND.exit);
    expect((await dkms(keyed(['key', 'sign', '--name', 'kx-only', '--in', file]), env)).code).toBe(ERROR_CODES.KEY_WRONG_TYPE.exit);
    expect((await dkms(keyed(['key', 'sign', '--name', 'kx-only', '--in', join(dir, 'absent.txt')]), env)).code).toBe(ERROR_CODES.IO_ERROR.exit);
    const noWallet = await dkms(['key', 'list'], { DKMS_HOME: join(dir, 'elsewhere'), DKMS_PASSPHRASE: PASS });
    expect(noWallet.code).toBe(ERROR_CODES.WALLET_NOT_FOUND.exit);
    expect(noWallet.stderr).toContain('dkms wallet create');
  });

  it('deletes a key only when confirmed', async () => {
    await dkms(keyed(['key', 'create', '--type', 'ed25519', '--name', 'doomed']), env);
    expect((await dkms(keyed(['key', 'delete', '--name', 'doomed']), env)).code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect((await dkms(keyed(['key', 'show', '--name', 'doomed']), env)).code).toBe(0);
    expect((await dkms(keyed(['key', 'delete', '--name', 'doomed', '--yes']), env)).code).toBe(0);
    expect((await dkms(keyed(['key', 'show', '--name', 'doomed']), env)).code).toBe(ERROR_CODES.KEY_NOT_FOUND.exit);
  });

  it('prints help and version with exit 0', async () => {
    const help = await dkms(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('wallet');
    expect(help.stdout).toContain('key');
    expect((await dkms(['--version'], {})).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('suggests the command or option meant, on one line', async () => {
    const cases: [string[], string][] = [
      [['key', 'lst'], "unknown command 'lst' (Did you mean list?)"],
      [['wallt', 'info'], "unknown command 'wallt' (Did you mean wallet?)"],
      [['key', 'list', '--jsn'], "unknown option '--jsn' (Did you mean --json?)"],
    ];
    for (const [args, message] of cases) {
      const run = await dkms(keyed(args), env);
      expect(run.code).toBe(ERROR_CODES.BAD_INPUT.exit);
      expect(run.stderr).toBe(`dkms: BAD_INPUT: ${message}\n`);
    }
    // With --json the same line is the error's message.
    const refused = await dkms(keyed(['key', 'lst', '--json']), env);
    expect(JSON.parse(refused.stdout)).toEqual({ error: { code: 'BAD_INPUT', message: "unknown command 'lst' (Did you mean list?)" } });
  });

  it("says that an id beginning with '-' goes after '--', and takes it there", async () => {
    const id = '-trWqTT-TeYWn6h5knLbTg';
    const refused = await dkms(keyed(['agent', 'approve', id, '--yes']), env);
    expect(refused.code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect(refused.stderr).toBe(`dkms: BAD_INPUT: unknown option '${id}' (an argument that begins with '-', such as an id, goes after '--': … -- ${id})\n`);
    // After '--' it is the id, and the command looks for it.
    const taken = await dkms(keyed(['agent', 'approve', '--yes', '--', id]), env);
    expect(taken.stderr).toBe(`dkms: APPROVAL_NOT_FOUND: no approval request '${id}'\n`);
    // A mistyped option is not taken for an id.
    expect((await dkms(keyed(['key', 'list', '-x']), env)).stderr).toBe("dkms: BAD_INPUT: unknown option '-x'\n");
  });

  it('shows agent flag defaults by name in help', async () => {
    const pair = await dkms(['agent', 'pair', '--help'], {});
    expect(pair.stdout).toMatch(/--flags <flags>\s+flags the new agent gets \(default: PROVE\)/);
    const init = await dkms(['agent', 'init', '--help'], {});
    expect(init.stdout).toMatch(/--cloud-flags <flags>\s+flags for the cloud agent \(default: none\)/);
    expect(init.stdout).not.toMatch(/default: 0\)|default none/);
  });
});
