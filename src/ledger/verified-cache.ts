/**
 * What a client has already verified, so that it never verifies it twice: for each read (a
 * policy, or a DID with its controlling policy), the subjects' map entries, their verified events
 * and the state after each of them. A later read of the same subject asks only for newer events;
 * an unchanged subject under a new head costs a map proof and no signature check.
 *
 * The entries are plain JSON, so the CLI can keep them in its data directory between runs.
 */
import { z } from 'zod';
import type { MapEntry } from './map.js';
import type { Subject } from './events.js';
import type { LogRecord, SubjectRecord } from './state.js';

/** A subject's state after one of its events (or, for a DID, after one of its policy's). */
export interface StateStep {
  readonly gseq: number;
  readonly time: string;
  readonly record: SubjectRecord;
}

export interface VerifiedRead {
  /** The map root the entries were last proven under. */
  readonly map: string;
  /** The subjects' map entries: the read's own subject and, for a DID, its policy. */
  readonly entries: Readonly<Record<string, MapEntry>>;
  /** Every verified event of those subjects, in log order. */
  readonly history: readonly LogRecord[];
  /** Each subject's states, oldest first: one per event that changed it. */
  readonly steps: Readonly<Record<string, readonly StateStep[]>>;
}

const EntrySchema = z.strictObject({ seq: z.number().int().min(0), gseq: z.number().int().min(0), leaf: z.string() });
const ReadSchema = z.strictObject({
  map: z.string(),
  entries: z.record(z.string(), EntrySchema),
  history: z.array(z.strictObject({ gseq: z.number().int().min(0), time: z.string(), event: z.record(z.string(), z.unknown()) })),
  steps: z.record(z.string(), z.array(z.strictObject({ gseq: z.number().int().min(0), time: z.string(), record: z.record(z.string(), z.unknown()) }))),
});
export const VerifiedCacheSchema = z.record(z.string(), ReadSchema);

/** Reads kept; the least recently used is dropped beyond this. */
const DEFAULT_LIMIT = 4096;

export class VerifiedCache {
  readonly #reads = new Map<string, VerifiedRead>();
  readonly #limit: number;
  /** Called after every change, to persist the cache. */
  onChange: (() => void) | undefined;

  constructor(limit = DEFAULT_LIMIT) {
    this.#limit = limit;
  }

  get(subject: Subject): VerifiedRead | undefined {
    const read = this.#reads.get(subject);
    if (read !== undefined) {
      this.#reads.delete(subject);
      this.#reads.set(subject, read);
    }
    return read;
  }

  set(subject: Subject, read: VerifiedRead): void {
    this.#reads.delete(subject);
    this.#reads.set(subject, read);
    while (this.#reads.size > this.#limit) {
      const oldest = this.#reads.keys().next();
      if (oldest.done === true) break;
      this.#reads.delete(oldest.value);
    }
    this.onChange?.();
  }

  /** Forgets everything (e.g. after the ledger was found to lie). */
  clear(): void {
    this.#reads.clear();
    this.onChange?.();
  }

  toJSON(): Record<string, VerifiedRead> {
    return Object.fromEntries(this.#reads);
  }

  /** A cache holding what `toJSON` wrote; anything malformed is dropped, not trusted. */
  static fromJSON(value: unknown, limit = DEFAULT_LIMIT): VerifiedCache {
    const cache = new VerifiedCache(limit);
    const parsed = VerifiedCacheSchema.safeParse(value);
    if (parsed.success) for (const [subject, read] of Object.entries(parsed.data)) cache.#reads.set(subject, read as unknown as VerifiedRead);
    return cache;
  }
}
