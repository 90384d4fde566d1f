/**
 * A ledger node's signing key, kept in a wallet of its own in the node's data directory. The
 * node starts unattended, so that wallet opens with a raw key stored beside it (mode 0600):
 * protect the data directory as you would a TLS private key.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { Wallet, rawSecret } from '../wallet/index.js';
import type { NodeSigner } from './node.js';

export const NODE_KEY_NAME = 'ledger-node';

export interface NodeIdentity extends NodeSigner {
  close(): void;
}

function readRawKey(path: string): Uint8Array {
  const bytes = readFileSync(path);
  if (bytes.length !== 32) throw new DkmsError('LEDGER_STORE_DAMAGED', `${path} must hold 32 bytes`);
  return new Uint8Array(bytes);
}

/** Opens (creating on first use) the node's wallet in `dir` and returns a signer over its key. */
export async function openNodeIdentity(dir: string): Promise<NodeIdentity> {
  const walletPath = join(dir, 'node-wallet.db');
  const keyPath = join(dir, 'node-wallet.key');
  let wallet: Wallet;
  if (!existsSync(walletPath)) {
    if (!existsSync(keyPath)) writeFileSync(keyPath, randomBytes(32), { mode: 0o600, flag: 'wx' });
    wallet = await Wallet.create(walletPath, rawSecret(readRawKey(keyPath)));
    wallet.createKey(NODE_KEY_NAME, 'ed25519');
  } else {
    wallet = await Wallet.open(walletPath, rawSecret(readRawKey(keyPath)));
  }
  const key = wallet.getKey(NODE_KEY_NAME).publicKey;
  return { key, sign: (message) => wallet.sign(NODE_KEY_NAME, message), close: () => wallet.close() };
}
