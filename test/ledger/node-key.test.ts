import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_KEY_NAME, openNodeIdentity } from '../../src/ledger/node-key.js';
import { SqliteLogStore } from '../../src/ledger/sqlite-store.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

describe('ledger node identity', () => {
  it('keeps one key across restarts, in a wallet opened by a 0600 key file', async () => {
    const dir = tempDir();
    const first = await openNodeIdentity(dir);
    first.close();
    expect(statSync(join(dir, 'node-wallet.key')).mode & 0o777).toBe(0o600);
    const again = await openNodeIdentity(dir);
    expect(again.multikey).toBe(first.multikey);
    again.close();
  });

  it('completes a first start that a crash interrupted', async () => {
    // Key file written, wallet never created.
    const onlyKey = tempDir();
    (await openNodeIdentity(onlyKey)).close();
    rmSync(join(onlyKey, 'node-wallet.db'));
    const fromKey = await openNodeIdentity(onlyKey);
    fromKey.close();

    // Wallet created, signing key never added.
    const noSigningKey = tempDir();
    const made = await openNodeIdentity(noSigningKey);
    made.close();
    const wallet = await Wallet.open(join(noSigningKey, 'node-wallet.db'), rawSecret(new Uint8Array(readFileSync(join(noSigningKey, 'node-wallet.key')))));
    wallet.deleteKey(NODE_KEY_NAME);
    wallet.close();
    const repaired = await openNodeIdentity(noSigningKey);
    expect(repaired.multikey).toMatch(/^z6Mk/);
    repaired.close();
  });

  it('refuses to start without the key file of an existing wallet, rather than make a new identity', async () => {
    const dir = tempDir();
    (await openNodeIdentity(dir)).close();
    rmSync(join(dir, 'node-wallet.key'));
    await expectCodeAsync(openNodeIdentity(dir), 'LEDGER_STORE_DAMAGED');
    expect(existsSync(join(dir, 'node-wallet.key'))).toBe(false);
  });

  it('creates the ledger store schema in one step', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(join(dir, 'ledger.db'));
    expect(await store.size()).toBe(0);
    await store.close();
    const reopened = SqliteLogStore.open(join(dir, 'ledger.db'));
    expect(await reopened.size()).toBe(0);
    await reopened.close();
  });
});
