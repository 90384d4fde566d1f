/**
 * Starting and ending the unlock session: `dkms unlock` (here, in the command's own process)
 * starts the session process with the wallet's secret on a pipe, never in its arguments or
 * environment, and waits until the session has opened the wallet and listens; `dkms lock` asks
 * it to lock; `serveSession` is the session process itself.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { fromBase64url, toBase64url } from '../crypto/index.js';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { Wallet, passphraseSecret, rawSecret, type WalletSecret } from '../wallet/index.js';
import type { Context } from './context.js';
import { emit } from './output.js';
import { askSession, sessionSocket } from './session-client.js';
import { SESSION_PROTOCOL, socketPath } from './session-protocol.js';
import { UnlockSession, type RunCommand } from './session-server.js';
import { packageDir } from './version.js';

/** What `unlock` writes to the session process's standard input: one JSON line. */
const Start = z.strictObject({
  secret: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('passphrase'), passphrase: z.string().min(1).max(65_536) }),
      z.strictObject({ kind: z.literal('raw'), key: z.string().length(43) }),
    ])
    .optional(),
  /** The PIN of the wallet's token, and its module when not where the wallet recorded it. */
  token: z.strictObject({ pin: z.string().min(1).max(256), module: z.string().min(1).max(4096).optional() }).optional(),
  /** The custody secret the custodians' approvals rebuilt (`dkms custodian unseal`). */
  custody: z.string().length(43).optional(),
  idleSeconds: z.number().int().min(1).max(86_400),
});

/** What opens the wallet in the session: each factor it has. */
export interface SessionUnlock {
  readonly secret?: WalletSecret;
  readonly token?: { readonly pin: string; readonly module?: string };
  readonly custody?: Uint8Array;
}

/** What the session process answers on its standard output once it listens, or why it could not. */
const Started = z.union([
  z.strictObject({ ready: z.literal(true), pid: z.number().int() }),
  z.strictObject({ error: z.strictObject({ code: z.string(), message: z.string() }) }),
]);

function describeStatus(status: Record<string, unknown>): string {
  const locksAt = typeof status['locksAt'] === 'string' ? `locks at ${status['locksAt']} unless a command runs` : 'a command is running';
  return `unlocked: session pid ${String(status['pid'])}, ${locksAt}; \`dkms lock\` locks now`;
}

/** `dkms unlock`: reports the running session, or starts one with the wallet's secret. */
export async function unlock(ctx: Context, idleSeconds: number): Promise<void> {
  const running = sessionSocket(ctx.home);
  const status = running === undefined ? undefined : await askSession(running, { type: 'status', protocol: SESSION_PROTOCOL });
  if (status?.['type'] === 'status') {
    emit(
      ctx,
      { unlocked: true, already: true, pid: status['pid'], since: status['since'], locksAt: status['locksAt'], idleSeconds: status['idleSeconds'] },
      () => describeStatus(status),
    );
    return;
  }
  if (!existsSync(ctx.walletPath)) throw new DkmsError('WALLET_NOT_FOUND', `no wallet in ${ctx.home}: nothing to unlock`);
  const given = await ctx.unlockOf(Wallet);
  ctx.progress('Opening wallet…');
  const pid = await startSession(ctx, given as SessionUnlock, idleSeconds);
  const locksAt = new Date(Date.now() + idleSeconds * 1000).toISOString();
  emit(ctx, { unlocked: true, already: false, pid, locksAt, idleSeconds }, () => describeStatus({ pid, locksAt }));
}

/** Whether an unlock session is running for this data directory. */
export async function sessionRunning(ctx: Context): Promise<boolean> {
  const running = sessionSocket(ctx.home);
  const status = running === undefined ? undefined : await askSession(running, { type: 'status', protocol: SESSION_PROTOCOL });
  return status?.['type'] === 'status';
}

/** Environment variables the session process is not given: secrets a command of a client sends itself if it needs them. */
function sessionEnvironment(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined && !name.startsWith('DKMS_')) kept[name] = value;
  return kept;
}

/** Starts the session process for the command's data directory and waits until it listens (Ctrl-C kills it); its pid. */
export function startSession(ctx: Context, unlock: SessionUnlock, idleSeconds: number): Promise<number> {
  return startSessionProcess(ctx.home, unlock, idleSeconds, (stop) => ctx.io.onCancel(stop));
}

/**
 * Starts the unlock session of the data directory `home` with what opens its wallet (given to it
 * on a pipe, never in its arguments or environment) and waits until it listens; its pid. For
 * `dkms unlock` and for a program (the owner console) alike. `onCancel` registers how to stop the
 * start half way (the process is killed), and returns how to unregister it.
 *
 * @throws DkmsError what opening the wallet failed with (WALLET_BAD_PASSPHRASE, WALLET_BUSY…),
 *   SESSION_ACTIVE when another session runs, INTERNAL when the process did not say.
 */
