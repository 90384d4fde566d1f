/**
 * Runs benchmarks so that a run always ends, and ends non-zero when it went wrong:
 * - a benchmark that throws fails the run: its error on standard error, exit status 1;
 * - once the benchmarks are over (done or failed), the process must end by itself: whatever still
 *   holds it after `lingerMs` (a server, timer or worker left behind) is named on standard error
 *   and the run exits 1, rather than sitting idle;
 * - a main thread that stops running altogether (a native deadlock: Node 20 was seen to hang
 *   with no CPU inside KeyObject exports, see src/crypto/x25519.ts) is noticed by a watchdog
 *   thread after `stallMs`, which says so and aborts the process (SIGABRT: a core dump, where
 *   enabled, shows where it stuck).
 */
import { Worker } from 'node:worker_threads';

export type Bench = () => Promise<void>;

export interface RunOptions {
  /** How long the main thread may run nothing (no timer fires) before the run is aborted (default 5 minutes: longer than any synchronous stretch of a benchmark). */
  readonly stallMs?: number;
  /** How long the process may live on once the benchmarks are over (default 10 s). */
  readonly lingerMs?: number;
}

const DEFAULT_STALL_MS = 5 * 60_000;
const DEFAULT_LINGER_MS = 10_000;
const BEAT_MS = 1000;

/**
 * Sleeps until the main thread beats, and aborts the process if it does not for `stallMs`. It
 * blocks its own thread only (Atomics.wait), so it works while the main thread is stuck.
 */
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const beats = new Int32Array(workerData.beats);
for (;;) {
  const seen = Atomics.load(beats, 0);
  if (Atomics.wait(beats, 0, seen, workerData.stallMs) === 'timed-out') {
    writeSync(2, 'bench: the main thread has not run for ' + Math.round(workerData.stallMs / 1000) + ' s (deadlocked?): aborting\\n');
    process.kill(process.pid, 'SIGABRT');
    break;
  }
}
`;

/** Starts the watchdog; neither it nor the beat keeps the process alive. */
function watchdog(stallMs: number): void {
  const beats = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WATCHDOG_SOURCE, { eval: true, workerData: { beats: beats.buffer, stallMs }, execArgv: [] });
  worker.unref();
  setInterval(() => {
    Atomics.add(beats, 0, 1);
    Atomics.notify(beats, 0);
  }, BEAT_MS).unref();
}

/** Runs `requested` (all when empty) of `benches`, in order; see the module comment for how the run ends. */
export async function runBenches(benches: Readonly<Record<string, Bench>>, requested: readonly string[], options: RunOptions = {}): Promise<void> {
  const unknown = requested.filter((name) => !Object.hasOwn(benches, name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark: ${unknown.join(', ')} (known: ${Object.keys(benches).join(', ')})\n`);
    process.exitCode = 2;
    return;
  }
  watchdog(options.stallMs ?? DEFAULT_STALL_MS);
  for (const name of requested.length > 0 ? requested : Object.keys(benches)) {
    try {
      await benches[name]?.();
    } catch (e) {
      process.stderr.write(`bench ${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
      break;
    }
  }
  const lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
  // Fires only if something else keeps the process alive that long (this timer does not).
  setTimeout(() => {
    process.stderr.write(
      `bench: still running ${Math.round(lingerMs / 1000)} s after the benchmarks ended, held by: ${process.getActiveResourcesInfo().join(', ')}\n`,
    );
    process.exit(1);
  }, lingerMs).unref();
}

/**
 * Runs every closer, in order, even when one fails (a server left open would keep the run
 * alive after the failure); then throws the first failure, if any.
 */
export async function closeAll(...closers: readonly (() => unknown)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const close of closers) {
    try {
      await close();
    } catch (e) {
      failures.push(e);
    }
  }
  if (failures.length > 0) throw failures[0];
}
