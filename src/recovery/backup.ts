/**
 * Encrypted backups (DESIGN.md section 8): the wallet export, encrypted to the backup X25519
 * key derived from R through a one-time X25519 agreement, so any device can make a backup and
 * only a holder of R can read one. Layout:
 *
 *   magic "DKMSBK" ‖ version(1) ‖ headerLength(u32be) ‖ header (canonical JSON) ‖ wallet export
 *
 * The header names the ephemeral public key and what the backup is of; the export key is
 * HKDF(X25519 shared secret, salt = SHA-256(header)), so changing any header byte makes the
 * backup unreadable rather than misdescribed.
 */
import { z } from 'zod';
import {
  canonicalBytes,
  concatBytes,
  decodePublicKey,
  equalBytes,
  fromBase64url,
  fromUtf8,
  hkdf,
  readU32be,
  sha256,
  toBase64url,
  u32be,
  utf8,
  wipe,
  x25519Ephemeral,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { rawSecret, type Wallet, type WalletItem, type WalletSecret } from '../wallet/index.js';
import type { RecoveryKeys } from './secret.js';

const MAGIC = utf8('DKMSBK');
export const BACKUP_VERSION = 1;
const KEY_LABEL = 'dkms/backup/v1/export-key';
const MAX_HEADER = 4096;

export const BackupHeaderSchema = z.strictObject({
  v: z.literal(1),
  /** The one-time X25519 public key, base64url. */
  epk: z.string().max(60),
  /** The backup key it was encrypted to, multibase. */
  backupKey: z.string().max(64),
  policy: z.string().max(100),
  /** The agent whose wallet this is, and when it was made. */
  agent: z.string().max(64),
  created: z.string().max(40),
});
export type BackupHeader = z.infer<typeof BackupHeaderSchema>;

function exportKey(shared: Uint8Array, header: Uint8Array): Uint8Array {
  try {
    return hkdf(shared, sha256(header), KEY_LABEL);
  } finally {
    wipe(shared);
  }
}

/** Encrypts the whole wallet to `backupKey` (multibase X25519). The wallet's keys stay inside it until sealed. */
export async function encryptBackup(wallet: Wallet, backupKey: string, about: { policy: string; agent: string }, now = new Date()): Promise<Uint8Array> {
  const recipient = decodePublicKey(backupKey, 'x25519').publicKey;
  const ephemeral = x25519Ephemeral();
  const header = canonicalBytes({ v: 1, epk: toBase64url(ephemeral.publicKey), backupKey, policy: about.policy, agent: about.agent, created: now.toISOString() } satisfies BackupHeader);
  const key = exportKey(ephemeral.agree(recipient), header);
  try {
    const exported = await wallet.export(rawSecret(key));
    return concatBytes(MAGIC, Uint8Array.of(BACKUP_VERSION), u32be(header.length), header, exported);
  } finally {
    wipe(key);
  }
}

const unreadable = (message: string) => new DkmsError('BACKUP_UNREADABLE', message);

/** The header and the export inside a backup, unchecked beyond their shape. */
export function parseBackup(bytes: Uint8Array): { header: BackupHeader; headerBytes: Uint8Array; exported: Uint8Array } {
  if (bytes.length < MAGIC.length + 5 || !equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) throw unreadable('not a dkms backup');
  const version = bytes[MAGIC.length];
  if (version !== BACKUP_VERSION) throw unreadable(`backup version ${String(version)} is not supported (this dkms reads ${BACKUP_VERSION})`);
  const length = readU32be(bytes, MAGIC.length + 1);
  const start = MAGIC.length + 5;
  if (length > MAX_HEADER || start + length > bytes.length) throw unreadable('the backup is damaged');
  const headerBytes = bytes.subarray(start, start + length);
  let header: BackupHeader;
  try {
    header = BackupHeaderSchema.parse(JSON.parse(fromUtf8(headerBytes)));
  } catch {
    throw unreadable('the backup header is damaged');
  }
  return { header, headerBytes, exported: bytes.subarray(start + length) };
}

/** The secret that opens a backup's export: only the holder of R (the backup private key) can compute it. */
export function backupSecret(bytes: Uint8Array, keys: RecoveryKeys): { header: BackupHeader; exported: Uint8Array; secret: WalletSecret } {
  const { header, headerBytes, exported } = parseBackup(bytes);
  if (header.backupKey !== keys.backupKey) throw unreadable('this backup was encrypted to another recovery secret');
  let shared: Uint8Array;
  try {
    shared = keys.agree(fromBase64url(header.epk, 'epk'));
  } catch {
    throw unreadable('the backup header is damaged');
  }
  return { header, exported, secret: rawSecret(exportKey(shared, headerBytes)) };
}

/**
 * Adds what a backup holds to `wallet` (a new device's), except what `accept` refuses: the
 * old device's own agent keys, typically. Returns the backup's header and how many items came.
 */
export async function mergeBackup(wallet: Wallet, bytes: Uint8Array, keys: RecoveryKeys, accept: (profile: string, item: WalletItem) => boolean): Promise<{ header: BackupHeader; items: number }> {
  const { header, exported, secret } = backupSecret(bytes, keys);
  try {
    return { header, items: await wallet.merge(exported, secret, accept) };
  } catch (e) {
    if (e instanceof DkmsError && (e.code === 'WALLET_BAD_PASSPHRASE' || e.code === 'WALLET_TAMPERED' || e.code === 'EXPORT_BAD_FORMAT')) {
      throw unreadable('the backup does not decrypt with this recovery secret, or it is damaged');
    }
    throw e;
  } finally {
    if (secret.kind === 'raw') wipe(secret.key);
  }
}
