/**
 * Ctrl-C (SIGINT) in the middle of a command: it says "cancelled", exits 130, and leaves nothing
 * half made. Here a restore on a new device is interrupted while it waits on the network, after
 * it made its wallet and before it wrote anything worth keeping: the wallet goes, as it would had
 * the restore failed there. (Servers stop cleanly on Ctrl-C instead: ledger-e2e.test.ts.)
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { generateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { afterEach, describe, expect, it } from 'vitest';
import { background, killBackground } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(killBackground);

/** A loopback server that takes connections and never answers, counting them. */
async function silent(): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server: Server = createServer(() => undefined);
  server.on('connection', () => (count += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('Ctrl-C', { timeout: 60_000 }, () => {
  it('cancels a restore waiting on the network: "cancelled", exit 130, and the wallet it had made is gone', async () => {
    const [ledger, agency] = await Promise.all([silent(), silent()]);
    try {
      const home = join(tempDir(), 'new-device');
      const dir = tempDir();
      const phrase = join(dir, 'phrase.txt');
      writeFileSync(phrase, `${generateMnemonic(wordlist, 256)}\n`, { mode: 0o600 });
      const keyFile = join(dir, 'wallet.key');
      writeFileSync(keyFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
      const run = background(['--key-file', keyFile, '--ledger', ledger.url, 'recovery', 'restore', '--mnemonic-file', phrase, '--agency', agency.url], {
        DKMS_HOME: home,
      });
      // It made its wallet, and now waits on the ledger or the agency.
      await waitFor('the restore waiting on the network', () => ledger.connections() + agency.connections() > 0, { timeoutMs: 30_000, intervalMs: 20 });
      expect(readdirSync(home)).toContain('wallet.db');
      run.kill('SIGINT');
      const exit = await run.done;
      expect(exit.code).toBe(130);
      expect(exit.stderr.endsWith('\ndkms: cancelled\n')).toBe(true);
      expect(readdirSync(home).filter((f) => f.startsWith('wallet.db'))).toEqual([]);
    } finally {
      await Promise.all([ledger.close(), agency.close()]);
    }
  });
});
