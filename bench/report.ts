/** One JSON line per figure. */
export function report(figure: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(figure)}\n`);
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Runs `fn` `count` times and returns operations per second. */
export function opsPerSecond(count: number, fn: (i: number) => void): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) fn(i);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return count / seconds;
}

export async function millis(fn: () => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/**
 * A progress line on stderr for work that takes a while (generating data), at most once a
 * second, and only at a terminal: standard output keeps its JSON lines.
 */
export function progressLine(): (message: string) => void {
  let said = 0;
  return (message) => {
    if (!process.stderr.isTTY || Date.now() - said < 1000) return;
    said = Date.now();
    process.stderr.write(`${message}\n`);
  };
}
