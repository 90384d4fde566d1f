/**
 * Social-recovery shares (recovery/shares.ts). Correctness: any threshold of the N shares
 * rebuilds R. Secrecy: M-1 shares are consistent with every secret alike, shown with an
 * independent GF(2^8) oracle (test/helpers/gf256.ts) that builds, for any candidate R', the one
 * completing share under which the library's own `combine` yields R'; and no share, hint or
 * summary carries R in any encoding. Integrity: shares of other splits, repeated indexes, altered
 * fields, foreign signers, malformed shapes and too few shares are each refused with their code,
 * and no mutation of a share parses into anything but the share itself.
 */
import fc from 'fast-check';
import type { Signer } from '../../src/crypto/index.js';
import { combine, split } from 'shamir-secret-sharing';
import { describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  canonicalJson,
  concatBytes,
  ed25519Generate,
  encodePublicKey,
  fromBase64url,
  memorySigner,
  randomBytes,
  toBase58btc,
  toBase64url,
  toHex,
  utf8,
  x25519Generate,
} from '../../src/crypto/index.js';
import { DkmsError, type ErrorCode } from '../../src/errors.js';
import {
  checkTrusteeSetting,
  combineShares,
  parseShare,
  shareSummary,
  splitRecoverySecret,
  MAX_TRUSTEES,
  SHARE_BYTES,
  type RecoveryShare,
} from '../../src/recovery/shares.js';
import { codeOrOk as codeOf, expectCode, expectCodeAsync } from '../helpers/errors.js';
import { gfDiv, gfInv, gfMul, interpolateSharesAt } from '../helpers/gf256.js';
import { BASE64URL_CHARS, getAt, paths, type Path } from '../helpers/json-paths.js';
import { claiming } from '../helpers/edge.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

function agentSigner(): Signer {
  const pair = ed25519Generate();
  return memorySigner(pair.privateKey, pair.publicKey);
}

const OWNER = agentSigner();
const OWNER_INFO = { policy: 'zPolicyAddressOfAlice', label: 'Alice' };
const NOW = new Date('2026-01-02T03:04:05.000Z');

const trusteesOf = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `conn:trustee-${i + 1}`, label: `Trustee ${i + 1}` }));

function makeShares(secret: Uint8Array, total: number, threshold: number, signer: Signer = OWNER): Promise<RecoveryShare[]> {
  return splitRecoverySecret(secret, { threshold, trustees: trusteesOf(total), owner: OWNER_INFO, signer, insist: total < 3, now: NOW });
}

/** The raw share bytes, in the library's layout (value bytes, x-coordinate last). */
const bytesOf = (share: RecoveryShare) => fromBase64url(share.share);

