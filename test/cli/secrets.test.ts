import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeInvitation } from '../../src/agent/pairing.js';
import { getShortSecret, readKeyFile, readPassphraseFile } from '../../src/cli/secrets.js';
import { processIo } from '../../src/cli/io.js';
import { toBase64url, toHex } from '../../src/crypto/index.js';
import { dkms } from '../helpers/cli.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { filesUnder } from '../helpers/private.js';
import { tempDir } from '../helpers/tmp.js';

describe('secret files', () => {
  it('reads a raw key as binary, hex or base64url, with or without a trailing newline', () => {
    const dir = tempDir();
    const file = join(dir, 'key');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom('binary', 'hex', 'HEX', 'b64'), fc.boolean(), (key, form, newline) => {
        const text = form === 'hex' ? toHex(key) : form === 'HEX' ? toHex(key).toUpperCase() : toBase64url(key);
        writeFileSync(file, form === 'binary' ? key : `${text}${newline ? '\n' : ''}`);
        expect(readKeyFile(file)).toEqual(key);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a key file of any other shape with BAD_INPUT, and a missing one with IO_ERROR', () => {
    const dir = tempDir();
    const file = join(dir, 'key');
    for (const content of ['', 'abc', 'ab'.repeat(31), 'ab'.repeat(33), 'g'.repeat(64), 'A'.repeat(42), 'A'.repeat(44), `${'A'.repeat(42)}+`]) {
      writeFileSync(file, content);
      expectCode(() => readKeyFile(file), 'BAD_INPUT');
    }
    expectCode(() => readKeyFile(join(dir, 'absent')), 'IO_ERROR');
  });

  it('takes the first line of a passphrase file, whatever the line ending', () => {
    const dir = tempDir();
    const file = join(dir, 'pass');
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((s) => !/[\r\n]/.test(s)),
        fc.constantFrom('', '\n', '\r\n', '\nmore\n'),
        (line, tail) => {
          writeFileSync(file, line + tail);
          expect(readPassphraseFile(file)).toBe(line);
        },
      ),
      { numRuns: 200 },
    );
    writeFileSync(file, '\nsecond line');
    expectCode(() => readPassphraseFile(file), 'BAD_INPUT');
  });
});

describe('short secrets (a pairing passcode, a recovery challenge)', () => {
  const source = (file?: string) => ({ file, fileFlag: '--code-file', env: 'DKMS_TEST_CODE', prompt: 'Code shown on the other device' });

  it('come from their file (first line), else their variable; with neither and no terminal, BAD_INPUT naming both', async () => {
    const dir = tempDir();
    const file = join(dir, 'code');
    writeFileSync(file, ' 1234-5678 \nnot this\n');
    const saved = process.env['DKMS_TEST_CODE'];
    try {
      process.env['DKMS_TEST_CODE'] = 'from the variable';
      expect(await getShortSecret(processIo(), source(file))).toBe('1234-5678');
      expect(await getShortSecret(processIo(), source())).toBe('from the variable');
      delete process.env['DKMS_TEST_CODE'];
      // Vitest's workers have no terminal on standard input.
      const none = await expectCodeAsync(getShortSecret(processIo(), source()), 'BAD_INPUT');
      expect(none.message).toMatch(/--code-file/);
      expect(none.message).toMatch(/DKMS_TEST_CODE/);
      writeFileSync(file, '\n');
      await expectCodeAsync(getShortSecret(processIo(), source(file)), 'BAD_INPUT');
      await expectCodeAsync(getShortSecret(processIo(), source(join(dir, 'absent'))), 'IO_ERROR');
    } finally {
      if (saved === undefined) delete process.env['DKMS_TEST_CODE'];
      else process.env['DKMS_TEST_CODE'] = saved;
    }
  });

  it('are refused as command-line arguments, before anything is created', async () => {
    const invitation = encodeInvitation({
      v: 1,
      id: 'A'.repeat(22),
      policy: 'policy:z6MkexampleexampleexampleexampleexampleexampleX',
      agency: 'http://127.0.0.1:9',
      ledger: 'http://127.0.0.1:9',
      inviter: { key: `z6Mk${'a'.repeat(44)}`, kx: `z6LS${'a'.repeat(44)}` },
      cloud: { endpoint: 'http://127.0.0.1:9/v1/inbound', routingKey: `did:key:z6LS${'a'.repeat(44)}#z6LS${'a'.repeat(44)}` },
      expires: new Date(Date.now() + 600_000).toISOString(),
    });
    const home = tempDir();
    const env = { DKMS_HOME: home, DKMS_PASSPHRASE: 'a passphrase of some length' };
    for (const args of [
      ['agent', 'accept', invitation, '--passcode', '1234-5678'],
      ['trustee', 'approve', 'someid', '--challenge', 'six words read out loud here'],
    ]) {
      const run = await dkms([...args, '--json'], env);
      expect(run.code, run.stderr).toBe(2);
      const error = (JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('BAD_INPUT');
      expect(error.message).toMatch(/not taken on the command line/);
      expect(run.stdout + run.stderr).not.toMatch(/1234-5678|six words/);
    }
    // Nor from nowhere: with no file, no variable and no terminal, accept asks for one before anything else.
    const run = await dkms(['agent', 'accept', invitation, '--json'], env);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stdout).toMatch(/DKMS_PASSCODE/);
    expect(filesUnder(home)).toEqual([]);
  });
});
