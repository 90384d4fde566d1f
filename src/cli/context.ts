/** What every command needs: the data directory, output mode, its terminal, and how to reach the wallet. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Wallet, WalletSecret } from '../wallet/index.js';
import type { CommandIo } from './io.js';
import { placeOf, type RunPlace } from './run-place.js';
import { getSecret } from './secrets.js';

export interface GlobalOptions {
  home?: string;
  json?: boolean;
  passphraseFile?: string;
  keyFile?: string;
  ledger?: string;
  witnessKey?: string[];
  quorum?: number;
  nodeKey?: string[];
  trust?: string[];
  maxHeadAge?: number;
}

export class Context {
  readonly home: string;
  readonly json: boolean;
  readonly options: GlobalOptions;
  readonly io: CommandIo;
  readonly #place: RunPlace;
  /** The unlock session's open wallet, when this command runs in the session of its data directory. */
  readonly #sharedWallet: Wallet | undefined;

  constructor(options: GlobalOptions, place: RunPlace) {
    this.options = options;
    this.#place = place;
    this.io = place.io;
    const fromEnv = place.io.env['DKMS_HOME'];
    this.home = resolve(place.io.cwd, options.home ?? (fromEnv === undefined || fromEnv === '' ? join(homedir(), '.dkms') : fromEnv));
    this.json = options.json === true;
    this.#sharedWallet = place.session?.home === this.home ? place.session.wallet : undefined;
  }

  static of(command: Command): Context {
    return new Context(command.optsWithGlobals<GlobalOptions>(), placeOf(command));
  }

  /** The same run with some global options replaced. */
  with(options: Partial<GlobalOptions>): Context {
    return new Context({ ...this.options, ...options }, this.#place);
  }

  /** Whether the wallet is the unlock session's, already open (and never closed by a command). */
  get inSession(): boolean {
    return this.#sharedWallet !== undefined;
  }

  get walletPath(): string {
    return join(this.home, 'wallet.db');
  }

  /** The secret that opens the wallet (or, with `confirm`, the one a new wallet gets). */
  walletSecret(confirm = false): Promise<WalletSecret> {
    return getSecret(this.io, {
      file: this.options.passphraseFile,
      keyFile: this.options.keyFile,
      env: 'DKMS_PASSPHRASE',
      prompt: 'Wallet passphrase',
      fileFlag: '--passphrase-file',
      confirm,
    });
  }

  /** The ledger node key this run trusted on first use, for want of a configured one. */
  firstUseKey: string | undefined;

  /** Says, on stderr and in --json output, that a ledger node key was trusted without configuration. */
  trustedOnFirstUse(key: string): void {
    this.firstUseKey = key;
    this.io.err(
      `dkms: trusting ledger node key ${key} on first use: no key was configured (give --trust KEY, or put it in ${join(this.home, 'trust.json')})\n`,
    );
  }

  /** Tells a person at a terminal that slow work (key stretching) is under way. */
  progress(message: string): void {
    if (!this.json && this.io.tty.stderr) this.io.err(`${message}\n`);
  }

  /** Opens the wallet: the caller closes it (see withWallet), unless it is the session's (`inSession`). */
  async openWallet(): Promise<Wallet> {
    if (this.#sharedWallet !== undefined) return this.#sharedWallet;
    const secret = await this.walletSecret();
    this.progress('Opening wallet…');
    // The wallet (Argon2, SQLite) is loaded by the commands that open it, not by every command.
    const { Wallet } = await import('../wallet/index.js');
    return Wallet.open(this.walletPath, secret);
  }

  /** Opens the wallet, runs `fn`, and always closes it (wiping its keys). */
  async withWallet<T>(fn: (wallet: Wallet) => T | Promise<T>): Promise<T> {
    const wallet = await this.openWallet();
    try {
      return await fn(wallet);
    } finally {
      if (!this.inSession) wallet.close();
    }
  }
}