/** Signs arbitrary content as a share, bypassing every check of the builder. */
function signAs(body: Record<string, unknown>, signer: Signer = OWNER): Record<string, unknown> {
  const { sig: _sig, ...rest } = body;
  return { ...rest, sig: toBase64url(signer.sign(canonicalBytes(rest))) };
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

async function asyncCodeOf(promise: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (e) {
    if (!(e instanceof DkmsError)) throw e;
    return e.code;
  }
}

const secretArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** N in 3..10, a threshold M in 2..N. */
const settingArb = fc.integer({ min: 3, max: 10 }).chain((total) => fc.record({ total: fc.constant(total), threshold: fc.integer({ min: 2, max: total }) }));

// ---------------------------------------------------------------------------------------------
// Trustee settings

describe('checkTrusteeSetting', () => {
  it('accepts at least 3 trustees with a threshold from 2 to their number', () => {
    for (const [trustees, threshold] of [
      [3, 2],
      [3, 3],
      [10, 2],
      [MAX_TRUSTEES, MAX_TRUSTEES],
    ] as const) {
      expect(() => checkTrusteeSetting(trustees, threshold, false)).not.toThrow();
    }
  });

  it('refuses a threshold of 1 always, even insisting: each trustee would hold the whole secret', () => {
    for (const trustees of [1, 2, 3, 10]) {
      for (const insist of [false, true]) expect(expectCode(() => checkTrusteeSetting(trustees, 1, insist), 'TRUSTEES_TOO_FEW').message).toMatch(/at least 2/);
    }
    expectCode(() => checkTrusteeSetting(5, 0, true), 'TRUSTEES_TOO_FEW');
    expectCode(() => checkTrusteeSetting(5, -1, true), 'TRUSTEES_TOO_FEW');
  });

  it('refuses a threshold above the number of trustees, even insisting', () => {
    expectCode(() => checkTrusteeSetting(3, 4, false), 'TRUSTEES_TOO_FEW');
    expect(expectCode(() => checkTrusteeSetting(2, 3, true), 'TRUSTEES_TOO_FEW').message).not.toMatch(/insist/);
  });

  it('refuses fewer than 3 trustees unless insisting, and says how to insist', () => {
    expect(expectCode(() => checkTrusteeSetting(2, 2, false), 'TRUSTEES_TOO_FEW').message).toMatch(/--insist/);
    expect(() => checkTrusteeSetting(2, 2, true)).not.toThrow();
  });

  it('refuses more than 255 trustees and counts that are not whole numbers as BAD_INPUT', () => {
    expectCode(() => checkTrusteeSetting(256, 2, true), 'BAD_INPUT');
    expectCode(() => checkTrusteeSetting(3.5, 2, false), 'BAD_INPUT');
    expectCode(() => checkTrusteeSetting(3, 2.5, false), 'BAD_INPUT');
    expectCode(() => checkTrusteeSetting(Number.NaN, 2, false), 'BAD_INPUT');
  });

  it('accepts exactly 2 <= threshold <= trustees <= 255 with trustees >= 3 unless insisting', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1, max: 300 }), fc.integer({ min: -2, max: 300 }), fc.boolean(), (trustees, threshold, insist) => {
        const ok = threshold >= 2 && threshold <= trustees && trustees <= MAX_TRUSTEES && (trustees >= 3 || insist);
        const code = codeOf(() => checkTrusteeSetting(trustees, threshold, insist));
        if (ok) expect(code).toBe('ok');
        else expect(['TRUSTEES_TOO_FEW', 'BAD_INPUT']).toContain(code);
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Splitting

describe('splitRecoverySecret', () => {
  it('makes one signed share per trustee, in order, tagged with one set and carrying the hint', async () => {
    const secret = randomBytes(32);
    const shares = await makeShares(secret, 5, 3);
    expect(shares).toHaveLength(5);
    const hint = { owner: OWNER_INFO, trustees: trusteesOf(5), created: NOW.toISOString() };
    for (const [i, share] of shares.entries()) {
      expect(share).toEqual({
        v: 1,
        type: 'dkms-recovery-share',
        set: shares[0]?.set,
        index: i + 1,
        threshold: 3,
        total: 5,
        hint,
        share: share.share,
        signer: OWNER.multikey,
        sig: share.sig,
      });
      expect(fromBase64url(share.set)).toHaveLength(16);
      const bytes = bytesOf(share);
      expect(bytes).toHaveLength(SHARE_BYTES);
      expect(bytes[SHARE_BYTES - 1]).toBe(i + 1);
      expect(parseShare(JSON.parse(JSON.stringify(share)))).toEqual(share);
    }
  });

  it('draws a fresh set and fresh shares on every split of the same secret', async () => {
    const secret = randomBytes(32);
    const [a, b] = [await makeShares(secret, 3, 2), await makeShares(secret, 3, 2)];
    expect(a[0]?.set).not.toBe(b[0]?.set);
    for (const i of range(3)) expect(a[i]?.share).not.toBe(b[i]?.share);
  });

  it("leaves the caller's secret as it was, and takes a Buffer as well", async () => {
    const secret = randomBytes(32);
    const copy = secret.slice();
    const shares = await makeShares(secret, 4, 2);
    expect(secret).toEqual(copy);
    const fromBuffer = await makeShares(Buffer.from(secret), 3, 2);
    expect(await combineShares(shares)).toEqual(copy);
    expect(await combineShares(fromBuffer)).toEqual(copy);
  });

  it('refuses a secret that is not 32 bytes, duplicate trustees, bad labels and a signer whose key is not its own', async () => {
    const options = { threshold: 2, trustees: trusteesOf(3), owner: OWNER_INFO, signer: OWNER };
    await expectCodeAsync(splitRecoverySecret(randomBytes(31), options), 'BAD_INPUT');
    await expectCodeAsync(
      splitRecoverySecret(randomBytes(32), { ...options, trustees: [...trusteesOf(2), { id: 'conn:trustee-1', label: 'again' }] }),
      'BAD_INPUT',
    );
    await expectCodeAsync(splitRecoverySecret(randomBytes(32), { ...options, owner: { policy: '', label: 'Alice' } }), 'BAD_INPUT');
    await expectCodeAsync(
      splitRecoverySecret(randomBytes(32), { ...options, trustees: [...trusteesOf(2), { id: 'conn:3', label: 'x'.repeat(65) }] }),
      'BAD_INPUT',
    );
    const impostor = claiming(agentSigner().multikey, OWNER);
    await expectCodeAsync(splitRecoverySecret(randomBytes(32), { ...options, signer: impostor }), 'BAD_INPUT');
  });

  it('checks the trustee setting: too few without insisting, a threshold of 1 never', async () => {
    const base = { trustees: trusteesOf(2), owner: OWNER_INFO, signer: OWNER };
    await expectCodeAsync(splitRecoverySecret(randomBytes(32), { ...base, threshold: 2 }), 'TRUSTEES_TOO_FEW');
    expect(await splitRecoverySecret(randomBytes(32), { ...base, threshold: 2, insist: true })).toHaveLength(2);
    await expectCodeAsync(splitRecoverySecret(randomBytes(32), { ...base, trustees: trusteesOf(5), threshold: 1, insist: true }), 'TRUSTEES_TOO_FEW');
  });
});

// ---------------------------------------------------------------------------------------------
// The field: the oracle is the library's

describe('the GF(2^8) oracle', () => {
  it('is the AES field: FIPS-197 products, and every non-zero element has an inverse', () => {
    // FIPS-197 section 4.2: {57}·{83} = {c1}, {57}·{13} = {fe}.
    expect(gfMul(0x57, 0x83)).toBe(0xc1);
    expect(gfMul(0x57, 0x13)).toBe(0xfe);
    for (let a = 1; a < 256; a++) {
      expect(gfMul(a, gfInv(a))).toBe(1);
      expect(gfDiv(a, a)).toBe(1);
    }
  });

  it('interpolates M library shares at 0 to the secret: it is the field the library uses', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 40 }), settingArb, async (secret, { total, threshold }) => {
        const raw = await split(secret, total, threshold);
        expect(interpolateSharesAt(raw.slice(0, threshold), [], 0)).toEqual(secret);
      }),
      { numRuns: 60 },
    );
    const secret = randomBytes(32);
    const shares = await makeShares(secret, 6, 4);
    expect(interpolateSharesAt(shares.slice(2).map(bytesOf), [], 0)).toEqual(secret);
  });
});

