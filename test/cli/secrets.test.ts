import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readKeyFile, readPassphraseFile } from '../../src/cli/secrets.js';
import { toBase64url, toHex } from '../../src/crypto/index.js';
import { expectCode } from '../helpers/errors.js';
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
      fc.property(fc.string({ minLength: 1 }).filter((s) => !/[\r\n]/.test(s)), fc.constantFrom('', '\n', '\r\n', '\nmore\n'), (line, tail) => {
        writeFileSync(file, line + tail);
        expect(readPassphraseFile(file)).toBe(line);
      }),
      { numRuns: 200 },
    );
    writeFileSync(file, '\nsecond line');
    expectCode(() => readPassphraseFile(file), 'BAD_INPUT');
  });
});
