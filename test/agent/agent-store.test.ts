/**
 * The agent's typed records over the wallet: a record is read by its name alone (the wallet opens
 * that one item, however many the category holds), a name no item can have reads as absent, and
 * a record that does not have its shape is WALLET_TAMPERED.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { AgentStore } from '../../src/agent/agent-store.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { expectCode } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

const CATEGORY = 'test.notes';
const Note = z.object({ n: z.number() });

const wallets: Wallet[] = [];
afterEach(() => {
  for (const wallet of wallets.splice(0)) wallet.close();
});

async function storeWith(notes: number): Promise<{ wallet: Wallet; store: AgentStore }> {
  const wallet = await Wallet.create(join(tempDir(), 'wallet.db'), rawSecret(new Uint8Array(randomBytes(32))));
  wallets.push(wallet);
  const store = new AgentStore(wallet);
  for (let n = 0; n < notes; n++) store.write(CATEGORY, `note-${n}`, { n });
  return { wallet, store };
}

describe('AgentStore.read', () => {
  it('opens only the item it names, not the rest of its category', async () => {
    const { wallet, store } = await storeWith(40);
    const finds = vi.spyOn(wallet, 'find');
    const gets = vi.spyOn(wallet, 'get');
    expect(store.read(CATEGORY, 'note-17', Note)).toEqual({ n: 17 });
    expect(store.read(CATEGORY, 'note-40', Note)).toBeUndefined();
    expect(finds).not.toHaveBeenCalled();
    expect(gets.mock.calls).toEqual([
      [CATEGORY, 'note-17'],
      [CATEGORY, 'note-40'],
    ]);
  });

  it('reads a name no item can have (empty, over the wallet limit) as absent', async () => {
    const { store } = await storeWith(2);
    expect(store.read(CATEGORY, '', Note)).toBeUndefined();
    expect(store.read(CATEGORY, 'x'.repeat(10_000), Note)).toBeUndefined();
    expect(store.read(CATEGORY, '\uD800', Note)).toBeUndefined();
  });

  it('refuses a record that does not have the shape asked for: WALLET_TAMPERED', async () => {
    const { store } = await storeWith(1);
    store.write(CATEGORY, 'odd', { n: 'not a number' });
    expectCode(() => store.read(CATEGORY, 'odd', Note), 'WALLET_TAMPERED');
    expect(store.read(CATEGORY, 'note-0', Note)).toEqual({ n: 0 });
  });
});
