/**
 * The owner console's sessions (docs/dashboard.md, "Owner console API"), kept in memory by the
 * server that serves the console: each is a random id (the cookie) and a random CSRF token (sent
 * back in a header), 32 bytes each, that end after an idle time (sliding) or a longest life
 * (absolute), whichever comes first. Only a digest of each id is kept, and tokens are compared
 * in constant time. Pure: every answer depends on the `now` it is given (milliseconds), so tests
 * hold the clock. Also the login limit: so many logins a minute from one client address.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A console session ends after this long without a request. */
export const CONSOLE_IDLE_SECONDS = 15 * 60;
/** …and this long after its login, whatever happens. */
export const CONSOLE_MAX_SECONDS = 8 * 60 * 60;
/** Sessions kept at most: a login past this ends the oldest. */
export const MAX_CONSOLE_SESSIONS = 64;

export interface ConsoleSessionLimits {
  readonly idleSeconds?: number;
  readonly maxSeconds?: number;
  readonly maxSessions?: number;
}

/** A session made by a login: the cookie's value and the CSRF token, both shown once. */
export interface NewConsoleSession {
  readonly id: string;
  readonly csrf: string;
  /** When it ends at the latest (ms since the epoch), however busy. */
  readonly expiresAt: number;
}

/** A live session found by {@link ConsoleSessions.check}. */
export interface LiveConsoleSession<T> {
  readonly data: T;
  /** Seconds the cookie should live from now: the idle time, or less near the end of its life. */
  readonly maxAgeSeconds: number;
}

/** What a request's cookie and token found: a live session, none (log in), or a token that is not its own. */
export type ConsoleCheck<T> = { readonly ok: true; readonly session: LiveConsoleSession<T> } | { readonly ok: false; readonly why: 'login' | 'csrf' };

interface Held<T> {
  /** SHA-256 of the CSRF token. */
  readonly csrf: Buffer;
  readonly data: T;
  readonly created: number;
  lastSeen: number;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
const digest = (text: string): string => sha256(text).toString('base64url');

/** Whether `given` is the token whose digest is `expected`, in time that does not depend on where they differ (or on its length). */
function sameToken(expected: Buffer, given: string): boolean {
  return timingSafeEqual(expected, sha256(given));
}

/** The console's live sessions, each carrying `T` (what the login was for). */
export class ConsoleSessions<T> {
  readonly #held = new Map<string, Held<T>>();
  readonly #idleMs: number;
  readonly #maxMs: number;
  readonly #maxSessions: number;

  constructor(limits: ConsoleSessionLimits = {}) {
    this.#idleMs = (limits.idleSeconds ?? CONSOLE_IDLE_SECONDS) * 1000;
    this.#maxMs = (limits.maxSeconds ?? CONSOLE_MAX_SECONDS) * 1000;
    this.#maxSessions = limits.maxSessions ?? MAX_CONSOLE_SESSIONS;
  }

  /** The idle time, in seconds. */
  get idleSeconds(): number {
    return this.#idleMs / 1000;
  }

  /** How many sessions are held (expired ones go when next looked at, or at the next login). */
  get size(): number {
    return this.#held.size;
  }

  /** A new session at `now`, carrying `data`. */
  create(now: number, data: T): NewConsoleSession {
    this.#sweep(now);
    while (this.#held.size >= this.#maxSessions) {
      const oldest = this.#held.keys().next().value;
      if (oldest === undefined) break;
      this.#held.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    this.#held.set(digest(id), { csrf: sha256(csrf), data, created: now, lastSeen: now });
    return { id, csrf, expiresAt: now + this.#maxMs };
  }

  /**
   * The session whose cookie is `id`, if it lives at `now` and `csrf` is its token; a session
   * found live has its idle time start again. An expired one is ended. A wrong token leaves the
   * session as it was.
   */
  check(id: string | undefined, csrf: string | undefined, now: number): ConsoleCheck<T> {
    const key = id === undefined ? undefined : digest(id);
    const held = key === undefined ? undefined : this.#held.get(key);
    if (key === undefined || held === undefined) return { ok: false, why: 'login' };
    if (this.#expired(held, now)) {
      this.#held.delete(key);
      return { ok: false, why: 'login' };
    }
    if (csrf === undefined || !sameToken(held.csrf, csrf)) return { ok: false, why: 'csrf' };
    held.lastSeen = now;
    const left = held.created + this.#maxMs - now;
    return { ok: true, session: { data: held.data, maxAgeSeconds: Math.max(0, Math.floor(Math.min(this.#idleMs, left) / 1000)) } };
  }

  /** Ends the session whose cookie is `id`; what it carried, if it was held. */
  end(id: string): T | undefined {
    const key = digest(id);
    const held = this.#held.get(key);
    this.#held.delete(key);
    return held?.data;
  }

  /** Ends every session; what they carried. */
  endAll(): T[] {
    const all = [...this.#held.values()].map((held) => held.data);
    this.#held.clear();
    return all;
  }

  #expired(held: Held<T>, now: number): boolean {
    return now - held.lastSeen >= this.#idleMs || now - held.created >= this.#maxMs;
  }

  #sweep(now: number): void {
    for (const [key, held] of this.#held) if (this.#expired(held, now)) this.#held.delete(key);
  }
}

/** Logins allowed from one client address in {@link LOGIN_WINDOW_MS}. */
export const LOGINS_PER_MINUTE = 5;
export const LOGIN_WINDOW_MS = 60_000;
/** Addresses remembered at most (a loopback server sees few). */
const MAX_ADDRESSES = 1024;

/**
 * At most {@link LOGINS_PER_MINUTE} logins from one address in any minute: each login allowed
 * counts, right or wrong; a login refused for the limit does not, so the minute ends on time.
 */
export class LoginLimit {
  readonly #seen = new Map<string, number[]>();
  readonly #perWindow: number;
  readonly #windowMs: number;

  constructor(perWindow = LOGINS_PER_MINUTE, windowMs = LOGIN_WINDOW_MS) {
    this.#perWindow = perWindow;
    this.#windowMs = windowMs;
  }

  /** Whether a login from `address` at `now` is allowed; counted if it is. */
  allow(address: string, now: number): boolean {
    const recent = (this.#seen.get(address) ?? []).filter((at) => now - at < this.#windowMs);
    if (recent.length >= this.#perWindow) {
      this.#seen.set(address, recent);
      return false;
    }
    recent.push(now);
    this.#seen.delete(address);
    this.#seen.set(address, recent);
    if (this.#seen.size > MAX_ADDRESSES) this.#forget(now);
    return true;
  }

  /** Drops addresses with no login in the window, then, if still too many, the longest unseen. */
  #forget(now: number): void {
    for (const [address, times] of this.#seen) if (times.every((at) => now - at >= this.#windowMs)) this.#seen.delete(address);
    for (const address of this.#seen.keys()) {
      if (this.#seen.size <= MAX_ADDRESSES) break;
      this.#seen.delete(address);
    }
  }
}
