/**
 * Signed agency requests (agent/request-auth.ts): a request signed for one method, path, time,
 * nonce and body verifies to its key, and is admitted exactly once; anything else — a missing
 * or malformed header, a key that is not Ed25519, a signature made for another request, any
 * one character of a signed header changed — is REQUEST_UNAUTHORIZED, a time outside the
 * window REQUEST_TIME_SKEW, a replay REQUEST_REPLAYED. Checking keeps nothing: only admitted
 * requests take a nonce, in a bounded window of their key's own. Bodies are compared
 * canonically, so key order does not matter.
 */
import fc from 'fast-check';
import type { Signer } from '../../src/crypto/index.js';
import { describe, expect, it } from 'vitest';
import { AUTH_HEADERS, CLOCK_WINDOW_MS, FUTURE_SKEW_MS, RequestVerifier, signRequest, type SignedRequest } from '../../src/agency/request-auth.js';
import { ed25519Generate, encodePublicKey, memorySigner, x25519Generate } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { expectCodeAsync } from '../helpers/errors.js';

function signer(): Signer {
  const pair = ed25519Generate();
  return memorySigner(pair.privateKey, pair.publicKey);
}

const PATH = '/v1/cloud-agents/abc/sync';
const BODY = { policy: 'policy:z6Mkexample', nested: { b: [1, 2, { y: true, x: null }], a: 'text' } };

/** A verifier whose clock is `offsetMs` from the real one. */
const verifierAt = (offsetMs = 0) => new RequestVerifier(() => Date.now() + offsetMs);

/** Checks a request and admits it (as the agency does once the key may make it): its key. */
async function once(v: RequestVerifier, headers: Record<string, string | string[] | undefined>, method: string, path: string, body: unknown): Promise<string> {
  const checked = v.check(headers, method, path, body);
  await v.admit(checked);
  return checked.key;
}

