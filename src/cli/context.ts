/** What every command needs: the data directory, output mode, and how to reach the wallet. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Wallet, WalletSecret } from '../wallet/index.js';
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

  constructor(options: GlobalOptions) {
    this.options = options;
    this.home = resolve(options.home ?? process.env['DKMS_HOME'] ?? join(homedir(), '.dkms'));
    this.json = options.json === true;
  }

  static of(command: Command): Context {
    return new Context(command.optsWithGlobals<GlobalOptions>());
  }

  get walletPath(): string {
    return join(this.home, 'wallet.db');
  }

  /** The secret that opens the wallet (or, with `confirm`, the one a new wallet gets). */
  walletSecret(confirm = false): Promise<WalletSecret> {
    return getSecret({
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
    process.stderr.write(
      `dkms: trusting ledger node key ${key} on first use: no key was configured (give --trust KEY, or put it in ${join(this.home, 'trust.json')})\n`,
    );
  }

  /** Tells a person at a terminal that slow work (key stretching) is under way. */
  progress(message: string): void {
    if (!this.json && process.stderr.isTTY) process.stderr.write(`${message}\n`);
  }

  async openWallet(): Promise<Wallet> {
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
      wallet.close();
    }
  }
}
