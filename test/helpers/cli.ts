import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';

export const DKMS_BIN = fileURLToPath(new URL('../../bin/dkms.js', import.meta.url));
/**
 * The same CLI unbundled, one module a file as tsc compiled it (bin/dkms.js runs the bundle): for
 * a test that patches a module of dist/src/ into the process (the store faults) or records which
 * modules a run loads.
 */
export const UNBUNDLED_CLI = fileURLToPath(new URL('./unbundled-cli.mjs', import.meta.url));

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the real `dkms` process (the compiled CLI, as a user would) with a clean environment:
 * only PATH and what the test passes, so no variable of the developer's leaks in.
 */
export function dkms(args: readonly string[], env: Record<string, string> = {}, input?: string): Promise<Run> {
  return runNode([DKMS_BIN, ...args], env, input);
}

/** Runs `node nodeArgs` (a script and its arguments, node's own options first) with the clean environment `dkms` uses, in `cwd` if given. */
export function runNode(nodeArgs: readonly string[], env: Record<string, string> = {}, input?: string, cwd?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, nodeArgs, {
      ...(cwd === undefined ? {} : { cwd }),
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** Parses the one JSON object a `--json` command prints. */
export function json<T = Record<string, unknown>>(run: Run): T {
  const lines = run.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one JSON line, got: ${run.stdout}\n${run.stderr}`);
  return JSON.parse(lines[0] ?? '') as T;
}

const running: ChildProcess[] = [];

/** Kills every background command a test started (call from afterEach). */
export function killBackground(): void {
  for (const child of running.splice(0)) child.kill('SIGKILL');
}

export interface Background {
  /** Resolves with each complete stdout line, in order. */
  nextLine(): Promise<string>;
  readonly done: Promise<Run>;
  /** Sends `signal` (SIGKILL unless told). */
  kill(signal?: NodeJS.Signals): void;
}

/** Starts a long-running `dkms` command whose stdout lines the test follows (`entry`: which build of the CLI runs it). */
export function background(args: readonly string[], env: Record<string, string>, entry = DKMS_BIN): Background {
  const child = spawn(process.execPath, [entry, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let stdout = '';
  let stderr = '';
  let consumed = 0;
  const waiters: (() => void)[] = [];
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      for (const wake of waiters.splice(0)) wake();
      resolve({ code: code ?? -1, stdout, stderr });
    }),
  );
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const lines = stdout.split('\n');
      if (lines.length - 1 > consumed) return lines[consumed++] as string;
      if (child.exitCode !== null) throw new Error(`dkms ${args.join(' ')} exited ${child.exitCode}: ${stderr}`);
      await new Promise<void>((wake) => waiters.push(wake));
    }
  };
  return { nextLine, done, kill: (signal: NodeJS.Signals = 'SIGKILL') => child.kill(signal) };
}

export type Json = Record<string, unknown>;

/** Whether the process runs (one that exited but was not yet reaped, a zombie, does not). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Kills the unlock sessions (or other processes) whose pids are in `pids`, emptying it: for afterEach or afterAll. */
export function endSessions(pids: number[], signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, signal);
    } catch {
      // Locked and gone already.
    }
  }
}

/** Unlock sessions owners started (owner's `session` option): ended with the test file. */
const sessionPids: number[] = [];
afterAll(() => endSessions(sessionPids));

/** That a `dkms` run failed with `code`: its message on stderr, its exit status. */
export function expectExit(run: Run, code: ErrorCode): void {
  expect(run.stderr, run.stdout).toContain(`${code}:`);
  expect(run.code).toBe(ERROR_CODES[code].exit);
}

/** That a `dkms` run succeeded (its output shown when not); the run. */
export function expectOk(run: Run): Run {
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
  return run;
}

let keyDir: string | undefined;
// Registered as this module is imported by a test file: the owners' key files go with the file's
// tests (owners made in one test may serve the next, so not with each test).
afterAll(() => {
  if (keyDir !== undefined) rmSync(keyDir, { recursive: true, force: true });
  keyDir = undefined;
});

/** A new 0600 file holding a random raw wallet key, outside every owner's data directory. */
function walletKeyFile(): { path: string; key: Uint8Array } {
  keyDir ??= mkdtempSync(join(tmpdir(), 'dkms-keys-'));
  const key = new Uint8Array(randomBytes(32));
  const path = join(mkdtempSync(join(keyDir, 'owner-')), 'wallet.key');
  writeFileSync(path, `${Buffer.from(key).toString('hex')}\n`, { mode: 0o600 });
  return { path, key };
}

/**
 * A user of the CLI with a data directory of their own. Their wallet opens with a raw key file
 * (`--key-file`), as the in-process agents of world.ts use raw secrets: no Argon2 in each of
 * the hundreds of commands, which test what the commands do, not how a wallet is unlocked
 * (wallet-cli.test.ts and prompt.test.ts do that, with passphrases).
 */
export function owner(home: string, env: Record<string, string>, options: { session?: boolean } = {}) {
  const { path: keyFile, key } = walletKeyFile();
  const full = { DKMS_HOME: home, ...env };
  const withKey = (args: readonly string[]) => ['--key-file', keyFile, ...args];
  let unlocked = false;
  /**
   * With `session`, the owner unlocks once the wallet exists, as a user would: the commands that
   * follow run in the unlock session (about a fifth of a command's CPU), the story unchanged.
   */
  const unlockOnce = async () => {
    if (options.session !== true || unlocked || !existsSync(join(home, 'wallet.db'))) return;
    unlocked = true;
    const started = await dkms(withKey(['unlock', '--json', '--idle', '30m']), full);
    expect(started.code, started.stderr).toBe(0);
    sessionPids.push((JSON.parse(started.stdout) as { pid: number }).pid);
  };
  /** Runs `dkms` as this owner, with `more` in its environment. */
  const cli = async (args: readonly string[], more: Record<string, string> = {}, input?: string) => {
    await unlockOnce();
    return dkms(withKey(args), { ...full, ...more }, input);
  };
  const run = async (args: readonly string[]): Promise<Json> => {
    const result = await cli([...args, '--json']);
    expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    return json(result);
  };
  const fails = async (args: readonly string[]): Promise<{ code: string; exit: number }> => {
    const result = await cli([...args, '--json']);
    expect(result.code, `${args.join(' ')} should fail: ${result.stdout}`).not.toBe(0);
    const error = (JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { error: { code: string } }).error;
    return { code: error.code, exit: result.code };
  };
  return {
    home,
    env: full,
    /** The raw key that opens this owner's wallet (for a test that opens it in process). */
    walletKey: () => Uint8Array.from(key),
    dkms: cli,
    /** A long-running command of this owner's (see `background`). */
    background: (args: readonly string[], more: Record<string, string> = {}) => background(withKey(args), { ...full, ...more }),
    run,
    fails,
    /** Ends the owner's unlock session, if it has one (before the test opens the wallet in process). */
    lock: async () => {
      if (!unlocked) return;
      unlocked = false;
      const locked = await dkms(['lock'], full);
      expect(locked.code, locked.stderr).toBe(0);
    },
  };
}
