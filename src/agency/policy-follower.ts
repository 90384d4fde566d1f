/**
 * How an agency follows the ledger, so that a revocation or rotation takes effect there without
 * anyone asking (docs/agents.md, "The agency follows the ledger"). Every `intervalMs` it asks
 * the ledger for the map entries of the policies it serves, up to 1000 in one request, each
 * proven under a verified head (LedgerClient.entries); only a policy whose entry moved since the
 * state last handed on is read in full (LedgerClient.resolvePolicy: its new events proven and
 * replayed) and handed to `onChange`. A quiet ledger costs one request a round.
 *
 * Nothing escapes the loop: each failure goes to `onError`, and the next round tries again.
 * - A round that fails before a policy's entry is proven (the ledger is unreachable, its head is
 *   stale, badly signed or inconsistent, its map proof does not verify) proves nothing about any
 *   policy: the agency keeps acting on the states it verified last.
 * - A policy whose entry is proven to have moved, but whose new state cannot be verified (the
 *   ledger withholds or alters its events), is handed to `onUnverified`: the state the agency
 *   holds for it is then known to be out of date, and the agency must not act on it as current.
 */
import { DkmsError, type ErrorCode } from '../errors.js';
import type { LedgerClient, ResolvedPolicy } from '../ledger/client.js';
import type { PolicyAddress } from '../ledger/events.js';

export const DEFAULT_FOLLOW_INTERVAL_MS = 1000;
/** Policies asked about in one request: the most map proofs a ledger node gives in one answer. */
export const ENTRIES_PER_REQUEST = 1000;

export interface PolicyFollowerOptions {
  readonly ledger: Pick<LedgerClient, 'entries' | 'resolvePolicy'>;
  /** The policies to follow, asked for again every round. */
  readonly policies: () => Promise<readonly PolicyAddress[]>;
  /** `policy` moved and `resolved` is its new state, verified. A failure here is reported, and the state handed on again next round. */
  readonly onChange: (policy: PolicyAddress, resolved: ResolvedPolicy) => Promise<void>;
  /** `policy` moved (proven under a verified head), but its new state could not be verified: `error` says why. */
  readonly onUnverified?: (policy: PolicyAddress, error: DkmsError) => Promise<void>;
  /** Every failure, with the policy it concerns when it concerns one. */
  readonly onError?: (error: DkmsError, policy?: PolicyAddress) => void;
  /** Time from the start of one round to the start of the next (default 1000 ms). */
  readonly intervalMs?: number;
}

/** Failures after which the next reads of the round would fail the same way. */
const ROUND_ENDING: ReadonlySet<ErrorCode> = new Set(['LEDGER_UNREACHABLE', 'RATE_LIMITED']);

const asError = (e: unknown): DkmsError =>
  e instanceof DkmsError ? e : new DkmsError('INTERNAL', `unexpected error: ${e instanceof Error ? e.message : String(e)}`);

/**
 * Follows the policies an agency serves on the ledger. `start()` runs a round at once and then
 * one every `intervalMs`, never two at a time; `close()` stops it.
 *
 * @example
 * const follower = new PolicyFollower({ ledger, policies: async () => served, onChange: (p, r) => apply(r) });
 * follower.start();
 * await follower.close();
 */
export class PolicyFollower {
  readonly #options: PolicyFollowerOptions;
  readonly #intervalMs: number;
  /** The seq of the state of each policy last handed to `onChange`. */
  readonly #handed = new Map<PolicyAddress, number>();
  #rounds: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  /** @throws {DkmsError} BAD_INPUT for an interval that is not a positive whole number of milliseconds. */
  constructor(options: PolicyFollowerOptions) {
    const intervalMs = options.intervalMs ?? DEFAULT_FOLLOW_INTERVAL_MS;
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 1)
      throw new DkmsError('BAD_INPUT', 'the follow interval must be a positive whole number of milliseconds');
    this.#options = options;
    this.#intervalMs = intervalMs;
  }

  /** Follows from now on: a round at once, then one every `intervalMs`. */
  start(): void {
    this.#schedule(0);
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      const started = Date.now();
      void this.round().then(() => this.#schedule(Math.max(0, this.#intervalMs - (Date.now() - started))));
    }, delayMs);
    // A follower never keeps a process alive on its own.
    this.#timer.unref();
  }

  /** One round now, after the one in progress if any. Never rejects. */
  round(): Promise<void> {
    this.#rounds = this.#rounds.then(async () => {
      if (this.#closed) return;
      try {
        await this.#round();
      } catch (e) {
        this.#report(e);
      }
    });
    return this.#rounds;
  }

  /**
   * Stops following: no round starts any more, and this resolves once the round in progress (if
   * any) ends. It ends after the request in flight: give the ledger client a fetch that `close`'s
   * caller aborts to end it at once.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#rounds;
  }

  async #round(): Promise<void> {
    const policies = await this.#options.policies();
    for (let i = 0; i < policies.length && !this.#closed; i += ENTRIES_PER_REQUEST) {
      const chunk = policies.slice(i, i + ENTRIES_PER_REQUEST);
      const { entries } = await this.#options.ledger.entries(chunk);
      for (const policy of chunk) {
        if (this.#closed) return;
        const seq = entries.get(policy)?.seq;
        if (seq !== undefined && seq === this.#handed.get(policy)) continue;
        if (!(await this.#follow(policy))) return;
      }
    }
  }

  /** Reads a policy that moved and hands on its new state. False when the ledger is out of reach or turns requests away: the round ends. */
  async #follow(policy: PolicyAddress): Promise<boolean> {
    let resolved: ResolvedPolicy;
    try {
      resolved = await this.#options.ledger.resolvePolicy(policy);
    } catch (e) {
      const error = asError(e);
      // Before the report: whoever hears of the failure finds the agency already acting on it.
      await this.#options.onUnverified?.(policy, error).catch((f: unknown) => this.#report(f, policy));
      this.#report(error, policy);
      return !ROUND_ENDING.has(error.code);
    }
    try {
      await this.#options.onChange(policy, resolved);
      this.#handed.set(policy, resolved.record.seq);
    } catch (e) {
      this.#report(e, policy);
    }
    return true;
  }

  #report(e: unknown, policy?: PolicyAddress): void {
    if (this.#closed) return;
    try {
      this.#options.onError?.(asError(e), policy);
    } catch {
      // A failing reporter must not stop the follower.
    }
  }
}
