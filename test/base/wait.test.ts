/**
 * The test helper for waiting on a condition (test/helpers/wait.ts): it returns the first truthy
 * value of the check, fails after its deadline saying what it waited for, and lets an exception
 * from the check through at once.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';

describe('waitFor', () => {
  it('resolves with the value of the check once the condition becomes true', async () => {
    let calls = 0;
    const value = await waitFor(
      'the third call',
      () => {
        calls += 1;
        return calls >= 3 && { calls };
      },
      { intervalMs: 1 },
    );
    expect(value).toEqual({ calls: 3 });
    expect(calls).toBe(3);
  });

  it('resolves at once, without pausing, when the condition already holds', async () => {
    const started = Date.now();
    await expect(waitFor('a true condition', () => 'ready', { intervalMs: 60_000 })).resolves.toBe('ready');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('accepts an asynchronous check', async () => {
    let calls = 0;
    const value = await waitFor(
      'the second call',
      async () => {
        calls += 1;
        return calls === 2 ? 42 : undefined;
      },
      { intervalMs: 1 },
    );
    expect(value).toBe(42);
  });

  it('rejects with what it waited for once the deadline has passed', async () => {
    let calls = 0;
    const started = Date.now();
    await expect(
      waitFor(
        'a condition that never holds',
        () => {
          calls += 1;
          return false;
        },
        { timeoutMs: 50, intervalMs: 5 },
      ),
    ).rejects.toThrow(new Error('timed out after 50 ms waiting for a condition that never holds'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(calls).toBeGreaterThan(1);
  });

  it('propagates an exception thrown by the check', async () => {
    const thrown = new Error('the check broke');
    await expect(
      waitFor('a broken check', () => {
        throw thrown;
      }),
    ).rejects.toBe(thrown);
  });

  it('propagates a rejection of an asynchronous check', async () => {
    const thrown = new Error('the async check broke');
    let calls = 0;
    await expect(
      waitFor(
        'a failing async check',
        async () => {
          calls += 1;
          if (calls === 2) throw thrown;
          return undefined;
        },
        { intervalMs: 1 },
      ),
    ).rejects.toBe(thrown);
    expect(calls).toBe(2);
  });
});
