/**
 * An output that is a device or a pipe (`--out /dev/stdout`, a FIFO) is written into, never
 * replaced by a plain file (as root, a rename over /dev/null would have put a file in its place).
 * Apart from test/base/files.test.ts because a pipe needs a reader: a process.
 */
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { checkOutput, writeOutput } from '../../src/cli/files.js';
import { tempDir } from '../helpers/tmp.js';

describe('output into a pipe', () => {
  it('writes into a pipe without replacing it, and without asking for --force', async () => {
    const dir = tempDir();
    const fifo = join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
    onTestFinished(() => void reader.kill());
    let read = '';
    reader.stdout.setEncoding('utf8').on('data', (d: string) => (read += d));
    const closed = new Promise<void>((resolve) => reader.on('close', () => resolve()));
    checkOutput(fifo, false);
    writeOutput(fifo, new TextEncoder().encode('through the pipe\n'));
    await closed;
    expect(read).toBe('through the pipe\n');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });
});
