/**
 * A ledger node's signing key, kept in a wallet of its own in the node's data directory. The
 * node starts unattended, so that wallet opens with a raw key stored beside it (mode 0600):
 * protect the data directory as you would a TLS private key.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
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

/** Writes a new raw key durably: a crash leaves the whole key or no file at all. */
function writeRawKey(path: string): void {
  const temp = `${path}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, randomBytes(32));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

/**
 * Opens (creating on first use) the node's wallet in `dir` and returns a signer over its key.
 * Each step is atomic and the next start completes whatever a crash interrupted: key file, then
 * wallet, then the signing key in it.
 */
export async function openNodeIdentity(dir: string): Promise<NodeIdentity> {
  const walletPath = join(dir, 'node-wallet.db');
  const keyPath = join(dir, 'node-wallet.key');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(keyPath)) {
    if (existsSync(walletPath)) throw new DkmsError('LEDGER_STORE_DAMAGED', `${keyPath} is missing: the node's wallet cannot be opened`);
    writeRawKey(keyPath);
  }
  const secret = rawSecret(readRawKey(keyPath));
  const wallet = existsSync(walletPath) ? await Wallet.open(walletPath, secret) : await Wallet.create(walletPath, secret);
  if (!wallet.listKeys('ed25519').some((k) => k.name === NODE_KEY_NAME)) wallet.createKey(NODE_KEY_NAME, 'ed25519');
  const key = wallet.getKey(NODE_KEY_NAME).publicKey;
  return { key, sign: (message) => wallet.sign(NODE_KEY_NAME, message), close: () => wallet.close() };
}
