import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, onTestFinished } from 'vitest';

/** A fresh directory under the system temp dir, removed when the current test finishes. */
export function tempDir(prefix = 'dkms-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * For a suite whose tests run in order on what the ones before left: a maker of fresh
 * directories that last until the suite ends. Call it where the suite is declared.
 */
export function suiteDirs(prefix = 'dkms-test-'): () => string {
  const made: string[] = [];
  afterAll(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}

/** A 0600 file holding `secret` (a passcode, a challenge), for a command's `--…-file` flag. */
export function secretFile(secret: string): string {
  const path = join(tempDir('dkms-secret-'), 'secret');
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  return path;
}
