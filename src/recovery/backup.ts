/**
 * Encrypted backups (docs/recovery.md): the wallet export, encrypted to the backup X25519
 * key derived from R through a one-time X25519 agreement, so any device can make a backup and
 * only a holder of R can read one; and signed by the agent that made it, since anyone can
 * encrypt to a public key. Layout:
 *
 *   magic "DKMSBK" ‖ version(1) ‖ headerLength(u32be) ‖ header (canonical JSON) ‖ wallet export
 *     ‖ Ed25519 signature by header.agent over "dkms/backup/v1/signature" ‖ SHA-256(all before it)
 *
 * The header names the ephemeral public key and what the backup is of; the export key is
 * HKDF(X25519 shared secret, salt = SHA-256(header)), so changing any header byte makes the
 * backup unreadable rather than misdescribed. Whether the signer may speak for the owner is for
 * the restore to decide, against the owner's policy on the ledger.
 */
import { z } from 'zod';
import {
  canonicalBytes,
  concatBytes,
  decodePublicKey,
  ed25519Verify,
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
  type Signer,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { decodeExport } from '../wallet/export.js';
import { rawSecret, type Wallet, type WalletItem, type WalletSecret } from '../wallet/index.js';
import type { RecoveryKeys } from './secret.js';

const MAGIC = utf8('DKMSBK');
export const BACKUP_VERSION = 1;
const KEY_LABEL = 'dkms/backup/v1/export-key';
const SIGNATURE_LABEL = utf8('dkms/backup/v1/signature');
const SIGNATURE_BYTES = 64;

const signedBytes = (body: Uint8Array) => concatBytes(SIGNATURE_LABEL, sha256(body));
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

/**
 * Encrypts the whole wallet to `backupKey` (multibase X25519) and signs it as `about.signer`.
 * The wallet's keys stay inside it until sealed.
 */
export async function encryptBackup(
  wallet: Pick<Wallet, 'export'>,
  backupKey: string,
  about: { policy: string; signer: Signer },
  now = new Date(),
): Promise<Uint8Array> {
  const recipient = decodePublicKey(backupKey, 'x25519').publicKey;
  const ephemeral = x25519Ephemeral();
  const header = canonicalBytes({
    v: 1,
    epk: toBase64url(ephemeral.publicKey),
    backupKey,
    policy: about.policy,
    agent: about.signer.multikey,
    created: now.toISOString(),
  } satisfies BackupHeader);
  const key = exportKey(ephemeral.agree(recipient), header);
  try {
    const exported = await wallet.export(rawSecret(key));
    const body = concatBytes(MAGIC, Uint8Array.of(BACKUP_VERSION), u32be(header.length), header, exported);
    return concatBytes(body, about.signer.sign(signedBytes(body)));
  } finally {
    wipe(key);
  }
}

const unreadable = (message: string) => new DkmsError('BACKUP_UNREADABLE', message);

/**
 * The header and the export inside a backup, once its signature verifies under the key the
 * header names (which says nothing yet of whether that key may speak for the owner).
 */
export function parseBackup(bytes: Uint8Array): { header: BackupHeader; headerBytes: Uint8Array; exported: Uint8Array } {
  if (bytes.length < MAGIC.length + 5 + SIGNATURE_BYTES || !equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) throw unreadable('not a dkms backup');
  const body = bytes.subarray(0, bytes.length - SIGNATURE_BYTES);
  const version = bytes[MAGIC.length];
  if (version !== BACKUP_VERSION) throw unreadable(`backup version ${String(version)} is not supported (this dkms reads ${BACKUP_VERSION})`);
  const length = readU32be(body, MAGIC.length + 1);
  const start = MAGIC.length + 5;
  if (length > MAX_HEADER || start + length > body.length) throw unreadable('the backup is damaged');
  const headerBytes = body.subarray(start, start + length);
  let header: BackupHeader;
  let signed: boolean;
  try {
    header = BackupHeaderSchema.parse(JSON.parse(fromUtf8(headerBytes)));
    signed = ed25519Verify(decodePublicKey(header.agent, 'ed25519').publicKey, signedBytes(body), bytes.subarray(body.length));
  } catch {
    throw unreadable('the backup header is damaged');
  }
  if (!signed) throw unreadable("the backup's signature does not verify: it was altered, or not made by the agent it names");
  return { header, headerBytes, exported: body.subarray(start + length) };
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

const undecryptable = (e: unknown): unknown =>
  e instanceof DkmsError && (e.code === 'WALLET_BAD_PASSPHRASE' || e.code === 'WALLET_TAMPERED' || e.code === 'EXPORT_BAD_FORMAT')
    ? unreadable('the backup does not decrypt with this recovery secret, or it is damaged')
    : e;

/**
 * The value of one item a backup holds (`category`/`name`, in whichever wallet profile), read
 * without adding anything to a wallet: for a restore to check what the backup says before it
 * writes anything. Undefined when the backup holds no such item.
 */
export async function backupItem(bytes: Uint8Array, keys: RecoveryKeys, category: string, name: string): Promise<Uint8Array | undefined> {
  const { exported, secret } = backupSecret(bytes, keys);
  try {
    const profiles = await decodeExport(exported, secret);
    const items = [...profiles.values()].flat();
    const found = items.find((item) => item.category === category && item.name === name);
    const value = found === undefined ? undefined : Uint8Array.from(found.value);
    for (const item of items) wipe(item.value);
    return value;
  } catch (e) {
    throw undecryptable(e);
  } finally {
    if (secret.kind === 'raw') wipe(secret.key);
  }
}

/**
 * Adds what a backup holds to `wallet` (a new device's), except what `accept` refuses: the
 * old device's own agent keys, typically. Returns the backup's header and how many items came.
 */
export async function mergeBackup(
  wallet: Pick<Wallet, 'merge'>,
  bytes: Uint8Array,
  keys: RecoveryKeys,
  accept: (profile: string, item: WalletItem) => boolean,
): Promise<{ header: BackupHeader; items: number }> {
  const { header, exported, secret } = backupSecret(bytes, keys);
  try {
    return { header, items: await wallet.merge(exported, secret, accept) };
  } catch (e) {
    throw undecryptable(e);
  } finally {
    if (secret.kind === 'raw') wipe(secret.key);
  }
}