// ---------------------------------------------------------------------------------------------
// Correctness and secrecy

describe('Shamir M-of-N', () => {
  it('any threshold of the N shares, in any order, rebuilds R; so do more than the threshold', async () => {
    await fc.assert(
      fc.asyncProperty(
        secretArb,
        settingArb.chain(({ total, threshold }) =>
          fc.record({
            total: fc.constant(total),
            threshold: fc.constant(threshold),
            exact: fc.shuffledSubarray(range(total), { minLength: threshold, maxLength: threshold }),
            more: fc.shuffledSubarray(range(total), { minLength: threshold }),
          }),
        ),
        async (secret, { total, threshold, exact, more }) => {
          const shares = await makeShares(secret, total, threshold);
          const pick = (indexes: number[]) => indexes.map((i) => shares[i] as RecoveryShare);
          expect(await combineShares(pick(exact))).toEqual(secret);
          expect(await combineShares(pick(more))).toEqual(secret);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("M-1 shares are consistent with every secret: for any R' one completing share makes the library combine to R'", async () => {
    await fc.assert(
      fc.asyncProperty(
        secretArb,
        secretArb,
        settingArb.chain(({ total, threshold }) =>
          fc.record({
            total: fc.constant(total),
            threshold: fc.constant(threshold),
            held: fc.shuffledSubarray(range(total), { minLength: threshold - 1, maxLength: threshold - 1 }),
          }),
        ),
        fc.nat(),
        async (secret, other, { total, threshold, held }, pickX) => {
          const shares = await makeShares(secret, total, threshold);
          const known = held.map((i) => bytesOf(shares[i] as RecoveryShare));
          const used = new Set(known.map((s) => s[SHARE_BYTES - 1]));
          const free = range(255)
            .map((i) => i + 1)
            .filter((x) => !used.has(x));
          const x = free[pickX % free.length] as number;
          const completing = concatBytes(interpolateSharesAt(known, [{ x: 0, value: other }], x), Uint8Array.of(x));
          expect(await combine([...known, completing])).toEqual(other);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("the oracle's completing share for the true R at a withheld index is that trustee's real share", async () => {
    const secret = randomBytes(32);
    const shares = await makeShares(secret, 7, 4);
    const known = shares.slice(0, 3).map(bytesOf);
    for (const withheld of shares.slice(3)) {
      const completing = concatBytes(interpolateSharesAt(known, [{ x: 0, value: secret }], withheld.index), Uint8Array.of(withheld.index));
      expect(completing).toEqual(bytesOf(withheld));
    }
  });

  it('M-1 shares leave each byte of R equally likely: the 256 candidate values need 256 different completions', async () => {
    const shares = await makeShares(randomBytes(32), 5, 3);
    const known = shares.slice(1, 3).map(bytesOf);
    for (const k of [0, 17, 31]) {
      const completions = new Set<number>();
      for (let v = 0; v < 256; v++) {
        const candidate = new Uint8Array(32);
        candidate[k] = v;
        const completing = concatBytes(interpolateSharesAt(known, [{ x: 0, value: candidate }], 200), Uint8Array.of(200));
        completions.add(completing[k] as number);
        expect((await combine([...known, completing]))[k]).toBe(v);
      }
      expect(completions.size).toBe(256);
    }
  });
});

describe('no plaintext of R in a share', () => {
  // Distinctive: 32 different bytes, none ASCII-printable.
  const R = Uint8Array.from(range(32), (i) => 0x80 | ((i * 37 + 11) & 0x7f));
  const windows = range(32 - 8 + 1).map((i) => R.subarray(i, i + 8));

  function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
    return Buffer.from(haystack).includes(Buffer.from(needle));
  }

  /** Every trace of R a text could carry: whole encodings, and any 8-byte window raw, as hex or inside a base64url field. */
  function leaks(text: string): boolean {
    if ([toHex(R), toHex(R).toUpperCase(), toBase64url(R), Buffer.from(R).toString('base64'), toBase58btc(R)].some((e) => text.includes(e))) return true;
    const decoded = (text.match(/[A-Za-z0-9_-]{11,}/g) ?? []).flatMap((s) => [
      Buffer.from(s, 'base64url'),
      ...[1, 2, 3].map((d) => Buffer.from(s.slice(d), 'base64url')),
    ]);
    return windows.some((w) => text.includes(toHex(w)) || containsBytes(utf8(text), w) || decoded.some((d) => containsBytes(d, w)));
  }

  it('the detector finds R when it is there, whole or as a window, in any encoding', () => {
    expect(leaks(JSON.stringify({ share: toBase64url(R) }))).toBe(true);
    expect(leaks(JSON.stringify({ share: toBase64url(concatBytes(Uint8Array.of(1), R.subarray(5, 14), Uint8Array.of(2))) }))).toBe(true);
    expect(leaks(`note ${toHex(R.subarray(20, 28))}`)).toBe(true);
    expect(leaks(toBase58btc(R))).toBe(true);
    expect(leaks(JSON.stringify({ share: toBase64url(randomBytes(33)) }))).toBe(false);
  });

  it('no share, serialized whole, nor its bytes, hint or summary, carries R or any 8 bytes of it', async () => {
    for (const [total, threshold] of [
      [2, 2],
      [3, 2],
      [5, 3],
      [10, 10],
    ] as const) {
      const shares = await makeShares(R, total, threshold);
      for (const share of shares) {
        const bytes = bytesOf(share);
        expect(windows.some((w) => containsBytes(bytes, w))).toBe(false);
        expect(leaks(JSON.stringify(share))).toBe(false);
        expect(leaks(JSON.stringify(share.hint))).toBe(false);
        expect(leaks(JSON.stringify(shareSummary(share)))).toBe(false);
      }
      expect(await combineShares(shares)).toEqual(R);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Parsing

describe('parseShare', () => {
  it('refuses malformed shapes with SHARE_MALFORMED naming the problem', async () => {
    const [share] = await makeShares(randomBytes(32), 3, 2);
    const valid = share as RecoveryShare;
    const x25519Key = encodePublicKey('x25519', x25519Generate().publicKey);
    // The message names the path of the first problem: `recovery share: <path>: <what>`.
    const at = (path: string) => new RegExp(`^recovery share: ${path.replaceAll('.', '\\.')}: `);
    const cases: [unknown, RegExp][] = [
      [null, /^recovery share: .*expected object/],
      ['{"v":1}', /^recovery share: .*expected object/],
      [[valid], /^recovery share: .*expected object/],
      [{ ...valid, v: 2 }, at('v')],
      [{ ...valid, type: 'dkms-share' }, at('type')],
      [{ ...valid, index: 0 }, at('index')],
      [{ ...valid, index: 256 }, at('index')],
      [{ ...valid, index: 1.5 }, at('index')],
      [{ ...valid, index: '1' }, at('index')],
      [{ ...valid, threshold: 1 }, at('threshold')],
      [{ ...valid, total: 1 }, at('total')],
      [{ ...valid, set: valid.set.slice(1) }, at('set')],
      [{ ...valid, set: `${valid.set.slice(0, 21)}B` }, at('set')],
      [{ ...valid, share: valid.share.slice(1) }, at('share')],
      [{ ...valid, share: `${valid.share}=` }, at('share')],
      [{ ...valid, share: toBase64url(randomBytes(64)) }, at('share')],
      [{ ...valid, signer: x25519Key }, at('signer')],
      [{ ...valid, sig: valid.sig.slice(1) }, at('sig')],
      [{ ...valid, hint: { ...valid.hint, created: 'yesterday' } }, at('hint.created')],
      [{ ...valid, hint: { ...valid.hint, trustees: [] } }, at('hint.trustees')],
      [
        { ...valid, hint: { ...valid.hint, trustees: [...valid.hint.trustees.slice(0, 2), valid.hint.trustees[0]] } },
        /^recovery share: hint\.trustees: trustee ids must be distinct$/,
      ],
      [{ ...valid, hint: { ...valid.hint, extra: 1 } }, /^recovery share: hint: .*"extra"/],
      [{ ...valid, hint: { ...valid.hint, owner: { policy: 'p' } } }, at('hint.owner.label')],
      [{ ...valid, extra: true }, /^recovery share: .*"extra"/],
    ];
    for (const field of Object.keys(valid)) {
      const { [field]: _gone, ...rest } = valid as Record<string, unknown>;
      cases.push([rest, at(field)]);
    }
    for (const [raw, problem] of cases) expect(expectCode(() => parseShare(raw), 'SHARE_MALFORMED').message).toMatch(problem);
  });

  it('refuses a share the owner did sign whose fields disagree with one another', async () => {
    const shares = await makeShares(randomBytes(32), 3, 2);
    const [a, b] = shares as [RecoveryShare, RecoveryShare];
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...a, threshold: 4 }, /threshold 4 is above the total 3/],
      [{ ...a, hint: { ...a.hint, trustees: trusteesOf(4) } }, /names 4 trustees/],
      [{ ...a, share: b.share }, /x-coordinate/],
    ];
    // An index above the total, with the share's x-coordinate made to match it.
    const bytes = bytesOf(b);
    bytes[SHARE_BYTES - 1] = 9;
    cases.push([{ ...b, index: 9, share: toBase64url(bytes) }, /index 9 is above the total 3/]);
    for (const [body, problem] of cases) expect(expectCode(() => parseShare(signAs(body)), 'SHARE_MALFORMED').message).toMatch(problem);
  });

  it('refuses a signer that is not an Ed25519 key and text that is not valid Unicode as SHARE_MALFORMED', async () => {
    const [share] = (await makeShares(randomBytes(32), 3, 2)) as [RecoveryShare];
    expectCode(() => parseShare({ ...share, signer: `z6Mk${'1'.repeat(44)}` }), 'SHARE_MALFORMED');
    expectCode(() => parseShare({ ...share, hint: { ...share.hint, owner: { ...share.hint.owner, label: '\uD800' } } }), 'SHARE_MALFORMED');
  });

  it('refuses any altered field with SHARE_BAD_SIGNATURE, and so does combineShares', async () => {
    const secret = randomBytes(32);
    const shares = await makeShares(secret, 3, 2);
    const [a, b, c] = shares as [RecoveryShare, RecoveryShare, RecoveryShare];
    const other = (await makeShares(secret, 3, 2))[0] as RecoveryShare;
    const flipped = a.share.slice(0, 5) + (a.share[5] === 'A' ? 'B' : 'A') + a.share.slice(6);
    const tampered: RecoveryShare[] = [
      { ...a, index: 3 },
      { ...a, threshold: 3 },
      { ...a, share: flipped },
      { ...a, share: c.share, index: 3 },
      { ...a, set: other.set },
      { ...a, hint: { ...a.hint, owner: { ...a.hint.owner, label: 'Mallory' } } },
      { ...a, hint: { ...a.hint, trustees: [{ id: 'conn:mallory', label: 'Mallory' }, ...a.hint.trustees.slice(1)] } },
      { ...a, hint: { ...a.hint, created: '2030-01-01T00:00:00.000Z' } },
      { ...a, total: 4, hint: { ...a.hint, trustees: trusteesOf(4) } },
      { ...a, signer: agentSigner().multikey },
      { ...a, sig: b.sig },
    ];
    for (const share of tampered) {
      expectCode(() => parseShare(share), 'SHARE_BAD_SIGNATURE');
      await expectCodeAsync(combineShares([share, b]), 'SHARE_BAD_SIGNATURE');
      await expectCodeAsync(combineShares([b, share]), 'SHARE_BAD_SIGNATURE');
    }
  });

  it('answers arbitrary input with SHARE_MALFORMED and nothing else', () => {
    fc.assert(
      fc.property(fc.anything(), (raw) => {
        expect(codeOf(() => parseShare(raw))).toBe('SHARE_MALFORMED');
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Combining

describe('combineShares', () => {
  it('refuses a share of another split with SHARE_FOREIGN naming the set', async () => {
    const secret = randomBytes(32);
    const [a] = (await makeShares(secret, 3, 2)) as [RecoveryShare];
    const [, b] = (await makeShares(secret, 3, 2)) as [RecoveryShare, RecoveryShare];
    expect((await expectCodeAsync(combineShares([a, b]), 'SHARE_FOREIGN')).message).toMatch(/set/);
  });

  it('refuses shares that share a set but not a split: threshold, total, hint or signer differ', async () => {
    const shares = await makeShares(randomBytes(32), 4, 2);
    const [a, b] = shares as [RecoveryShare, RecoveryShare];
    const stranger = agentSigner();
    const cases: [RecoveryShare, RegExp][] = [
      [signAs({ ...b, threshold: 3 }) as RecoveryShare, /threshold/],
      [signAs({ ...b, total: 5, hint: { ...b.hint, trustees: trusteesOf(5) } }) as RecoveryShare, /total/],
      [signAs({ ...b, hint: { ...b.hint, created: '2027-01-01T00:00:00.000Z' } }) as RecoveryShare, /hint/],
      [signAs({ ...b, signer: stranger.multikey }, stranger) as RecoveryShare, /signer/],
    ];
    for (const [odd, field] of cases) {
      expect(parseShare(odd)).toEqual(odd);
      expect((await expectCodeAsync(combineShares([a, odd]), 'SHARE_FOREIGN')).message).toMatch(field);
    }
  });

  it('refuses a repeated index with SHARE_FOREIGN, even when the copies differ', async () => {
    const shares = await makeShares(randomBytes(32), 3, 2);
    const [a, b] = shares as [RecoveryShare, RecoveryShare];
    expect((await expectCodeAsync(combineShares([a, b, a]), 'SHARE_FOREIGN')).message).toMatch(/index 1 appears twice/);
    const bytes = bytesOf(b);
    bytes[0] = (bytes[0] as number) ^ 1;
    bytes[SHARE_BYTES - 1] = 1;
    const twin = signAs({ ...b, index: 1, share: toBase64url(bytes) }) as RecoveryShare;
    await expectCodeAsync(combineShares([a, twin]), 'SHARE_FOREIGN');
  });

  it('refuses shares of another set than the one asked for', async () => {
    const shares = await makeShares(randomBytes(32), 3, 2);
    const other = (await makeShares(randomBytes(32), 3, 2))[0] as RecoveryShare;
    await expectCodeAsync(combineShares(shares, { set: other.set }), 'SHARE_FOREIGN');
    expect(await combineShares(shares, { set: shares[0]?.set as string })).toHaveLength(32);
  });

  it("refuses a share signed by a key outside the owner's agents with SHARE_BAD_SIGNATURE", async () => {
    const secret = randomBytes(32);
    const stranger = agentSigner();
    const forged = await makeShares(randomBytes(32), 3, 2, stranger);
    const mine = await makeShares(secret, 3, 2);
    expect((await expectCodeAsync(combineShares(forged, { signers: [OWNER.multikey] }), 'SHARE_BAD_SIGNATURE')).message).toMatch(stranger.multikey);
    // A forged share that claims the owner's set, signed by its forger.
    const claiming = signAs({ ...forged[0], set: mine[0]?.set, signer: stranger.multikey }, stranger) as RecoveryShare;
    await expectCodeAsync(combineShares([mine[1] as RecoveryShare, claiming], { signers: [OWNER.multikey] }), 'SHARE_BAD_SIGNATURE');
    expect(await combineShares(mine, { signers: [stranger.multikey, OWNER.multikey] })).toEqual(secret);
  });

  it('refuses fewer shares than the threshold with SHARES_INSUFFICIENT saying how many it has', async () => {
    const shares = await makeShares(randomBytes(32), 5, 3);
    expect((await expectCodeAsync(combineShares(shares.slice(0, 2)), 'SHARES_INSUFFICIENT')).message).toMatch(/have 2 of 3/);
    expect((await expectCodeAsync(combineShares(shares.slice(4)), 'SHARES_INSUFFICIENT')).message).toMatch(/have 1 of 3/);
    await expectCodeAsync(combineShares([]), 'SHARES_INSUFFICIENT');
  });

  it('uses exactly the first threshold shares: a later one is never interpolated', async () => {
    const secret = randomBytes(32);
    const shares = await makeShares(secret, 4, 2);
    // Signed by the owner, so it passes every check, but its bytes are not on the polynomial.
    const offCurve = concatBytes(randomBytes(32), Uint8Array.of(4));
    const wrong = signAs({ ...shares[3], share: toBase64url(offCurve) }) as RecoveryShare;
    expect(await combineShares([shares[0] as RecoveryShare, shares[2] as RecoveryShare, wrong])).toEqual(secret);
    expect(await combineShares([wrong, shares[0] as RecoveryShare])).not.toEqual(secret);
  });
});

describe('shareSummary', () => {
  it('shows set, index, threshold, total, owner, trustees and created, never the share bytes', async () => {
    const [, share] = (await makeShares(randomBytes(32), 3, 2)) as [RecoveryShare, RecoveryShare];
    const summary = shareSummary(share);
    expect(summary).toEqual({ set: share.set, index: 2, threshold: 2, total: 3, owner: OWNER_INFO, trustees: trusteesOf(3), created: NOW.toISOString() });
    expect(JSON.stringify(summary)).not.toContain(share.share);
    expect(JSON.stringify(summary)).not.toContain(share.sig);
  });
});

// ---------------------------------------------------------------------------------------------
// Mutations

type Mutation =
  | { readonly kind: 'replace'; readonly value: unknown }
  | { readonly kind: 'delete' }
  | { readonly kind: 'char'; readonly at: number; readonly with: number }
  | { readonly kind: 'number'; readonly delta: number }
  | { readonly kind: 'extra'; readonly name: string; readonly value: unknown };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('replace' as const),
    value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(0, 1, 2, 3, 255, 256, -1, null, '', [], {})),
  }),
  fc.constant({ kind: 'delete' as const }),
  fc.record({ kind: fc.constant('char' as const), at: fc.nat(), with: fc.nat({ max: BASE64URL_CHARS.length - 1 }) }),
  fc.record({ kind: fc.constant('number' as const), delta: fc.constantFrom(-1, 1, 0.5, 254) }),
  fc.record({ kind: fc.constant('extra' as const), name: fc.string({ maxLength: 8 }), value: fc.jsonValue({ maxDepth: 1 }) }),
);

/** `value` (copied) with the mutation applied at `path`. */
function mutate(value: unknown, path: Path, mutation: Mutation): unknown {
  const copy = clone(value);
  const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  const current = parent[last];
  switch (mutation.kind) {
    case 'replace':
      parent[last] = mutation.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else Reflect.deleteProperty(parent, last);
      break;
    case 'char': {
      const text = typeof current === 'string' && current.length > 0 ? current : `${String(current)}x`;
      const at = mutation.at % text.length;
      let c = BASE64URL_CHARS[mutation.with] as string;
      if (c === text[at]) c = c === 'A' ? 'B' : 'A';
      parent[last] = text.slice(0, at) + c + text.slice(at + 1);
      break;
    }
    case 'number':
      parent[last] = typeof current === 'number' ? current + mutation.delta : mutation.delta;
      break;
    case 'extra':
      if (current !== null && typeof current === 'object' && !Array.isArray(current)) (current as Record<string, unknown>)[mutation.name] = mutation.value;
      else parent[last] = { value: current, [mutation.name]: mutation.value };
      break;
  }
  return copy;
}

describe('mutated shares', () => {
  it('never parse into something that combines to a different secret: refused, or the share unchanged', async () => {
    const secret = randomBytes(32);
    const shares = await makeShares(secret, 4, 3);
    const all = paths(shares[0]);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 3 }),
        fc.array(fc.tuple(fc.nat({ max: all.length - 1 }), mutationArb), { minLength: 1, maxLength: 3 }),
        async (which, mutations) => {
          const original = shares[which] as RecoveryShare;
          let mutated: unknown = original;
          for (const [p, mutation] of mutations) {
            const path = all[p] as Path;
            if (getAt(mutated, path.slice(0, -1)) instanceof Object) mutated = mutate(mutated, path, mutation);
          }
          const others = shares.filter((s) => s !== original).slice(0, 2);
          const code = codeOf(() => parseShare(mutated));
          if (code !== 'ok') {
            expect(['SHARE_MALFORMED', 'SHARE_BAD_SIGNATURE']).toContain(code);
            expect(await asyncCodeOf(combineShares([mutated as RecoveryShare, ...others]))).toBe(code);
            return;
          }
          expect(canonicalJson(parseShare(mutated))).toBe(canonicalJson(original));
          expect(await combineShares([parseShare(mutated), ...others])).toEqual(secret);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('one-character changes of every string field are all refused', async () => {
    const [share] = (await makeShares(randomBytes(32), 3, 2)) as [RecoveryShare];
    for (const path of paths(share)) {
      const value = getAt(share, path);
      if (typeof value !== 'string') continue;
      for (let at = 0; at < value.length; at += 3) {
        const code = codeOf(() => parseShare(mutate(share, path, { kind: 'char', at, with: (at * 13) % BASE64URL_CHARS.length })));
        expect(['SHARE_MALFORMED', 'SHARE_BAD_SIGNATURE']).toContain(code);
      }
    }
  });
});