describe('signRequest / RequestVerifier', () => {
  it("verifies a signed request to the signer's key", async () => {
    const s = signer();
    const headers = signRequest(s, 'POST', PATH, BODY);
    expect(Object.keys(headers).sort()).toEqual(Object.values(AUTH_HEADERS).sort());
    expect(headers[AUTH_HEADERS.key]).toBe(s.multikey);
    expect(await once(verifierAt(), headers, 'POST', PATH, BODY)).toBe(s.multikey);
    // A body-less request (GET) signs the empty digest.
    const get = signRequest(s, 'GET', '/v1/mailbox?limit=10&wait=0');
    expect(await once(verifierAt(), get, 'GET', '/v1/mailbox?limit=10&wait=0', undefined)).toBe(s.multikey);
  });

  it('compares bodies canonically: the same JSON with another key order verifies', async () => {
    const s = signer();
    const headers = signRequest(s, 'POST', PATH, { a: 1, b: { d: [1, 2], c: 'x' } });
    expect(await once(verifierAt(), headers, 'POST', PATH, { b: { c: 'x', d: [1, 2] }, a: 1 })).toBe(s.multikey);
    // Array order is content, though.
    const again = signRequest(s, 'POST', PATH, { a: 1, b: { d: [1, 2], c: 'x' } });
    await expectCodeAsync(once(verifierAt(), again, 'POST', PATH, { a: 1, b: { d: [2, 1], c: 'x' } }), 'REQUEST_UNAUTHORIZED');
  });

  it('treats the method case-insensitively (it signs the upper-case method)', async () => {
    const s = signer();
    expect(await once(verifierAt(), signRequest(s, 'post', PATH, BODY), 'POST', PATH, BODY)).toBe(s.multikey);
  });

  it('refuses a request with any header missing, empty, repeated or oversized', async () => {
    const s = signer();
    for (const name of Object.values(AUTH_HEADERS)) {
      for (const value of [undefined, '', ['a', 'b'], 'x'.repeat(201)]) {
        const headers: Record<string, string | string[] | undefined> = Object.fromEntries(
          Object.entries({ ...signRequest(s, 'POST', PATH, BODY), [name]: value }).filter(([k]) => value !== undefined || k !== name),
        );
        await expectCodeAsync(once(verifierAt(), headers, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
      }
    }
    await expectCodeAsync(once(verifierAt(), {}, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
  });

  it('refuses a key that is not Ed25519, or not a key at all', async () => {
    const s = signer();
    const x25519 = encodePublicKey('x25519', x25519Generate().publicKey);
    for (const key of [x25519, 'z6Mk', 'not-a-key', s.multikey.slice(1), `${s.multikey}1`]) {
      const headers = { ...signRequest(s, 'POST', PATH, BODY), [AUTH_HEADERS.key]: key };
      await expectCodeAsync(once(verifierAt(), headers, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
    }
  });

  it("refuses another key's name on a valid signature", async () => {
    const s = signer();
    const headers = { ...signRequest(s, 'POST', PATH, BODY), [AUTH_HEADERS.key]: signer().multikey };
    await expectCodeAsync(once(verifierAt(), headers, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
  });

  it('refuses a malformed or short signature', async () => {
    const s = signer();
    const good = signRequest(s, 'POST', PATH, BODY);
    const sig = good[AUTH_HEADERS.signature] as string;
    for (const bad of [sig.slice(0, 43), `${sig}AA`, `${sig.slice(0, -1)}=`, sig.replace(/./, '+'), 'A'.repeat(86)]) {
      await expectCodeAsync(once(verifierAt(), { ...good, [AUTH_HEADERS.signature]: bad }, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
    }
  });

  it('refuses a signature made for another body, path, method, time or nonce', async () => {
    const s = signer();
    const v = verifierAt();
    await expectCodeAsync(once(v, signRequest(s, 'POST', PATH, BODY), 'POST', PATH, { ...BODY, policy: 'policy:other' }), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(once(v, signRequest(s, 'POST', PATH, BODY), 'POST', PATH, undefined), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(once(v, signRequest(s, 'POST', PATH), 'POST', PATH, {}), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(once(v, signRequest(s, 'POST', PATH, BODY), 'POST', '/v1/cloud-agents/other/sync', BODY), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(
      once(v, signRequest(s, 'GET', '/v1/mailbox?limit=10&wait=0'), 'GET', '/v1/mailbox?limit=500&wait=0', undefined),
      'REQUEST_UNAUTHORIZED',
    );
    await expectCodeAsync(once(v, signRequest(s, 'POST', PATH, BODY), 'PUT', PATH, BODY), 'REQUEST_UNAUTHORIZED');
    // Another time within the window, and another nonce, with the original signature.
    const headers = signRequest(s, 'POST', PATH, BODY);
    const otherTime = new Date(Date.parse(headers[AUTH_HEADERS.time] as string) - 1000).toISOString();
    await expectCodeAsync(once(v, { ...headers, [AUTH_HEADERS.time]: otherTime }, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
    const otherNonce = signRequest(s, 'POST', PATH, BODY)[AUTH_HEADERS.nonce] as string;
    await expectCodeAsync(once(v, { ...headers, [AUTH_HEADERS.nonce]: otherNonce }, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
    // The untouched request still verifies afterwards: failed attempts burn no nonce.
    expect(await once(v, headers, 'POST', PATH, BODY)).toBe(s.multikey);
  });

  it('refuses a time six minutes behind or two minutes ahead, or no time at all; accepts four minutes behind and fifty seconds ahead', async () => {
    const s = signer();
    expect(CLOCK_WINDOW_MS).toBeLessThan(6 * 60_000);
    expect(FUTURE_SKEW_MS).toBeLessThan(2 * 60_000);
    // The verifier's clock ahead of the signer's: the request is behind, and the other way round.
    const behind = await expectCodeAsync(once(verifierAt(6 * 60_000), signRequest(s, 'POST', PATH, BODY), 'POST', PATH, BODY), 'REQUEST_TIME_SKEW');
    expect(behind.message).toMatch(/36\d s behind/);
    const ahead = await expectCodeAsync(once(verifierAt(-2 * 60_000), signRequest(s, 'POST', PATH, BODY), 'POST', PATH, BODY), 'REQUEST_TIME_SKEW');
    expect(ahead.message).toMatch(/1[12]\d s ahead/);
    expect(await once(verifierAt(4 * 60_000), signRequest(s, 'POST', PATH, BODY), 'POST', PATH, BODY)).toBe(s.multikey);
    expect(await once(verifierAt(-50_000), signRequest(s, 'POST', PATH, BODY), 'POST', PATH, BODY)).toBe(s.multikey);
    const headers = { ...signRequest(s, 'POST', PATH, BODY), [AUTH_HEADERS.time]: 'yesterday' };
    await expectCodeAsync(once(verifierAt(), headers, 'POST', PATH, BODY), 'REQUEST_UNAUTHORIZED');
  });

  it('refuses a replayed nonce, also with a fresh signature over the same nonce', async () => {
    const s = signer();
    const v = verifierAt();
    const headers = signRequest(s, 'POST', PATH, BODY);
    expect(await once(v, headers, 'POST', PATH, BODY)).toBe(s.multikey);
    const error = await expectCodeAsync(once(v, headers, 'POST', PATH, BODY), 'REQUEST_REPLAYED');
    expect(error.message).toMatch(/already made once/);
    // Another key may use the same nonce value: nonces are per key.
    const other = signer();
    const theirs = signRequest(other, 'POST', PATH, BODY);
    expect(await once(v, theirs, 'POST', PATH, BODY)).toBe(other.multikey);
  });

  it("keeps nothing for a request it only checked: a stranger's requests take no nonce and no memory", async () => {
    const s = signer();
    const v = verifierAt();
    const headers = signRequest(s, 'POST', PATH, BODY);
    for (let i = 0; i < 5; i++) expect(v.check(headers, 'POST', PATH, BODY).key).toBe(s.multikey);
    for (let i = 0; i < 200; i++) v.check(signRequest(signer(), 'POST', PATH, BODY), 'POST', PATH, BODY);
    expect(v.size).toEqual({ keys: 0, nonces: 0 });
    // Admitted once it is allowed, and only once.
    expect(await once(v, headers, 'POST', PATH, BODY)).toBe(s.multikey);
    await expectCodeAsync(once(v, headers, 'POST', PATH, BODY), 'REQUEST_REPLAYED');
    expect(v.size).toEqual({ keys: 1, nonces: 1 });
  });

  it('remembers a bounded number of nonces per key, and refuses what was signed before the ones it let go', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const v = new RequestVerifier(() => now, { noncesPerKey: 4 });
    const request = (key: string, i: number): SignedRequest => ({ key, nonce: `n${i}`, at: now - 60_000 + i * 1000 });
    for (let i = 0; i < 10; i++) await v.admit(request('zKey', i));
    expect(v.size).toEqual({ keys: 1, nonces: 4 });
    // The six let go (signed at or before the oldest kept) are refused, whatever their nonce.
    for (let i = 0; i < 6; i++) await expectCodeAsync(v.admit(request('zKey', i)), 'REQUEST_REPLAYED');
    await expectCodeAsync(v.admit({ key: 'zKey', nonce: 'fresh', at: request('zKey', 5).at }), 'REQUEST_REPLAYED');
    // Those kept are refused by nonce, a newer one is taken.
    await expectCodeAsync(v.admit(request('zKey', 8)), 'REQUEST_REPLAYED');
    await v.admit({ key: 'zKey', nonce: 'later', at: now });
    // Another key has a window of its own.
    await v.admit(request('zOther', 0));
    expect(v.size).toEqual({ keys: 2, nonces: 5 });
    // Once the clock window has passed, the next sweep forgets them all.
    now += CLOCK_WINDOW_MS + 120_000;
    for (let i = 0; i < 1100; i++) await v.admit({ key: `zMany${i}`, nonce: 'n', at: now });
    // (A sweep ran among these: the two old keys are gone, the new ones all kept.)
    expect(v.size).toEqual({ keys: 1100, nonces: 1100 });
  });

  it('refuses any single-character change to any signed header value', async () => {
    const s = signer();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:.+/= ';
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.values(AUTH_HEADERS)),
        fc.nat(),
        fc.nat({ max: alphabet.length - 1 }),
        fc.constantFrom('GET', 'POST'),
        async (name, at, withChar, method) => {
          const body = method === 'GET' ? undefined : BODY;
          const headers = signRequest(s, method, PATH, body);
          const value = headers[name] as string;
          const i = at % value.length;
          let c = alphabet[withChar] as string;
          if (c === value[i]) c = c === 'A' ? 'B' : 'A';
          const changed = { ...headers, [name]: value.slice(0, i) + c + value.slice(i + 1) };
          const v = verifierAt();
          try {
            await once(v, changed, method, PATH, body);
          } catch (e) {
            expect(e).toBeInstanceOf(DkmsError);
            // A changed time may still be a date, outside the window.
            expect(['REQUEST_UNAUTHORIZED', 'REQUEST_TIME_SKEW']).toContain((e as DkmsError).code);
            // And the genuine request was not spent by the failed attempt.
            expect(await once(v, headers, method, PATH, body)).toBe(s.multikey);
            return;
          }
          throw new Error(`a change to ${name} at ${i} (${JSON.stringify(value)} → ${JSON.stringify(changed[name])}) was accepted`);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('only ever throws REQUEST_UNAUTHORIZED or REQUEST_TIME_SKEW for arbitrary headers', async () => {
    const s = signer();
    const good = signRequest(s, 'POST', PATH, BODY);
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(
          fc.constantFrom(...Object.values(AUTH_HEADERS), 'other'),
          fc.oneof(fc.string({ maxLength: 250 }), fc.array(fc.string()), fc.constant(undefined)),
        ),
        fc.boolean(),
        async (extra, keepGood) => {
          const headers = { ...(keepGood ? good : {}), ...extra };
          try {
            await once(new RequestVerifier(), headers, 'POST', PATH, BODY);
          } catch (e) {
            expect(e).toBeInstanceOf(DkmsError);
            expect(['REQUEST_UNAUTHORIZED', 'REQUEST_TIME_SKEW']).toContain((e as DkmsError).code);
            return;
          }
          // Only the untouched signed headers verify.
          for (const name of Object.values(AUTH_HEADERS)) expect(headers[name]).toBe(good[name]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
