/**
 * What opens a wallet or an export: a passphrase (stretched with Argon2id) or a raw 32-byte
 * key (stretched with nothing, only separated by HKDF). Both give a 32-byte store key.
 */
import { z } from 'zod';
import {
  Argon2idParams,
  DEFAULT_KDF_TIER,
  abytes,
  argon2idDerive,
  fromBase64url,
  hkdf,
  newArgon2idParams,
  randomBytes,
  saltSchema,
  toBase64url,
  type KdfTier,
} from '../crypto/index.js';
import { badInput } from '../errors.js';

export type WalletSecret = { readonly kind: 'passphrase'; readonly passphrase: string } | { readonly kind: 'raw'; readonly key: Uint8Array };

export const MIN_PASSPHRASE_LENGTH = 8;

export function passphraseSecret(passphrase: string): WalletSecret {
  return { kind: 'passphrase', passphrase };
}

export function rawSecret(key: Uint8Array): WalletSecret {
  return { kind: 'raw', key: abytes(key, 32, 'raw wallet key') };
}

const RawKdf = z.strictObject({ alg: z.literal('raw'), salt: saltSchema });
export const KdfParams = z.discriminatedUnion('alg', [Argon2idParams, RawKdf]);
export type KdfParams = z.infer<typeof KdfParams>;

/** Fresh parameters for a secret: a new salt, and the tier for passphrases. */
export function newKdfParams(secret: WalletSecret, tier: KdfTier = DEFAULT_KDF_TIER): KdfParams {
  if (secret.kind === 'raw') return { alg: 'raw', salt: toBase64url(randomBytes(16)) };
  return newArgon2idParams(tier);
}

/** Refuses secrets too weak to protect keys; used where a secret is chosen, not where it is tried. */
export function assertStrongSecret(secret: WalletSecret): void {
  if (secret.kind === 'raw') {
    abytes(secret.key, 32, 'raw wallet key');
  } else if ([...secret.passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw badInput(`passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
}

/** The 32-byte key that `secret` yields under `params`. */
export async function deriveKey(secret: WalletSecret, params: KdfParams, label: string): Promise<Uint8Array> {
  if (params.alg === 'raw') {
    if (secret.kind !== 'raw') throw badInput('this needs a raw key, not a passphrase');
    return hkdf(secret.key, fromBase64url(params.salt, 'salt'), label);
  }
  if (secret.kind !== 'passphrase') throw badInput('this needs a passphrase, not a raw key');
  return argon2idDerive(secret.passphrase, params);
}
