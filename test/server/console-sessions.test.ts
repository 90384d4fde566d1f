/**
 * The owner console's sessions and login limit (server/console-sessions.ts), on a held clock:
 * random ids and tokens, the CSRF token checked, the idle time sliding with each request, the
 * longest life absolute, logout and the end of all; five logins a minute from one address.
 */
import { describe, expect, it } from 'vitest';
import { CONSOLE_IDLE_SECONDS, CONSOLE_MAX_SECONDS, ConsoleSessions, LoginLimit } from '../../src/server/console-sessions.js';

const MINUTE = 60_000;
const T0 = Date.parse('2026-03-01T10:00:00Z');

describe('console sessions', () => {
  it('makes a random 32-byte id and token a login, each base64url, and ends 8 h after it at the latest', () => {
    const sessions = new ConsoleSessions<string>();
    const a = sessions.create(T0, 'a');
    const b = sessions.create(T0, 'b');
    for (const value of [a.id, a.csrf, b.id, b.csrf]) expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set([a.id, a.csrf, b.id, b.csrf]).size).toBe(4);
    expect(a.expiresAt).toBe(T0 + CONSOLE_MAX_SECONDS * 1000);
    expect(sessions.idleSeconds).toBe(CONSOLE_IDLE_SECONDS);
    expect(sessions.check(a.id, a.csrf, T0)).toEqual({ ok: true, session: { data: 'a', maxAgeSeconds: 900 } });
    expect(sessions.check(b.id, b.csrf, T0)).toMatchObject({ ok: true, session: { data: 'b' } });
  });

  it("refuses a missing or unknown id (log in) and a token that is not the session's own (refused), which leaves the session live", () => {
    const sessions = new ConsoleSessions<number>();
    const a = sessions.create(T0, 1);
    const b = sessions.create(T0, 2);
    expect(sessions.check(undefined, a.csrf, T0)).toEqual({ ok: false, why: 'login' });
    expect(sessions.check(a.csrf, a.csrf, T0)).toEqual({ ok: false, why: 'login' });
    expect(sessions.check(a.id, undefined, T0)).toEqual({ ok: false, why: 'csrf' });
    expect(sessions.check(a.id, b.csrf, T0)).toEqual({ ok: false, why: 'csrf' });
    expect(sessions.check(a.id, `${a.csrf}x`, T0)).toEqual({ ok: false, why: 'csrf' });
    expect(sessions.check(a.id, a.csrf.slice(0, -1), T0)).toEqual({ ok: false, why: 'csrf' });
    expect(sessions.check(a.id, '', T0)).toEqual({ ok: false, why: 'csrf' });
    expect(sessions.check(a.id, a.csrf, T0 + 1000)).toMatchObject({ ok: true, session: { data: 1 } });
  });

  it('ends a session 15 minutes after its last request, each request starting the idle time again', () => {
    const sessions = new ConsoleSessions<string>();
    const s = sessions.create(T0, 'x');
    let now = T0;
    // Busy for an hour, a request every 14 minutes: never idle long enough.
    for (let i = 0; i < 5; i++) {
      now += 14 * MINUTE;
      expect(sessions.check(s.id, s.csrf, now).ok, `request ${i}`).toBe(true);
    }
    // A wrong token is no request of the session's: it does not keep it alive.
    expect(sessions.check(s.id, 'not the token', now + 14 * MINUTE).ok).toBe(false);
    expect(sessions.check(s.id, s.csrf, now + 15 * MINUTE - 1).ok).toBe(true);
    now += 15 * MINUTE - 1;
    expect(sessions.check(s.id, s.csrf, now + 15 * MINUTE)).toEqual({ ok: false, why: 'login' });
    // Ended: the right token brings it back no more.
    expect(sessions.check(s.id, s.csrf, now + 15 * MINUTE + 1)).toEqual({ ok: false, why: 'login' });
    expect(sessions.size).toBe(0);
  });

  it('ends a session 8 hours after its login however busy, the cookie shortened near the end', () => {
    const sessions = new ConsoleSessions<string>();
    const s = sessions.create(T0, 'x');
    let now = T0;
    while (now + 10 * MINUTE < T0 + 8 * 60 * MINUTE) {
      now += 10 * MINUTE;
      expect(sessions.check(s.id, s.csrf, now).ok).toBe(true);
    }
    const end = T0 + 8 * 60 * MINUTE;
    expect(sessions.check(s.id, s.csrf, end - 5 * MINUTE)).toEqual({ ok: true, session: { data: 'x', maxAgeSeconds: 300 } });
    expect(sessions.check(s.id, s.csrf, end)).toEqual({ ok: false, why: 'login' });
  });

  it('ends one session on logout, and all of them at once, giving back what they carried', () => {
    const sessions = new ConsoleSessions<string>();
    const a = sessions.create(T0, 'a');
    const b = sessions.create(T0, 'b');
    const c = sessions.create(T0, 'c');
    expect(sessions.end(a.id)).toBe('a');
    expect(sessions.end(a.id)).toBeUndefined();
    expect(sessions.check(a.id, a.csrf, T0)).toEqual({ ok: false, why: 'login' });
    expect(sessions.check(b.id, b.csrf, T0).ok).toBe(true);
    expect(sessions.endAll().sort()).toEqual(['b', 'c']);
    expect(sessions.check(b.id, b.csrf, T0).ok).toBe(false);
    expect(sessions.check(c.id, c.csrf, T0).ok).toBe(false);
    expect(sessions.size).toBe(0);
  });

  it('keeps a bounded number of sessions: a login past it ends the oldest, and expired ones go at the next login', () => {
    const sessions = new ConsoleSessions<number>({ maxSessions: 3, idleSeconds: 60, maxSeconds: 3600 });
    const made = [0, 1, 2, 3].map((n) => sessions.create(T0 + n, n));
    expect(sessions.size).toBe(3);
    expect(sessions.check(made[0]?.id, made[0]?.csrf, T0 + 10).ok).toBe(false);
    expect(made.slice(1).every((s) => sessions.check(s.id, s.csrf, T0 + 10).ok)).toBe(true);
    sessions.create(T0 + 2 * MINUTE, 4);
    expect(sessions.size).toBe(1);
  });
});

describe('the login limit', () => {
  it('allows five logins a minute from one address, refuses the sixth until the minute since the first has passed', () => {
    const limit = new LoginLimit();
    for (let i = 0; i < 5; i++) expect(limit.allow('127.0.0.1', T0 + i * 1000), `login ${i + 1}`).toBe(true);
    expect(limit.allow('127.0.0.1', T0 + 5000)).toBe(false);
    // Another address has its own count.
    expect(limit.allow('::1', T0 + 5000)).toBe(true);
    // Refused logins do not count: the minute ends on time.
    for (let s = 10; s < 60; s += 10) expect(limit.allow('127.0.0.1', T0 + s * 1000)).toBe(false);
    expect(limit.allow('127.0.0.1', T0 + MINUTE - 1)).toBe(false);
    expect(limit.allow('127.0.0.1', T0 + MINUTE)).toBe(true);
    expect(limit.allow('127.0.0.1', T0 + MINUTE)).toBe(false);
    expect(limit.allow('127.0.0.1', T0 + MINUTE + 1000)).toBe(true);
  });

  it('remembers a bounded number of addresses', () => {
    const limit = new LoginLimit(1, MINUTE);
    for (let i = 0; i < 3000; i++) expect(limit.allow(`10.0.${i >> 8}.${i & 255}`, T0)).toBe(true);
    // The newest addresses are still counted.
    expect(limit.allow('10.0.11.183', T0)).toBe(false);
  });
});
