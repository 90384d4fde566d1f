/**
 * Test data in memory. Every test that stores something writes under the system temp dir, and
 * the stores (wallets, ledgers, agencies, etcd, PostgreSQL) fsync each commit: on a disk that is
 * most of their time, in the kernel and waiting. Tests kill processes, never the machine, and a
 * killed process leaves the same page cache on tmpfs as on a disk: what a test can observe of
 * durability is the same, so the suites put TMPDIR in RAM when the machine has a tmpfs at
 * /dev/shm. Benchmarks (`npm run bench`) keep the real disk.
 *
 * Called as a vitest config is loaded, in the main process, so that every worker and every
 * process a test starts with its environment inherits TMPDIR; the directory is removed when the
 * run ends (`teardown`, as the config's globalSetup).
 */
import { accessSync, chmodSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const RAM = '/dev/shm';

/** Points TMPDIR at a fresh directory on tmpfs, when there is one; returns it (or undefined). */
export function useRamTmp(): string | undefined {
  try {
    if (!statSync(RAM).isDirectory()) return undefined;
    accessSync(RAM, constants.W_OK);
  } catch {
    return undefined;
  }
  const dir = mkdtempSync(join(RAM, 'dkms-tests-'));
  // Like /tmp: anyone may make entries (the PostgreSQL servers run as their own user), and only
  // their owner may remove them.
  chmodSync(dir, 0o1777);
  process.env['TMPDIR'] = dir;
  return dir;
}

/** globalSetup: removes the run's directory once every test file has finished. */
export default function setup(): () => void {
  const dir = process.env['TMPDIR'];
  return () => {
    if (dir !== undefined && dir.startsWith(`${RAM}/dkms-tests-`)) rmSync(dir, { recursive: true, force: true });
  };
}
