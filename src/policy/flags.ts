/**
 * Agent flags (docs/ledger.md): a bitset saying what an agent may do for its owner.
 * ADMIN implies every other flag.
 */
import { badInput } from '../errors.js';

export const FLAGS = { ADMIN: 1, PROVE: 2, PROVE_GRANT: 4, PROVE_REVOKE: 8 } as const;
export type FlagName = keyof typeof FLAGS;
export const ALL_FLAGS = FLAGS.ADMIN | FLAGS.PROVE | FLAGS.PROVE_GRANT | FLAGS.PROVE_REVOKE;
export const FLAG_NAMES = Object.keys(FLAGS) as FlagName[];

/** Flags that only an ADMIN may grant or take away. */
export const ADMIN_ONLY = FLAGS.ADMIN | FLAGS.PROVE_GRANT | FLAGS.PROVE_REVOKE;

export function isFlags(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= ALL_FLAGS && ((value as number) & ~ALL_FLAGS) === 0;
}

/** True when `flags` include `flag`, ADMIN counting as every flag. */
export function hasFlag(flags: number, flag: number): boolean {
  return (flags & FLAGS.ADMIN) !== 0 || (flags & flag) === flag;
}

export function flagNames(flags: number): FlagName[] {
  return FLAG_NAMES.filter((name) => (flags & FLAGS[name]) !== 0);
}

/** Parses `ADMIN,PROVE` (case-insensitive, `none` for no flags) into a bitset. */
export function parseFlags(text: string): number {
  const words = text
    .split(/[,\s|+]+/)
    .filter((w) => w.length > 0)
    .map((w) => w.toUpperCase().replaceAll('-', '_'));
  if (words.length === 1 && words[0] === 'NONE') return 0;
  let flags = 0;
  for (const word of words) {
    if (!Object.hasOwn(FLAGS, word)) throw badInput(`unknown flag '${word}' (use ${FLAG_NAMES.join(', ')} or none)`);
    flags |= FLAGS[word as FlagName];
  }
  return flags;
}
