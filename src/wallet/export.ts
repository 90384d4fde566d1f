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
  framed,
  fromUtf8,
  open,
  readU32be,
  seal,
  sha256,
  u32be,
  unframe,
  utf8,
  wipe,
  type KdfTier,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { checkTags, type WalletItem } from './items.js';
import { KdfParams, deriveKey, newKdfParams, type WalletSecret } from './secret.js';

const MAGIC = utf8('DKMSWX');
export const EXPORT_VERSION = 1;
const EXPORT_KEY_LABEL = 'dkms/wallet-export/v1/key';
const MAX_HEADER = 4096;

const ExportHeader = z.strictObject({ kdf: KdfParams, createdAt: z.string().max(40) });

/**
 * The payload is binary so that key material never becomes a JavaScript string:
 * framed(framed(profile name…), record…), each record framed(profile, category, name, tags as
 * canonical JSON, value). Profiles are listed apart so that empty ones survive.
 */
function encodePayload(profiles: ExportedProfiles): Uint8Array {
  const records = [...profiles].flatMap(([profile, items]) =>
    items.map((i) => framed(utf8(profile), utf8(i.category), utf8(i.name), canonicalBytes(i.tags), i.value)),
  );
  try {
    return framed(framed(...[...profiles.keys()].map(utf8)), ...records);
  } finally {
    wipe(...records);
  }
}

function decodePayload(payload: Uint8Array): Map<string, WalletItem[]> {
  const [names, ...records] = unframe(payload);
  if (names === undefined) throw new RangeError('export lists no profiles');
  const profiles = new Map<string, WalletItem[]>(unframe(names).map((name) => [fromUtf8(name), []]));
  for (const record of records) {
    const parts = unframe(record);
    const [profile, category, name, tags, value] = parts;
    if (parts.length !== 5 || profile === undefined || category === undefined || name === undefined || tags === undefined || value === undefined) {
      throw new RangeError('bad export record');
    }
    const items = profiles.get(fromUtf8(profile));
    if (items === undefined) throw new RangeError('export record names an unlisted profile');
    items.push({ category: fromUtf8(category), name: fromUtf8(name), tags: checkTags(JSON.parse(fromUtf8(tags))), value: value.slice() });
  }
  return profiles;
}

export type ExportedProfiles = ReadonlyMap<string, readonly WalletItem[]>;

export async function encodeExport(profiles: ExportedProfiles, secret: WalletSecret, tier: KdfTier = DEFAULT_KDF_TIER, now = new Date()): Promise<Uint8Array> {
  const header = canonicalBytes({ kdf: newKdfParams(secret, tier), createdAt: now.toISOString() });
  const prefix = concatBytes(MAGIC, Uint8Array.of(EXPORT_VERSION), u32be(header.length), header);
  const payload = encodePayload(profiles);
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
    return decodePayload(payload);
  } catch {
    throw damaged();
  } finally {
    wipe(payload);
  }
}
