/**
 * The one retry helper (src/retry.ts): what callers rely on — it stops at the first failure it
 * is not told to retry, at its attempt limit, at its deadline and when the caller closes; it
 * pauses with full jitter below a doubling, capped ceiling; and it runs beforeRetry between
 * attempts (reading fresh state).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, retry } from '../../src/retry.js';

class Flaky extends Error {}

/** A function failing `failures` times with Flaky (then `final` if given), then returning the attempt. */
function failing(failures: number, final?: Error): { fn: (attempt: number) => Promise<number>; calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    fn: (attempt) => {
      calls.push(attempt);
      if (attempt <= failures) return Promise.reject(new Flaky(`attempt ${attempt}`));
      if (final !== undefined) return Promise.reject(final);
      return Promise.resolve(attempt);
    },
  };
}

const quick = { baseDelayMs: 1, maxDelayMs: 2, retryOn: (e: unknown) => e instanceof Flaky };

describe('retry', () => {
  it('returns the first success, after as many retried failures as it takes', async () => {
    const { fn, calls } = failing(3);
    expect(await retry(fn, { ...quick, attempts: 10 })).toBe(4);
    expect(calls).toEqual([1, 2, 3, 4]);
  });

  it('throws a failure it is not told to retry at once', async () => {
    const other = new Error('not retried');
    const { fn, calls } = failing(0, other);
    await expect(retry(fn, { ...quick, attempts: 10 })).rejects.toBe(other);
    expect(calls).toEqual([1]);
  });

  it('throws the last failure after its attempts, the first included', async () => {
    const { fn, calls } = failing(100);
    await expect(retry(fn, { ...quick, attempts: 3 })).rejects.toThrow('attempt 3');
    expect(calls).toEqual([1, 2, 3]);
  });

  it('gives up at its deadline', async () => {
    let clock = 0;
    const { fn, calls } = failing(100);
    // Each attempt takes 40 ms of the clock; the deadline is 100 ms after the first began.
    const timed = (attempt: number) => ((clock += 40), fn(attempt));
    await expect(retry(timed, { ...quick, deadlineMs: 100, now: () => clock })).rejects.toThrow('attempt 3');
    expect(calls).toEqual([1, 2, 3]);
  });

  it('stops when the caller closes, without another attempt', async () => {
    let closed = false;
    const { fn, calls } = failing(100);
    const closing = (attempt: number) => ((closed = attempt === 2), fn(attempt));
    await expect(retry(closing, { ...quick, attempts: 10, stopped: () => closed })).rejects.toThrow('attempt 2');
    expect(calls).toEqual([1, 2]);
  });

  it('runs beforeRetry between a failure and the next attempt, with that failure', async () => {
    const seen: string[] = [];
    const { fn } = failing(2);
    await retry(fn, { ...quick, attempts: 5, beforeRetry: (e, attempt) => void seen.push(`${attempt}:${(e as Error).message}`) });
    expect(seen).toEqual(['1:attempt 1', '2:attempt 2']);
  });

  it('refuses to retry with neither an attempt limit nor a deadline', async () => {
    await expect(retry(() => Promise.resolve(1), quick)).rejects.toThrow(TypeError);
  });

  it('pauses below a doubling ceiling capped at maxDelayMs, anywhere from zero (full jitter)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 0, max: 0.9999999, noNaN: true }),
        (attempt, base, max, r) => {
          const delay = backoffDelay(attempt, { baseDelayMs: base, maxDelayMs: max, random: () => r });
          const ceiling = Math.min(max, base * 2 ** (attempt - 1));
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThan(ceiling === 0 ? 1 : ceiling);
          expect(delay).toBe(Math.floor(r * ceiling));
        },
      ),
    );
    expect(backoffDelay(1, { baseDelayMs: 10, maxDelayMs: 1000, random: () => 0.5 })).toBe(5);
    expect(backoffDelay(4, { baseDelayMs: 10, maxDelayMs: 1000, random: () => 0.5 })).toBe(40);
    expect(backoffDelay(20, { baseDelayMs: 10, maxDelayMs: 1000, random: () => 0.5 })).toBe(500);
  });
});
