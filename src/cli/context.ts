/** What every command needs: the data directory, output mode, its terminal, and how to reach the wallet. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { DkmsError } from '../errors.js';
import type { Pkcs11Token } from '../hsm/pkcs11.js';
import type { Unlock, Wallet, WalletSecret } from '../wallet/index.js';
import type { CommandIo } from './io.js';
import { placeOf, type RunPlace } from './run-place.js';
import { getSecret, getShortSecret } from './secrets.js';

export interface GlobalOptions {
  home?: string;
  json?: boolean;
  passphraseFile?: string;
  keyFile?: string;
  pinFile?: string;
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

  /** The user PIN of token `token`: from --pin-file, $DKMS_HSM_PIN, or a prompt. */
  tokenPin(token: string): Promise<string> {
    return getShortSecret(this.io, { file: this.options.pinFile, fileFlag: '--pin-file', env: 'DKMS_HSM_PIN', prompt: `PIN of token '${token}'`, what: 'PIN' });
  }

  /** Where the tokens' PKCS#11 module is, when not where the wallet recorded it: $DKMS_HSM_MODULE. */
  get tokenModule(): string | undefined {
    const module = this.io.env['DKMS_HSM_MODULE'];
    return module === undefined || module === '' ? undefined : module;
  }

  /** Opens a token of the module at `module` with its PIN (asked for here). */
  async openToken(module: string, token: string): Promise<Pkcs11Token> {
    const pin = await this.tokenPin(token);
    const { Pkcs11Token } = await import('../hsm/pkcs11.js');
    return Pkcs11Token.open({ module, token, pin });
  }

  /**
   * What this wallet needs to open, gathered in order: its passphrase, its token's PIN. A wallet
   * its custodians unseal is not opened by a command: CUSTODY_REQUIRED names the way.
   */
  async unlockOf(wallet: typeof Wallet, custody?: Uint8Array): Promise<Unlock> {
    // Read first, and the file let go, before anything is asked: a command waiting at a prompt
    // holds no lock that would turn another command away with WALLET_BUSY.
    const { protection } = wallet.protectionOf(this.walletPath);
    if (protection.custody?.mode === 'unseal' && custody === undefined) {
      throw new DkmsError(
        'CUSTODY_REQUIRED',
        `the wallet in ${this.home} is sealed under custodians: unseal it with their approvals ('dkms custodian unseal')`,
      );
    }
    const secret = protection.passphrase ? await this.walletSecret() : undefined;
    // The bound token's PIN, or that of the tokens its keys live in (the owner's one PIN for them).
    const token = protection.token?.token ?? protection.keyTokens[0];
    const pin = token === undefined ? undefined : await this.tokenPin(token);
    const module = this.tokenModule;
    return {
      ...(secret === undefined ? {} : { secret }),
      ...(pin === undefined ? {} : { token: { pin, ...(module === undefined ? {} : { module }) } }),
      ...(custody === undefined ? {} : { custody }),
    };
  }

  /**
   * Opens the wallet: the caller closes it (see withWallet), unless it is the session's
   * (`inSession`). `custody` is the custodians' secret, for a wallet they unseal.
   */
  async openWallet(custody?: Uint8Array): Promise<Wallet> {
    if (this.#sharedWallet !== undefined) return this.#sharedWallet;
    // The wallet (Argon2, SQLite) is loaded by the commands that open it, not by every command.
    const { Wallet } = await import('../wallet/index.js');
    const unlock = await this.unlockOf(Wallet, custody);
    this.progress('Opening wallet…');
    const wallet = await Wallet.open(this.walletPath, unlock);
    try {
      await this.openKeyTokens(wallet, unlock.token);
    } catch (e) {
      wallet.close();
      throw e;
    }
    return wallet;
  }

  /** Opens the tokens the wallet's keys live in and gives them to it: with the PIN given to open the wallet, else asking for each. */
  async openKeyTokens(wallet: Wallet, given?: Unlock['token']): Promise<void> {
    const { Pkcs11Token } = await import('../hsm/pkcs11.js');
    for (const { module, token } of wallet.tokensNeeded()) {
      const pin = given !== undefined && 'pin' in given ? given.pin : await this.tokenPin(token);
      wallet.useToken(await Pkcs11Token.open({ module: this.tokenModule ?? module, token, pin }));
    }
  }

  /** Opens the wallet, runs `fn`, and always closes it (wiping its keys). */
  async withWallet<T>(fn: (wallet: Wallet) => T | Promise<T>, custody?: Uint8Array): Promise<T> {
    const wallet = await this.openWallet(custody);
    try {
      return await fn(wallet);
    } finally {
      if (!this.inSession) wallet.close();
    }
  }
}
