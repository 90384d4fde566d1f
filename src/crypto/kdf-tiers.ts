/**
 * The Argon2id cost tiers by name. Apart from argon2id.ts so that naming a tier (a CLI option's
 * default and check) loads no Argon2.
 */

/** memoryKiB, passes, lanes. Interactive and moderate follow libsodium's tiers. */
export const KDF_TIERS = {
  interactive: { memoryKiB: 64 * 1024, passes: 2, lanes: 1 },
  moderate: { memoryKiB: 256 * 1024, passes: 3, lanes: 1 },
  sensitive: { memoryKiB: 1024 * 1024, passes: 4, lanes: 1 },
} as const;

export type KdfTier = keyof typeof KDF_TIERS;
export const DEFAULT_KDF_TIER: KdfTier = 'moderate';

export function isKdfTier(name: string): name is KdfTier {
  return Object.hasOwn(KDF_TIERS, name);
}
