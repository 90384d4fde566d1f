/**
 * The wallet export: every profile's items (keys included) in one encrypted, versioned file,
 * the payload that recovery backups carry. Layout:
 *
 *   magic "DKMSWX" ‖ version(1) ‖ headerLength(u32be) ‖ header (canonical JSON)
 *     ‖ sealed payload ‖ SHA-256 of everything before it
 *
 * The header (KDF parameters, date) is authenticated as associated data. The trailing digest
 * tells a damaged file (WALLET_TAMPERED) apart from a wrong secret (WALLET_BAD_PASSPHRASE).
 */
import { z } from 'zod';
import {
  AeadError,
  DEFAULT_KDF_TIER,
  canonicalBytes,
  concatBytes,
  equalBytes,
  fromBase64url,
  fromUtf8,
  open,
  readU32be,
  seal,
  sha256,
  toBase64url,
  u32be,
  utf8,
  wipe,
  type KdfTier,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import type { WalletItem } from './items.js';
import { KdfParams, deriveKey, newKdfParams, type WalletSecret } from './secret.js';

const MAGIC = utf8('DKMSWX');
export const EXPORT_VERSION = 1;
const EXPORT_KEY_LABEL = 'dkms/wallet-export/v1/key';
const MAX_HEADER = 4096;

const ExportHeader = z.strictObject({ kdf: KdfParams, createdAt: z.string().max(40) });

const ExportPayload = z.strictObject({
  profiles: z.record(
    z.string(),
    z.array(z.strictObject({ category: z.string(), name: z.string(), value: z.string(), tags: z.record(z.string(), z.string()) })),
  ),
});

export type ExportedProfiles = ReadonlyMap<string, readonly WalletItem[]>;

export async function encodeExport(profiles: ExportedProfiles, secret: WalletSecret, tier: KdfTier = DEFAULT_KDF_TIER, now = new Date()): Promise<Uint8Array> {
  const header = canonicalBytes({ kdf: newKdfParams(secret, tier), createdAt: now.toISOString() });
  const prefix = concatBytes(MAGIC, Uint8Array.of(EXPORT_VERSION), u32be(header.length), header);
  const payload = canonicalBytes({
    profiles: Object.fromEntries(
      [...profiles].map(([name, items]) => [name, items.map((i) => ({ category: i.category, name: i.name, value: toBase64url(i.value), tags: i.tags }))]),
    ),
  });
  const key = await deriveKey(secret, ExportHeader.parse(JSON.parse(fromUtf8(header))).kdf, EXPORT_KEY_LABEL);
  try {
    const body = concatBytes(prefix, seal(key, payload, prefix));
    return concatBytes(body, sha256(body));
  } finally {
    wipe(key, payload);
  }
}

const badFormat = (message: string) => new DkmsError('EXPORT_BAD_FORMAT', message);
const damaged = () => new DkmsError('WALLET_TAMPERED', 'the export file is damaged or was altered');

export async function decodeExport(bytes: Uint8Array, secret: WalletSecret): Promise<Map<string, WalletItem[]>> {
  if (bytes.length < MAGIC.length + 1 || !equalBytes(bytes.subarray(0, MAGIC.length), MAGIC)) {
    throw badFormat('not a dkms wallet export');
  }
  const version = bytes[MAGIC.length];
  if (version !== EXPORT_VERSION) throw badFormat(`wallet export version ${String(version)} is not supported (this dkms reads ${EXPORT_VERSION})`);
  if (bytes.length < MAGIC.length + 5 + 32) throw damaged();
  const body = bytes.subarray(0, bytes.length - 32);
  if (!equalBytes(sha256(body), bytes.subarray(bytes.length - 32))) throw damaged();

  const headerLength = readU32be(bytes, MAGIC.length + 1);
  const headerStart = MAGIC.length + 5;
  if (headerLength > MAX_HEADER || headerStart + headerLength > body.length) throw damaged();
  const prefix = body.subarray(0, headerStart + headerLength);
  let header: z.infer<typeof ExportHeader>;
  try {
    header = ExportHeader.parse(JSON.parse(fromUtf8(prefix.subarray(headerStart))));
  } catch {
    throw damaged();
  }
  const key = await deriveKey(secret, header.kdf, EXPORT_KEY_LABEL);
  let payload: Uint8Array;
  try {
    payload = open(key, body.subarray(prefix.length), prefix);
  } catch (e) {
    if (e instanceof AeadError) throw new DkmsError('WALLET_BAD_PASSPHRASE', 'wrong passphrase or key for this export');
    throw e;
  } finally {
    wipe(key);
  }
  try {
    const parsed = ExportPayload.parse(JSON.parse(fromUtf8(payload)));
    return new Map(
      Object.entries(parsed.profiles).map(([name, items]) => [
        name,
        items.map((i) => ({ category: i.category, name: i.name, value: fromBase64url(i.value), tags: i.tags })),
      ]),
    );
  } catch {
    throw damaged();
  } finally {
    wipe(payload);
  }
}