export async function startSessionProcess(
  home: string,
  unlock: SessionUnlock,
  idleSeconds: number,
  onCancel: (stop: () => void) => () => void = () => () => undefined,
): Promise<number> {
  const log = openSync(join(home, 'session.log'), 'a', 0o600);
  const child = spawn(process.execPath, [fileURLToPath(new URL('dist/cli/session-process.js', packageDir())), home], {
    cwd: home,
    detached: true,
    env: sessionEnvironment(process.env),
    stdio: ['pipe', 'pipe', log],
  });
  closeSync(log);
  const { stdin, stdout } = child;
  if (stdin === null || stdout === null) throw new DkmsError('INTERNAL', 'the unlock session started without its pipes');
  const stopOnCancel = onCancel(() => child.kill('SIGKILL'));
  const { secret, token, custody } = unlock;
  const start = {
    ...(secret === undefined ? {} : { secret: secret.kind === 'raw' ? { kind: 'raw', key: toBase64url(secret.key) } : secret }),
    ...(token === undefined ? {} : { token }),
    ...(custody === undefined ? {} : { custody: toBase64url(custody) }),
    idleSeconds,
  };
  // A session that dies before reading its secret closes the pipe: what it says (or not) is the answer.
  stdin.on('error', () => undefined);
  stdin.end(`${JSON.stringify(start)}\n`);
  let said = '';
  stdout.setEncoding('utf8').on('data', (chunk: string) => (said += chunk));
  const exited = await new Promise<boolean>((resolve) => {
    stdout.on('data', () => said.includes('\n') && resolve(false));
    child.once('exit', () => resolve(true));
    child.once('error', () => resolve(true));
  });
  stopOnCancel();
  const line = said.split('\n', 1)[0] ?? '';
  let answer: z.infer<typeof Started> | undefined;
  try {
    answer = Started.parse(JSON.parse(line));
  } catch {
    answer = undefined;
  }
  if (answer === undefined || ('error' in answer && !(answer.error.code in ERROR_CODES))) {
    if (!exited) child.kill('SIGKILL');
    throw new DkmsError('INTERNAL', `the unlock session did not start (see ${join(home, 'session.log')})`);
  }
  if ('error' in answer) throw new DkmsError(answer.error.code as ErrorCode, answer.error.message);
  stdout.destroy();
  child.unref();
  return answer.pid;
}

/** `dkms lock`: ends the session, if there is one. */
export async function lock(ctx: Context): Promise<void> {
  const path = sessionSocket(ctx.home);
  const answer = path === undefined ? undefined : await askSession(path, { type: 'lock', protocol: SESSION_PROTOCOL });
  if (answer === undefined) {
    // A socket no session answers on is what a killed one left: it goes.
    if (path !== undefined) rmSync(path, { force: true });
    emit(ctx, { locked: false }, () => 'no unlock session: every command unlocks the wallet by itself');
    return;
  }
  emit(ctx, { locked: true }, () => 'locked: the session closed the wallet');
}

/** The tokens the wallet's keys live in, opened in the session with the PIN `unlock` sent (one PIN for the tokens of one owner). */
async function openKeyTokens(wallet: Wallet, token: { pin: string; module?: string } | undefined): Promise<void> {
  const needed = wallet.tokensNeeded();
  if (needed.length === 0) return;
  if (token === undefined)
    throw new DkmsError('HSM_UNAVAILABLE', `the wallet's keys in token '${needed[0]?.token ?? ''}' need its PIN: give it to \`dkms unlock\``);
  const { Pkcs11Token } = await import('../hsm/pkcs11.js');
  for (const { module, token: label } of needed) wallet.useToken(await Pkcs11Token.open({ module: token.module ?? module, token: label, pin: token.pin }));
}

/** The session process (session-process.ts): opens the wallet with the secret `unlock` sent, serves until it locks. */
export async function serveSession(home: string, run: RunCommand): Promise<void> {
  const answer = (fields: object) => process.stdout.write(`${JSON.stringify(fields)}\n`);
  let start: z.infer<typeof Start>;
  try {
    start = Start.parse(JSON.parse(readFileSync(0, 'utf8')));
  } catch {
    answer({ error: { code: 'BAD_INPUT', message: 'the session process is started by `dkms unlock`' } });
    return;
  }
  const given = start.secret;
  const secret =
    given === undefined ? undefined : given.kind === 'raw' ? rawSecret(fromBase64url(given.key, 'raw wallet key')) : passphraseSecret(given.passphrase);
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  let session: UnlockSession;
  try {
    const wallet = await Wallet.open(join(home, 'wallet.db'), {
      ...(secret === undefined ? {} : { secret }),
      ...(start.token === undefined ? {} : { token: start.token }),
      ...(start.custody === undefined ? {} : { custody: fromBase64url(start.custody, 'custody secret') }),
    });
    try {
      await openKeyTokens(wallet, start.token);
      session = await UnlockSession.start({ home, run, wallet, idleSeconds: start.idleSeconds, log });
    } catch (e) {
      wallet.close();
      throw e;
    }
  } catch (e) {
    const error = e instanceof DkmsError ? e : new DkmsError('INTERNAL', 'the session could not start');
    log(`not unlocked: ${error.code}`);
    answer({ error: { code: error.code, message: error.message } });
    return;
  }
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => session.lock(signal));
  // A bug met by one command locks the session cleanly (wallet closed, socket gone) rather than
  // leaving a process in an unknown state; what the commands committed is in the wallet file.
  const crashed = (e: unknown) => {
    log(`an unexpected error: ${e instanceof Error ? e.name : 'error'}`);
    process.exitCode = 70;
    session.lock('an unexpected error');
  };
  process.on('uncaughtException', crashed);
  process.on('unhandledRejection', crashed);
  answer({ ready: true, pid: process.pid });
  const reason = await session.locked;
  if (existsSync(socketPath(home))) log(`socket still present after locking (${reason})`);
}
