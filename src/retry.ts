/**
 * The one way dkms tries something again: exponential backoff with full jitter (a random pause
 * between zero and base·2^(n-1), capped), bounded by a number of attempts and/or a deadline,
 * and stopped early when the caller closes. Writers that collide (ledger nodes appending to one
 * etcd cluster, a device racing a thief to submit a recovery) stop doing it in step.
 */

export interface RetryOptions {
  /** Whether a failure is worth another attempt; any other failure ends the retries at once. */
  readonly retryOn: (error: unknown) => boolean;
  /** The most attempts, the first included (default: no limit; then give a deadline). */
  readonly attempts?: number;
  /** Gives up once this many milliseconds have passed since the first attempt began. */
  readonly deadlineMs?: number;
  /** The longest first pause, in milliseconds; each later one may be twice as long as the one before. */
  readonly baseDelayMs: number;
  /** No pause is longer than this. */
  readonly maxDelayMs: number;
  /** Runs between a failure and the pause before the next attempt (e.g. reading fresh state to build it from). */
  readonly beforeRetry?: (error: unknown, attempt: number) => Promise<void> | void;
  /** Ends the retries: the last failure is thrown without waiting (the caller is closing). */
  readonly stopped?: () => boolean;
  /** For tests: the source of jitter in [0, 1) and the clock. */
  readonly random?: () => number;
  readonly now?: () => number;
}

/** The pause before attempt `attempt + 1` (full jitter): random in [0, min(max, base·2^(attempt-1))). */
export function backoffDelay(attempt: number, options: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor((options.random ?? Math.random)() * ceiling);
}

/**
 * Runs `fn` (given the attempt number, from 1) until it succeeds; a failure that `retryOn`
 * accepts is tried again after a jittered pause, while attempts and time remain. Throws the
 * last failure otherwise. Without `attempts` or `deadlineMs` it would never give up, which is
 * refused.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  if (options.attempts === undefined && options.deadlineMs === undefined) throw new TypeError('retry needs attempts or deadlineMs');
  const now = options.now ?? Date.now;
  const until = options.deadlineMs === undefined ? Infinity : now() + options.deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!options.retryOn(e) || attempt >= (options.attempts ?? Infinity) || options.stopped?.() === true) throw e;
      await options.beforeRetry?.(e, attempt);
      const left = until - now();
      if (left <= 0) throw e;
      const pause = Math.min(backoffDelay(attempt, options), left);
      if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
      if (options.stopped?.() === true) throw e;
    }
  }
}
