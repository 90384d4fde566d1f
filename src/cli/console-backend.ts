/**
 * The owner console's way into the data directory's wallet (server/console-api.ts): its unlock
 * session. A login checks the passphrase against the session already running (which does not
 * open the file again), or starts one with it, as `dkms unlock` does, when none runs. Commands run
 * in that session; the passphrase reaches the session on its socket or its pipe, never a file,
 * an argument or the environment.
 */
import { join } from 'node:path';
import { DkmsError } from '../errors.js';
import type { ConsoleBackend, UnlockOf } from '../server/console-api.js';
import { Wallet, passphraseSecret, type WalletInfo } from '../wallet/index.js';
import { checkInSession, lockSession, runInSession, sessionPid, type SessionRun } from './session-run.js';
import { startSessionProcess } from './session-start.js';

/** The idle time of a session the console starts: the console's own idle time. */
const SESSION_IDLE_SECONDS = 15 * 60;

const unavailable = () =>
  new DkmsError(
    'CONSOLE_UNAVAILABLE',
    'this wallet opens with more than a passphrase (a token, custodians, keys in a token) or with a raw key: use the CLI, or unlock it with `dkms unlock` first',
  );

/** Whether the passphrase alone opens a wallet, and nothing else is needed to use its keys. */
function passphraseAlone(info: WalletInfo): boolean {
  const { protection, kdf } = info;
  return (
    protection.passphrase &&
    kdf?.alg === 'argon2id' &&
    protection.token === undefined &&
    protection.custody?.mode !== 'unseal' &&
    protection.keyTokens.length === 0
  );
}

/** The unlock session of the data directory `home`, for the owner console of `dkms up`. */
export class SessionConsole implements ConsoleBackend {
  readonly home: string;

  constructor(home: string) {
    this.home = home;
  }

  async login(passphrase: string): Promise<UnlockOf> {
    // Twice at most: a session that ends, or starts, between the look and the act is looked at again.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#login(passphrase);
      } catch (e) {
        const raced = e instanceof DkmsError && (e.code === 'SESSION_LOST' || e.code === 'SESSION_ACTIVE');
        if (!raced || attempt > 0) throw e;
      }
    }
  }

  async #login(passphrase: string): Promise<UnlockOf> {
    const running = await sessionPid(this.home);
    if (running !== undefined) {
      if (!(await checkInSession(this.home, passphrase))) throw new DkmsError('WALLET_BAD_PASSPHRASE', 'wrong passphrase for this wallet');
      return { session: running, started: false };
    }
    // Read without the secret (WALLET_NOT_FOUND when there is none), the file let go at once.
    if (!passphraseAlone(Wallet.inspect(join(this.home, 'wallet.db')))) throw unavailable();
    const session = await startSessionProcess(this.home, { secret: passphraseSecret(passphrase) }, SESSION_IDLE_SECONDS);
    return { session, started: true };
  }

  current(): Promise<number | undefined> {
    return sessionPid(this.home);
  }

  run(argv: readonly string[]): Promise<SessionRun> {
    return runInSession(this.home, argv);
  }

  async lock(session: number): Promise<void> {
    if ((await sessionPid(this.home)) === session) await lockSession(this.home);
  }
}
