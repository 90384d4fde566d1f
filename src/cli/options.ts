/** Options and value parsers that several commands share. */
import { type Command, InvalidArgumentError } from 'commander';
import { isKdfTier, type KdfTier } from '../crypto/kdf-tiers.js';
import { badInput } from '../errors.js';

/** `--kdf-tier`: a tier's name. */
export function parseKdfTier(value: string): KdfTier {
  if (!isKdfTier(value)) throw badInput(`unknown KDF tier '${value}' (use interactive, moderate or sensitive)`);
  return value;
}

export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be a port number 0-65535');
  return port;
}

export function parsePositive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

export function parseNonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

/** `--key` (repeatable), `--out` and `--force`: sign with wallet keys, then submit or write for co-signers. */
export interface Signing {
  key: string[];
  out?: string;
  force?: boolean;
}

export function signingOptions(cmd: Command, keyHelp = 'wallet key(s) to sign with (repeat for m-of-n)'): Command {
  return cmd
    .requiredOption('--key <name...>', keyHelp)
    .option('--out <file>', 'write the signed event for co-signers instead of submitting it')
    .option('--force', 'with --out, replace the file');
}

/** `--at` and `--time`: read the ledger as of a point in the past. */
export interface AsOf {
  at?: number;
  time?: string;
}

export function asOfOptions(cmd: Command): Command {
  return cmd.option('--at <n>', 'as of global sequence number n (events before it)', parseNonNegative).option('--time <iso>', 'as of this time (ISO 8601)');
}

/** The `{at, time}` a client read takes, without undefined members. */
export function asOf(opts: AsOf): AsOf {
  return { ...(opts.at === undefined ? {} : { at: opts.at }), ...(opts.time === undefined ? {} : { time: opts.time }) };
}
