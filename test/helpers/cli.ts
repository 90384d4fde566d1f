import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { fileURLToPath } from 'node:url';

export const DKMS_BIN = fileURLToPath(new URL('../../bin/dkms.js', import.meta.url));

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
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DKMS_BIN, ...args], {
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

/** Starts a long-running `dkms` command whose stdout lines the test follows. */
export function background(args: readonly string[], env: Record<string, string>): Background {
  const child = spawn(process.execPath, [DKMS_BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

export function owner(home: string, env: Record<string, string>) {
  const full = { DKMS_HOME: home, DKMS_PASSPHRASE: `${home} passphrase`, ...env };
  const run = async (args: readonly string[]): Promise<Json> => {
    const result = await dkms([...args, '--json'], full);
    expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    return json(result);
  };
  const fails = async (args: readonly string[]): Promise<{ code: string; exit: number }> => {
    const result = await dkms([...args, '--json'], full);
    expect(result.code, `${args.join(' ')} should fail: ${result.stdout}`).not.toBe(0);
    const error = (JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { error: { code: string } }).error;
    return { code: error.code, exit: result.code };
  };
  return { home, env: full, run, fails };
}
