/**
 * How recovery commands get a recovery secret: the 24-word phrase (a file, DKMS_RECOVERY_PHRASE,
 * or typed at a hidden prompt, never a command-line argument other users could read) or a paper
 * wallet's QR code (a PNG, or the text a scanner saved).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DkmsError, badInput } from '../errors.js';
import type { PaperPayload } from '../recovery/paper.js';
import type { CommandIo } from './io.js';

export interface SecretOptions {
  mnemonic?: boolean;
  mnemonicFile?: string;
  qr?: string;
}

export const PHRASE_ENV = 'DKMS_RECOVERY_PHRASE';

async function readPhrase(io: CommandIo, options: SecretOptions): Promise<string> {
  if (options.mnemonicFile === '-') return new TextDecoder().decode(io.stdin());
  if (options.mnemonicFile !== undefined) {
    try {
      return readFileSync(options.mnemonicFile, 'utf8');
    } catch (e) {
      throw new DkmsError('IO_ERROR', `cannot read ${options.mnemonicFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const env = io.env[PHRASE_ENV];
  if (env !== undefined && env.trim() !== '') return env;
  if (io.tty.stdin) return io.ask('Recovery phrase (24 words)', true);
  throw badInput(`give the recovery phrase with --mnemonic-file FILE, ${PHRASE_ENV}, or at a terminal`);
}

/** The recovery secret and, from a QR code, what else the paper says. Undefined when none was asked for. */
export async function recoverySecretInput(
  io: CommandIo,
  options: SecretOptions,
): Promise<{ secret: Uint8Array; paper?: Omit<PaperPayload, 'secret'> } | undefined> {
  const fromPhrase = options.mnemonic === true || options.mnemonicFile !== undefined;
  if (fromPhrase && options.qr !== undefined) throw badInput('give either --mnemonic or --qr, not both');
  if (!fromPhrase && options.qr === undefined) return undefined;
  // The paper wallet's code (QR, BIP39) is loaded only when a secret is asked for: command definitions import this module.
  const { readPaperFile, secretFromMnemonic } = await import('../recovery/paper.js');
  if (options.qr !== undefined) {
    const { secret, ...paper } = await readPaperFile(options.qr);
    return { secret, paper };
  }
  return { secret: secretFromMnemonic(await readPhrase(io, options)) };
}

/** `--mnemonic`, `--mnemonic-file` and `--qr`: where `what` (a recovery secret) comes from. */
export function secretOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--mnemonic', `${what} from the 24-word recovery phrase (typed at a hidden prompt, or from ${PHRASE_ENV})`)
    .option('--mnemonic-file <file>', `${what} from a file holding the recovery phrase ('-' for standard input)`)
    .option('--qr <file>', `${what} from the paper wallet's QR code (a PNG, or the text a scanner saved)`);
}
