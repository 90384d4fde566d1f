/**
 * README.md's "Your first ten minutes", run as written: its commands are read from the README
 * itself, so the two cannot drift. Terminal 1's block runs in the background until it says it
 * is up, and stops on Ctrl-C (SIGINT) at the end; terminal 2's blocks run in order in one bash,
 * as one person would type them, with `dkms` on PATH and a fresh home directory for `~`. Where a
 * person types the passphrase at the prompt, the test gives it in DKMS_PASSPHRASE.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DKMS_BIN, type Run } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface Block {
  readonly terminal: number;
  readonly lines: readonly string[];
}

/** The README section's ```sh blocks, each with the terminal its first line names (`# terminal N`). */
function tourBlocks(): Block[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n## Your first ten minutes\n');
  expect(start, 'README.md has a "Your first ten minutes" section').toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => (m[1] ?? '').trimEnd().split('\n'));
  return blocks.map((lines) => {
    const terminal = /^# terminal (\d+)/.exec(lines[0] ?? '');
    expect(terminal, `each block names its terminal on its first line: ${lines[0]}`).not.toBeNull();
    return { terminal: Number(terminal?.[1]), lines: lines.slice(1) };
  });
}

function bash(script: string, env: Record<string, string>): { done: Promise<Run>; stdout: () => string; interrupt: () => void } {
  const child = spawn('bash', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return { done, stdout: () => stdout, interrupt: () => child.kill('SIGINT') };
}

describe('the README tour', { timeout: 120_000 }, () => {
  it('runs as written: custom ports, Alice unlocking once, signing and verifying, Bob connecting, messages both ways, lock', async () => {
    const blocks = tourBlocks();
    expect(blocks.map((b) => b.terminal)).toEqual([1, 2, 2]);
    const home = tempDir('dkms-tour-');
    const bin = join(home, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'dkms'), `#!/bin/sh\nexec '${process.execPath}' '${DKMS_BIN}' "$@"\n`, { mode: 0o755 });
    const env = { HOME: home, PATH: `${bin}:${process.env['PATH'] ?? ''}`, DKMS_PASSPHRASE: 'the tour passphrase' };

    const services = blocks[0]?.lines ?? [];
    expect(services).toHaveLength(1);
    // `exec`: Ctrl-C reaches dkms up itself, as in a terminal.
    const up = bash(`exec ${services[0] ?? ''}`, env);
    try {
      await new Promise<void>((resolve, reject) => {
        const check = setInterval(() => {
          if (up.stdout().includes('stop with Ctrl-C')) {
            clearInterval(check);
            resolve();
          }
        }, 20);
        void up.done.then((run) => {
          clearInterval(check);
          reject(new Error(`dkms up ended: ${run.stderr}`));
        });
      });
      expect(up.stdout()).toContain('ledger node: http://127.0.0.1:7420');
      expect(up.stdout()).toContain('agency:      http://127.0.0.1:7421');

      const script = ['set -euo pipefail', ...blocks.slice(1).flatMap((b) => b.lines)].join('\n');
      const tour = await bash(script, env).done;
      expect(tour.code, `${tour.stdout}\n${tour.stderr}`).toBe(0);
      expect(tour.stdout).toMatch(/^unlocked: session pid \d+/m);
      expect(tour.stdout).toMatch(/^valid: signed by z6Mk\S+, an agent holding PROVE/m);
      expect(tour.stdout).toContain('Lunch at noon?');
      expect(tour.stdout).toContain('Yes!');
      expect(tour.stdout).toMatch(/^locked: the session closed the wallet$/m);
      expect(existsSync(join(home, 'dkms-tour', 'alice', 'session.sock'))).toBe(false);
    } finally {
      up.interrupt();
    }
    const stopped = await up.done;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain('stopped');
  });
});
