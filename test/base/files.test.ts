/**
 * Output files (src/files.ts, src/cli/files.ts): a file is replaced whole or not at all. (That
 * a pipe is written into, never replaced, needs a process at its other end: test/cli/output-pipe.test.ts.)
 */
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkOutput } from '../../src/cli/files.js';
import { writeFileAtomic } from '../../src/files.js';
import { expectCode } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

describe('output files', () => {
  it('replaces a plain file only with --force, whole', () => {
    const path = join(tempDir(), 'out.txt');
    writeFileSync(path, 'old');
    expectCode(() => checkOutput(path, false), 'FILE_EXISTS');
    writeFileAtomic(path, new TextEncoder().encode('new'));
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(lstatSync(path).isFile()).toBe(true);
  });
});
