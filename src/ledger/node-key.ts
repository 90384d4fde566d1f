/**
 * A ledger node's signing key, kept in a wallet of its own in the node's data directory, which
 * the node opens unattended (see wallet/unattended.ts).
 */
import { openUnattendedWallet } from '../wallet/unattended.js';
import type { Signer } from '../crypto/index.js';

export const NODE_KEY_NAME = 'ledger-node';

export interface NodeIdentity extends Signer {
  close(): void;
}

/**
 * Opens (creating on first use) the node's wallet in `dir` and returns a signer over its key;
 * a crash between creating the wallet and its key is completed on the next start.
 */
export async function openNodeIdentity(dir: string): Promise<NodeIdentity> {
  const wallet = await openUnattendedWallet(dir, 'node-wallet', 'LEDGER_STORE_DAMAGED');
  if (!wallet.listKeys('ed25519').some((k) => k.name === NODE_KEY_NAME)) wallet.createKey(NODE_KEY_NAME, 'ed25519');
  return { ...wallet.signer(NODE_KEY_NAME), close: () => wallet.close() };
}
