/**
 * Argon2id passphrase hashing (argon2 package) with named parameter tiers. The parameters are
 * stored beside the salt, so a value hashed under one tier opens under that tier forever,
 * whatever the defaults become.
 */
import { z } from 'zod';
import { badInput } from '../errors.js';
import { randomBytes } from './bytes.js';
import { fromBase64url, toBase64url } from './encoding.js';
import { DEFAULT_KDF_TIER, KDF_TIERS, isKdfTier, type KdfTier } from './kdf-tiers.js';

export { DEFAULT_KDF_TIER, KDF_TIERS, isKdfTier, type KdfTier } from './kdf-tiers.js';

/** A stored salt: canonical base64url of 16 to 64 bytes. */
export const saltSchema = z.string().refine((text) => {
  try {
    const length = fromBase64url(text).length;
    return length >= 16 && length <= 64;
  } catch {
    return false;
  }
}, 'salt must be canonical base64url of 16 to 64 bytes');

/** Stored parameters of one Argon2id derivation (JSON-safe). */
export const Argon2idParams = z.strictObject({
  alg: z.literal('argon2id'),
  tier: z.string().max(32),
  memoryKiB: z
    .number()
    .int()
    .min(8)
    .max(4 * 1024 * 1024),
  passes: z.number().int().min(1).max(64),
  lanes: z.number().int().min(1).max(16),
  salt: saltSchema,
});
export type Argon2idParams = z.infer<typeof Argon2idParams>;

export function newArgon2idParams(tier: KdfTier = DEFAULT_KDF_TIER): Argon2idParams {
  if (!isKdfTier(tier)) throw badInput(`unknown KDF tier '${String(tier)}' (use interactive, moderate or sensitive)`);
  return { alg: 'argon2id', tier, ...KDF_TIERS[tier], salt: toBase64url(randomBytes(16)) };
}

/** Derives a 32-byte key from a passphrase under stored parameters. */
export async function argon2idDerive(passphrase: string, params: Argon2idParams): Promise<Uint8Array> {
  if (typeof passphrase !== 'string' || passphrase.length === 0) throw badInput('passphrase must not be empty');
  // The native module is loaded on first use: importing the crypto core (as every command does) costs nothing for it.
  const { default: argon2 } = await import('argon2');
  const hash = await argon2.hash(passphrase.normalize('NFC'), {
    type: argon2.argon2id,
    raw: true,
    salt: Buffer.from(fromBase64url(params.salt, 'salt')),
    memoryCost: params.memoryKiB,
    timeCost: params.passes,
    parallelism: params.lanes,
    hashLength: 32,
  });
  const key = new Uint8Array(hash);
  hash.fill(0);
  return key;
}
