/**
 * What the command definitions show or check as they are parsed (defaults, choices, the recovery
 * secret options), kept here apart from the modules that own them: those load Argon2, SQLite,
 * the agent or the recovery code, and a definition is built by every run, `--help` included,
 * while the heavy code is loaded only by the action that needs it (test/cli/lazy-load.test.ts).
 * The compile-time checks below and that test keep each copy equal to its owner's value.
 */
import type { Command } from 'commander';
import type { KdfTier, KeyType } from '../../crypto/index.js';
import { badInput } from '../../errors.js';

/** True when the two types hold the same values. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** The Argon2id tiers of crypto/argon2id.ts, every one of them. */
export const KDF_TIER_NAMES = ['interactive', 'moderate', 'sensitive'] as const satisfies readonly KdfTier[];
const _everyTier: Same<(typeof KDF_TIER_NAMES)[number], KdfTier> = true;

/** crypto/argon2id.ts's DEFAULT_KDF_TIER. */
export const DEFAULT_KDF_TIER: KdfTier = 'moderate';

/** `--kdf-tier`: context.ts's parseKdfTier, without loading the wallet. */
export function parseKdfTier(value: string): KdfTier {
  if (!(KDF_TIER_NAMES as readonly string[]).includes(value)) throw badInput(`unknown KDF tier '${value}' (use interactive, moderate or sensitive)`);
  return value as KdfTier;
}

/** The wallet's KEY_TYPES (wallet/keys.ts), every one of them. */
export const KEY_TYPES = ['ed25519', 'x25519'] as const satisfies readonly KeyType[];
const _everyKeyType: Same<(typeof KEY_TYPES)[number], KeyType> = true;

/** agent/pairing.ts's DEFAULT_PAIRING_TTL_SECONDS. */
export const DEFAULT_PAIRING_TTL_SECONDS = 600;

/** agent/connections.ts's DEFAULT_CONNECTION_TTL_SECONDS. */
export const DEFAULT_CONNECTION_TTL_SECONDS = 7 * 24 * 3600;

/** recovery-input.ts's PHRASE_ENV. */
export const PHRASE_ENV = 'DKMS_RECOVERY_PHRASE';

/** recovery-input.ts's secretOptions: `--mnemonic`, `--mnemonic-file` and `--qr`, where `what` (a recovery secret) comes from. */
export function secretOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--mnemonic', `${what} from the 24-word recovery phrase (typed at a hidden prompt, or from ${PHRASE_ENV})`)
    .option('--mnemonic-file <file>', `${what} from a file holding the recovery phrase ('-' for standard input)`)
    .option('--qr <file>', `${what} from the paper wallet's QR code (a PNG, or the text a scanner saved)`);
}
