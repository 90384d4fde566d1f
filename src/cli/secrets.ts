/**
 * Where the CLI gets secrets: a file named by a flag, an environment variable, or a no-echo
 * prompt on the terminal, in that order. Secrets are never taken from the command line, where
 * other users could read them in the process list.
 */
import { readFileSync } from 'node:fs';
import { fromBase64url, fromHex } from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { passphraseSecret, rawSecret, type WalletSecret } from '../wallet/secret.js';
import type { CommandIo } from './io.js';

export interface SecretSource {
  /** Flag naming a file whose first line is the passphrase. */
  readonly file?: string | undefined;
  /** Flag naming a file holding a raw 32-byte key. */
  readonly keyFile?: string | undefined;
  /** Environment variable holding the passphrase. */
  readonly env: string;
  /** What the prompt asks for, e.g. "Wallet passphrase". */
  readonly prompt: string;
  /** Ask twice and require both answers to match (when choosing a new secret). */
  readonly confirm?: boolean;
  /** Flag names, for the message shown when no source is available. */
  readonly fileFlag: string;
}

function readSecretFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DkmsError('IO_ERROR', `cannot read ${what} file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** The first line of a file holding `what`, without its line ending; BAD_INPUT when it is empty. */
function readFirstLine(path: string, what: string): string {
  const line = readSecretFile(path, what).toString('utf8').split(/\r?\n/, 1)[0] ?? '';
  if (line.length === 0) throw badInput(`${what} file ${path} is empty`);
  return line;
}

/** The first line of a passphrase file, without its line ending. */
export function readPassphraseFile(path: string): string {
  return readFirstLine(path, 'passphrase');
}

/** A raw key file holds 32 bytes: as binary, as 64 hex digits, or as 43 base64url characters. */
export function readKeyFile(path: string): Uint8Array {
  const bytes = readSecretFile(path, 'key');
  if (bytes.length === 32) return new Uint8Array(bytes);
  const text = bytes.toString('utf8').trim();
  bytes.fill(0);
  if (/^[0-9a-fA-F]{64}$/.test(text)) return fromHex(text);
  if (/^[A-Za-z0-9_-]{43}$/.test(text)) return fromBase64url(text, 'key file');
  throw badInput(`key file ${path} must hold 32 bytes: binary, 64 hex digits or 43 base64url characters`);
}

export async function getSecret(io: CommandIo, source: SecretSource): Promise<WalletSecret> {
  if (source.keyFile !== undefined) return rawSecret(readKeyFile(source.keyFile));
  if (source.file !== undefined) return passphraseSecret(readPassphraseFile(source.file));
  const fromEnv = io.env[source.env];
  if (fromEnv !== undefined && fromEnv !== '') return passphraseSecret(fromEnv);
  if (!io.tty.stdin) {
    throw badInput(`no ${source.prompt.toLowerCase()}: use ${source.fileFlag}, set ${source.env}, or run in a terminal`);
  }
  const first = await io.ask(source.prompt, true);
  if (source.confirm === true && (await io.ask(`Repeat ${source.prompt.toLowerCase()}`, true)) !== first) {
    throw badInput('the two passphrases differ');
  }
  return passphraseSecret(first);
}

/** Where a short secret typed by a person (a pairing passcode, a recovery challenge) may come from. */
export interface ShortSecretSource {
  /** The value of the `--…-file` flag: a file whose first line is the secret. */
  readonly file?: string | undefined;
  readonly fileFlag: string;
  /** Environment variable holding it. */
  readonly env: string;
  /** What the prompt asks for, e.g. "Passcode shown beside the invitation". */
  readonly prompt: string;
  /** How messages name it, when not the prompt in lower case (a "PIN" stays upper case). */
  readonly what?: string;
}

/**
 * A short secret: from its file, its environment variable, or a no-echo prompt at the terminal,
 * in that order; never from the command line. BAD_INPUT when none is available or it is empty.
 */
export async function getShortSecret(io: CommandIo, source: ShortSecretSource): Promise<string> {
  const what = source.what ?? source.prompt.toLowerCase();
  let value: string | undefined;
  if (source.file !== undefined) {
    value = readFirstLine(source.file, what);
  } else if (io.env[source.env] !== undefined && io.env[source.env] !== '') {
    value = io.env[source.env];
  } else if (io.tty.stdin) {
    value = await io.ask(source.prompt, true);
  } else {
    throw badInput(`no ${what}: use ${source.fileFlag} FILE, set ${source.env}, or run in a terminal to be asked`);
  }
  if (value === undefined || value.trim() === '') throw badInput(`the ${what} is empty`);
  return value.trim();
}

/** Refuses a secret given as an argument, naming where it may come from instead. */
export function refuseSecretArgument(given: unknown, flag: string, source: ShortSecretSource): void {
  if (given === undefined) return;
  throw badInput(
    `${flag} is not taken on the command line, where other users can read it: type it when asked, or use ${source.fileFlag} FILE or ${source.env}`,
  );
}
