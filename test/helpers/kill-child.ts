import { spawn, type ChildProcess } from 'node:child_process';

const READY_TIMEOUT_MS = 20_000;

/**
 * How many times the crash tests' trial counts are run: $DKMS_CRASH_SCALE (default 1). Each run
 * kills at new random moments (the seed is printed), so CI covers the kill points over its runs;
 * `DKMS_CRASH_SCALE=10 npm test` is a longer soak on one machine.
 */
export const CRASH_SCALE = crashScale(process.env['DKMS_CRASH_SCALE']);

function crashScale(text: string | undefined): number {
  if (text === undefined || text === '') return 1;
  const scale = Number(text);
  if (!Number.isInteger(scale) || scale < 1 || scale > 100) throw new Error(`DKMS_CRASH_SCALE must be a whole number from 1 to 100, not '${text}'`);
  return scale;
}

/** `base` trials times CRASH_SCALE. */
export const crashTrials = (base: number): number => base * CRASH_SCALE;

/** A crash test's timeout for `baseMs` at scale 1, growing with the scale. */
export const crashTimeout = (baseMs: number): number => baseMs * CRASH_SCALE;

/** What a crash child wrote before it died. */
export interface ChildRun {
  /** Complete stdout lines, in order. */
  readonly lines: string[];
  /** Whatever followed the last newline (a line cut short by the kill); normally empty. */
  readonly partial: string;
  readonly stderr: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Children not yet known dead; `killLiveChildren` ends any left (a timed-out test, say). */
const live = new Set<ChildProcess>();

export function killLiveChildren(): void {
  for (const child of live) child.kill('SIGKILL');
}

/**
 * Spawns `script` with `config` (as JSON) and SIGKILLs it `delayMs` after its "ready" line
 * arrives; resolves once it is dead and its pipes are drained, so every line it wrote has been read.
 */
export function runChild(script: string, config: object, delayMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    const lines: string[] = [];
    let pending = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const readyTimer = setTimeout(() => child.kill('SIGKILL'), READY_TIMEOUT_MS);
    child.stdin.on('error', () => undefined);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        lines.push(line);
        if (line === 'ready' && killTimer === undefined) {
          clearTimeout(readyTimer);
          killTimer = setTimeout(() => child.kill('SIGKILL'), delayMs);
        }
      }
    });
    child.on('error', (e) => {
      clearTimeout(readyTimer);
      clearTimeout(killTimer);
      live.delete(child);
      child.kill('SIGKILL');
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(readyTimer);
      clearTimeout(killTimer);
      live.delete(child);
      child.stdin.destroy();
      resolve({ lines, partial: pending, stderr, code, signal });
    });
  });
}
