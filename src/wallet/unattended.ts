/**
 * Wallets that services open without a person present (a ledger node's key, an agency's cloud
 * agents): the wallet opens with a raw key stored beside it in a 0600 file. Protect the data
 * directory as you would a TLS private key.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from '../crypto/index.js';
import { DkmsError, type ErrorCode } from '../errors.js';
import { rawSecret } from './secret.js';
import { Wallet } from './wallet.js';

function readRawKey(path: string, damaged: ErrorCode): Uint8Array {
  const bytes = readFileSync(path);
  if (bytes.length !== 32) throw new DkmsError(damaged, `${path} must hold 32 bytes`);
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
 * The 32-byte raw key in `path`, made on first use (0600, written whole or not at all). A key
 * file that is there but not 32 bytes is `damaged`.
 */
export function openRawKey(path: string, damaged: ErrorCode): Uint8Array {
  if (!existsSync(path)) writeRawKey(path);
  return readRawKey(path, damaged);
}

/**
 * Opens, creating on first use, `<dir>/<name>.db` with the raw key in `<dir>/<name>.key`. Each
 * step is atomic and the next start completes whatever a crash interrupted: key file, then wallet.
 */
export async function openUnattendedWallet(dir: string, name: string, damaged: ErrorCode): Promise<Wallet> {
  const walletPath = join(dir, `${name}.db`);
  const keyPath = join(dir, `${name}.key`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(keyPath)) {
    if (existsSync(walletPath)) throw new DkmsError(damaged, `${keyPath} is missing: the wallet ${walletPath} cannot be opened`);
    writeRawKey(keyPath);
  }
  const secret = rawSecret(readRawKey(keyPath, damaged));
  return existsSync(walletPath) ? Wallet.open(walletPath, secret) : Wallet.create(walletPath, secret);
}
