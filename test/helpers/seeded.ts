/** Seeded random delays, so that a failing crash or fault run can be replayed exactly. */
import { randomInt } from 'node:crypto';

export interface SeededDelays {
  /** The seed, to print with every failure. */
  readonly seed: number;
  /** A whole number of milliseconds from `min` to `max`, both included. */
  between(min: number, max: number): number;
}

/** mulberry32: a small seeded generator. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Delays seeded from the environment variable `variable` when set (to replay a run), else at random. */
export function seededDelays(variable: string): SeededDelays {
  const given = process.env[variable];
  const seed = given === undefined ? randomInt(2 ** 31) : Number(given);
  const random = seededRandom(seed);
  return { seed, between: (min, max) => min + Math.floor(random() * (max - min + 1)) };
}
