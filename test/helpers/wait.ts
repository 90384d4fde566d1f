/**
 * Waiting in tests: poll for the condition a test needs, with a deadline that fails the test
 * saying what did not happen — never a fixed sleep hoping that something happened by then.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface WaitOptions {
  /** How long to wait for the condition before failing (default 10 000 ms). */
  timeoutMs?: number;
  /** The pause between two checks (default 10 ms). */
  intervalMs?: number;
}

/**
 * Calls `check` until it returns a truthy value, and returns that value. After `timeoutMs`
 * without one, throws `timed out after <ms> ms waiting for <what>`. An exception thrown (or a
 * rejection returned) by `check` ends the wait at once and propagates.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    // The polling interval between two checks, bounded by the deadline.
    await delay(Math.min(intervalMs, left));
  }
}
