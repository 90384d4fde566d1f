/**
 * Property tests (fast-check) for every parser and codec of the crypto core, plus the
 * round-trip and rejection properties of AEAD, Ed25519, X25519 and Argon2id.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AEAD_OVERHEAD,
  AEAD_VERSION_AES256GCM,
  AeadError,
  Argon2idParams,
  KDF_TIERS,
  argon2idDerive,
  canonicalJson,
  concatBytes,
  decodePublicKey,
  ed25519Generate,
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
  encodePublicKey,
  equalBytes,
  fromBase58btc,
  fromBase64url,
  fromHex,
  fromUtf8,
  keyVersionOf,
  newArgon2idParams,
  open,
  randomBytes,
  randomId,
  readU32be,
  seal,
  sealWithNonce,
  toBase58btc,
  toBase64url,
  toHex,
  u32be,
  utf8,
  x25519Agree,
  x25519Generate,
  x25519PublicKey,
  type KeyType,
} from '../../src/crypto/index.js';
import { DkmsError, isDkmsError } from '../../src/errors.js';

const RUNS = 1000;

/** True when `fn` throws a DkmsError with code BAD_INPUT (and false when it returns). */
function throwsBadInput(fn: () => unknown): boolean {
  try {
    fn();
  } catch (e) {
    if (isDkmsError(e, 'BAD_INPUT')) return true;
    throw e;
  }
  return false;
}

function throwsAeadError(fn: () => unknown): boolean {
  try {
    fn();
  } catch (e) {
    if (e instanceof AeadError) return true;
    throw e;
  }
  return false;
}

const bytes = (maxLength = 256): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength });
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

const b64urlString = fc.string({ unit: fc.constantFrom(...B64URL_ALPHABET), maxLength: 64 });

/** Independent reference: base64url (RFC 4648 section 5) without padding, via node's Buffer. */
const refBase64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

/** Independent reference: base58btc by big-integer division, leading zero bytes as '1'. */
function refBase58(b: Uint8Array): string {
  let n = 0n;
  for (const byte of b) n = n * 256n + BigInt(byte);
  let out = '';
  while (n > 0n) {
    out = B58_ALPHABET[Number(n % 58n)] + out;
    n /= 58n;
  }
  for (const byte of b) {
    if (byte !== 0) break;
    out = '1' + out;
  }
  return out;
}

/** Whether a string over the base64url alphabet is the canonical unpadded encoding of some bytes. */
function isCanonicalBase64url(s: string): boolean {
  if (s.length % 4 === 1) return false;
  if (s.length === 0) return true;
  const last = B64URL_ALPHABET.indexOf(s[s.length - 1] ?? '');
  if (s.length % 4 === 2) return (last & 0b1111) === 0; // 12 bits carry 8: 4 unused
  if (s.length % 4 === 3) return (last & 0b11) === 0; // 18 bits carry 16: 2 unused
  return true;
}

// ---------------------------------------------------------------------------------------------
// base64url
// ---------------------------------------------------------------------------------------------

describe('base64url', () => {
  it('round-trips any bytes and matches the RFC 4648 reference encoding', () => {
    fc.assert(
      fc.property(bytes(), (b) => {
        const text = toBase64url(b);
        expect(text).toBe(refBase64url(b));
        expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(fromBase64url(text)).toEqual(b);
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts exactly the canonical strings, and re-encodes every accepted string to itself', () => {
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(b64urlString, (s) => {
        if (isCanonicalBase64url(s)) {
          accepted++;
          const decoded = fromBase64url(s);
          expect(toBase64url(decoded)).toBe(s);
          expect(decoded.length).toBe(Math.floor((s.length * 6) / 8));
        } else {
          rejected++;
          expect(throwsBadInput(() => fromBase64url(s))).toBe(true);
        }
      }),
      { numRuns: 3 * RUNS },
    );
    expect(accepted).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });

  it("rejects '=', '+', '/', whitespace and other foreign characters anywhere", () => {
    const foreign = fc.constantFrom('=', '+', '/', ' ', '\t', '\n', '.', '\u00e9', '\u0000', '==');
    fc.assert(
      fc.property(bytes(64), fc.nat(), foreign, (b, at, bad) => {
        const text = toBase64url(b);
        const i = at % (text.length + 1);
        expect(throwsBadInput(() => fromBase64url(text.slice(0, i) + bad + text.slice(i)))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects the padded and the standard-alphabet forms of the same bytes', () => {
    fc.assert(
      fc.property(bytes(64), (b) => {
        const padded = Buffer.from(b).toString('base64');
        if (padded !== toBase64url(b)) {
          expect(throwsBadInput(() => fromBase64url(padded))).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects tails whose unused bits are set (non-canonical encodings)', () => {
    fc.assert(
      fc.property(
        bytes(64).filter((b) => b.length % 3 !== 0),
        fc.integer({ min: 1, max: 15 }),
        (b, noise) => {
          const text = toBase64url(b);
          const unusedBits = b.length % 3 === 1 ? 4 : 2;
          const last = B64URL_ALPHABET.indexOf(text[text.length - 1] ?? '');
          const tampered = last | (noise & ((1 << unusedBits) - 1));
          fc.pre(tampered !== last);
          const bad = text.slice(0, -1) + B64URL_ALPHABET[tampered];
          expect(throwsBadInput(() => fromBase64url(bad))).toBe(true);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('encodes views (subarrays) by their own bytes only', () => {
    fc.assert(
      fc.property(bytes(64), bytes(8), bytes(8), (b, pre, post) => {
        const view = concatBytes(pre, b, post).subarray(pre.length, pre.length + b.length);
        expect(toBase64url(view)).toBe(refBase64url(b));
        expect(toHex(view)).toBe(Buffer.from(b).toString('hex'));
        expect(toBase58btc(view)).toBe(refBase58(b));
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects non-strings and refuses to encode non-bytes', () => {
    for (const bad of [undefined, null, 42, ['AA'], Buffer.from('AA')]) {
      expect(throwsBadInput(() => fromBase64url(bad as unknown as string))).toBe(true);
    }
    expect(throwsBadInput(() => toBase64url('AA' as unknown as Uint8Array))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// base58btc
// ---------------------------------------------------------------------------------------------

describe('base58btc', () => {
  const withLeadingZeros = fc.tuple(fc.integer({ min: 0, max: 4 }), bytes(64)).map(([zeros, rest]) => concatBytes(new Uint8Array(zeros), rest));

  it('round-trips any bytes (including leading zero bytes) and matches a reference encoder', () => {
    fc.assert(
      fc.property(withLeadingZeros, (b) => {
        const text = toBase58btc(b);
        expect(text).toBe(refBase58(b));
        expect(fromBase58btc(text)).toEqual(b);
      }),
      { numRuns: RUNS },
    );
  });

  it('re-encodes every string over its alphabet to itself (one encoding per value)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...B58_ALPHABET), maxLength: 48 }), (s) => {
        expect(toBase58btc(fromBase58btc(s))).toBe(s);
      }),
      { numRuns: RUNS },
    );
  });

  it("rejects characters outside the alphabet ('0', 'O', 'I', 'l', '+', ...) with BAD_INPUT", () => {
    fc.assert(
      fc.property(bytes(32), fc.nat(), fc.constantFrom('0', 'O', 'I', 'l', '+', '/', '=', ' ', '-', '_'), (b, at, bad) => {
        const text = toBase58btc(b);
        const i = at % (text.length + 1);
        expect(throwsBadInput(() => fromBase58btc(text.slice(0, i) + bad + text.slice(i)))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// hex
// ---------------------------------------------------------------------------------------------

describe('hex', () => {
  const hexDigits = '0123456789abcdefABCDEF';

  it('round-trips any bytes as lowercase hex, like Buffer', () => {
    fc.assert(
      fc.property(bytes(), (b) => {
        const text = toHex(b);
        expect(text).toBe(Buffer.from(b).toString('hex'));
        expect(text).toMatch(/^(?:[0-9a-f]{2})*$/);
        expect(fromHex(text)).toEqual(b);
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts mixed case and re-encodes it lowercased', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...hexDigits), maxLength: 32 }).map((s) => (s.length % 2 ? s + '0' : s)),
        (s) => {
          const decoded = fromHex(s);
          expect(decoded).toEqual(new Uint8Array(Buffer.from(s, 'hex')));
          expect(toHex(decoded)).toBe(s.toLowerCase());
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('rejects odd lengths and non-hex characters with BAD_INPUT', () => {
    fc.assert(
      fc.property(bytes(32), fc.nat(), fc.constantFrom('g', 'x', ' ', '-', '0x', 'z', '\u00e9', '0'), (b, at, bad) => {
        const text = toHex(b);
        const i = at % (text.length + 1);
        expect(throwsBadInput(() => fromHex(text.slice(0, i) + bad + text.slice(i)))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Multibase multicodec public keys (did:key style)
// ---------------------------------------------------------------------------------------------

describe('encodePublicKey / decodePublicKey', () => {
  const PREFIX: Record<KeyType, Uint8Array> = { ed25519: Uint8Array.of(0xed, 0x01), x25519: Uint8Array.of(0xec, 0x01) };
  const MULTIBASE: Record<KeyType, string> = { ed25519: 'z6Mk', x25519: 'z6LS' };
  const keyType = fc.constantFrom<KeyType>('ed25519', 'x25519');
  const other = (t: KeyType): KeyType => (t === 'ed25519' ? 'x25519' : 'ed25519');

  it('round-trips both key types with the did:key prefixes z6Mk and z6LS', () => {
    fc.assert(
      fc.property(keyType, bytes32, (type, publicKey) => {
        const text = encodePublicKey(type, publicKey);
        expect(text.startsWith(MULTIBASE[type])).toBe(true);
        expect(text).toBe('z' + refBase58(concatBytes(PREFIX[type], publicKey)));
        const decoded = decodePublicKey(text);
        expect(decoded.type).toBe(type);
        expect(decoded.publicKey).toEqual(publicKey);
        expect(decodePublicKey(text, type).publicKey).toEqual(publicKey);
      }),
      { numRuns: RUNS },
    );
  });

  it('encodes real generated keys and reads them back', () => {
    const ed = ed25519Generate().publicKey;
    const x = x25519Generate().publicKey;
    expect(decodePublicKey(encodePublicKey('ed25519', ed), 'ed25519').publicKey).toEqual(ed);
    expect(decodePublicKey(encodePublicKey('x25519', x), 'x25519').publicKey).toEqual(x);
  });

  it('refuses a key of the other type when a type is expected', () => {
    fc.assert(
      fc.property(keyType, bytes32, (type, publicKey) => {
        const text = encodePublicKey(type, publicKey);
        expect(throwsBadInput(() => decodePublicKey(text, other(type)))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses wrong key lengths', () => {
    const wrongLength = fc.uint8Array({ maxLength: 64 }).filter((b) => b.length !== 32);
    fc.assert(
      fc.property(keyType, wrongLength, (type, key) => {
        const text = 'z' + toBase58btc(concatBytes(PREFIX[type], key));
        expect(throwsBadInput(() => decodePublicKey(text))).toBe(true);
        expect(throwsBadInput(() => decodePublicKey(text, type))).toBe(true);
        expect(throwsBadInput(() => encodePublicKey(type, key))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses unknown multicodec prefixes', () => {
    const prefix = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).filter(([a, b]) => !((a === 0xed || a === 0xec) && b === 0x01));
    fc.assert(
      fc.property(prefix, bytes32, ([a, b], key) => {
        const text = 'z' + toBase58btc(concatBytes(Uint8Array.of(a, b), key));
        expect(throwsBadInput(() => decodePublicKey(text))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it("refuses other multibase prefixes than 'z', and a body that is not base58btc", () => {
    fc.assert(
      fc.property(keyType, bytes32, fc.constantFrom('', 'Z', 'f', 'F', 'u', 'm', 'M', 'b', ' z', '1'), (type, key, base) => {
        const body = encodePublicKey(type, key).slice(1);
        expect(throwsBadInput(() => decodePublicKey(base + body))).toBe(true);
        const hexForm = 'f' + toHex(concatBytes(PREFIX[type], key));
        expect(throwsBadInput(() => decodePublicKey(hexForm))).toBe(true);
      }),
      { numRuns: RUNS },
    );
    for (const bad of ['z', 'z0', 'zO', 'z6Mk+', 'z6MkI', 'z6Mkl']) {
      expect(
        throwsBadInput(() => decodePublicKey(bad)),
        bad,
      ).toBe(true);
    }
    expect(throwsBadInput(() => decodePublicKey(42 as unknown as string))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// canonicalJson (RFC 8785)
// ---------------------------------------------------------------------------------------------

/** Rebuilds every object of a JSON value with its keys inserted in reverse order. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reverseKeys(v)]),
    );
  }
  return value;
}

describe('canonicalJson', () => {
  const json = fc.oneof(fc.jsonValue(), fc.jsonValue({ stringUnit: 'binary' }), fc.jsonValue({ stringUnit: 'grapheme' }));

  it('is idempotent: canonicalJson(JSON.parse(canonicalJson(x))) === canonicalJson(x)', () => {
    fc.assert(
      fc.property(json, (x) => {
        const once = canonicalJson(x);
        expect(canonicalJson(JSON.parse(once))).toBe(once);
      }),
      { numRuns: RUNS },
    );
  });

  it('keeps the data: the output parses to what JSON.stringify would give', () => {
    fc.assert(
      fc.property(json, (x) => {
        expect(JSON.parse(canonicalJson(x))).toEqual(JSON.parse(JSON.stringify(x)));
      }),
      { numRuns: RUNS },
    );
  });

  it('does not depend on the order of object keys', () => {
    fc.assert(
      fc.property(json, (x) => {
        expect(canonicalJson(reverseKeys(x))).toBe(canonicalJson(x));
      }),
      { numRuns: RUNS },
    );
  });

  it('writes object keys in UTF-16 code-unit order with no whitespace between tokens', () => {
    const dict = fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.integer(), { maxKeys: 12, noNullPrototype: true });
    fc.assert(
      fc.property(dict, (x) => {
        const keys = Object.keys(x).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        const expected = `{${keys.map((k) => `${JSON.stringify(k)}:${String(x[k])}`).join(',')}}`;
        expect(canonicalJson(x)).toBe(expected);
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts any well-formed Unicode string (surrogate pairs included) and preserves it', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(JSON.parse(canonicalJson(s))).toBe(s);
        expect(JSON.parse(canonicalJson({ [s]: s }))).toEqual({ [s]: s });
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses lone surrogates in values and in keys, at any depth, with BAD_INPUT', () => {
    const lone = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
    const withLone = fc
      .tuple(fc.string({ unit: 'binary', maxLength: 8 }), lone, fc.string({ unit: 'binary', maxLength: 8 }))
      // A high surrogate directly followed by a low one would form a valid pair.
      .filter(([, l, after]) => !(l.charCodeAt(0) <= 0xdbff && /^[\uDC00-\uDFFF]/.test(after)))
      .filter(([before, l]) => !(l.charCodeAt(0) >= 0xdc00 && /[\uD800-\uDBFF]$/.test(before)))
      .map(([a, l, b]) => a + l + b);
    fc.assert(
      fc.property(withLone, fc.jsonValue({ maxDepth: 2 }), fc.nat(3), (bad, filler, where) => {
        const value = [bad, [filler, bad], { k: bad, filler }, { [bad]: filler }][where];
        expect(throwsBadInput(() => canonicalJson(value))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses NaN, Infinity, undefined, functions, Date and other non-JSON values, at any depth', () => {
    class Point {
      x = 1;
    }
    const bad: unknown[] = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      undefined,
      () => 1,
      function named() {
        return 1;
      },
      new Date(0),
      new Map([['a', 1]]),
      new Set([1]),
      new Point(),
      /re/,
      new Uint8Array(2),
      10n,
      Symbol('s'),
      Object(1),
    ];
    fc.assert(
      fc.property(fc.constantFrom(...bad), fc.jsonValue({ maxDepth: 2 }), fc.nat(4), (b, filler, where) => {
        const value = [b, [filler, b], { a: filler, b }, { z: [{ y: b }] }, [[[b]]]][where];
        expect(throwsBadInput(() => canonicalJson(value))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Byte helpers: UTF-8, u32be, randomBytes
// ---------------------------------------------------------------------------------------------

describe('utf8 / fromUtf8', () => {
  it('round-trips any well-formed string, like TextEncoder', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const encoded = utf8(s);
        expect(encoded).toEqual(new Uint8Array(Buffer.from(s, 'utf8')));
        expect(fromUtf8(encoded)).toBe(s);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses malformed UTF-8 with BAD_INPUT', () => {
    const malformed = [
      [0x80], // lone continuation byte
      [0xc3], // truncated 2-byte sequence
      [0xc0, 0xaf], // overlong encoding of '/'
      [0xed, 0xa0, 0x80], // encoded surrogate U+D800
      [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
      [0xff],
    ];
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 8 }), fc.constantFrom(...malformed), fc.string({ unit: 'binary', maxLength: 8 }), (a, bad, b) => {
        expect(throwsBadInput(() => fromUtf8(concatBytes(utf8(a), Uint8Array.from(bad), utf8(b))))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('u32be / readU32be', () => {
  it('round-trips every 32-bit unsigned integer, big-endian, at any offset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), bytes(8), (n, pre) => {
        const encoded = u32be(n);
        expect(encoded).toEqual(Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff));
        const framed = concatBytes(pre, encoded);
        expect(readU32be(framed, pre.length)).toBe(n);
        expect(readU32be(framed.subarray(pre.length), 0)).toBe(n);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('randomBytes', () => {
  it('returns the requested number of bytes, fresh each call', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), (n) => {
        const a = randomBytes(n);
        const b = randomBytes(n);
        expect(a).toBeInstanceOf(Uint8Array);
        expect(a.length).toBe(n);
        expect(b.length).toBe(n);
        if (n >= 16) expect(equalBytes(a, b)).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('does not hand out zeros or repeats across many small requests', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const r = randomBytes(16);
      expect(r.every((x) => x === 0)).toBe(false);
      seen.add(toHex(r));
    }
    expect(seen.size).toBe(5000);
  });

  it('refuses bad lengths with BAD_INPUT', () => {
    for (const n of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(
        throwsBadInput(() => randomBytes(n)),
        String(n),
      ).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// equalBytes
// ---------------------------------------------------------------------------------------------

describe('randomId', () => {
  it('is 128 random bits in base64url, never beginning with - (it is typed back as a command argument)', () => {
    const ids = Array.from({ length: 5000 }, () => randomId());
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
      expect(fromBase64url(id)).toHaveLength(16);
    }
    // Drawn at random: no repeats, and '-' where it may be (a 64th of the other characters).
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.some((id) => id.slice(1).includes('-'))).toBe(true);
    expect(randomId(9)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{11}$/);
  });
});

describe('equalBytes', () => {
  const pair = fc.oneof(
    fc.tuple(bytes(64), bytes(64)),
    bytes(64).map((a) => [a, Uint8Array.from(a)] as const),
    fc
      .tuple(
        bytes(64).filter((a) => a.length > 0),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
      )
      .map(([a, at, mask]) => {
        const b = Uint8Array.from(a);
        const i = at % b.length;
        b[i] = (b[i] ?? 0) ^ mask;
        return [a, b] as const;
      }),
  );

  it('agrees with Buffer.equals, symmetrically', () => {
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const expected = Buffer.from(a).equals(Buffer.from(b));
        expect(equalBytes(a, b)).toBe(expected);
        expect(equalBytes(b, a)).toBe(expected);
        expect(equalBytes(a, a)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('compares views by their own bytes, not their underlying buffers', () => {
    fc.assert(
      fc.property(bytes(32), bytes(8), bytes(8), (a, pre, post) => {
        const view = concatBytes(pre, a, post).subarray(pre.length, pre.length + a.length);
        expect(equalBytes(view, a)).toBe(true);
        expect(equalBytes(a, view)).toBe(true);
        if (post.length > 0) {
          const longer = concatBytes(pre, a, post).subarray(pre.length, pre.length + a.length + 1);
          expect(equalBytes(longer, a)).toBe(false);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// AEAD (AES-256-GCM with header)
// ---------------------------------------------------------------------------------------------

describe('aead seal / open', () => {
  const keyVersion = fc.integer({ min: 0, max: 0xffffffff });

  it('round-trips with random key, plaintext, aad and key version; keyVersionOf reads the version', () => {
    fc.assert(
      fc.property(bytes32, bytes(512), bytes(64), keyVersion, (key, plaintext, aad, version) => {
        const sealed = seal(key, plaintext, aad, version);
        expect(sealed.length).toBe(plaintext.length + AEAD_OVERHEAD);
        expect(sealed[0]).toBe(AEAD_VERSION_AES256GCM);
        expect(keyVersionOf(sealed)).toBe(version);
        expect(open(key, sealed, aad)).toEqual(plaintext);
      }),
      { numRuns: RUNS },
    );
  });

  it('defaults aad to empty and key version to 0', () => {
    fc.assert(
      fc.property(bytes32, bytes(64), (key, plaintext) => {
        const sealed = seal(key, plaintext);
        expect(keyVersionOf(sealed)).toBe(0);
        expect(open(key, sealed)).toEqual(plaintext);
        expect(open(key, sealed, new Uint8Array(0))).toEqual(plaintext);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a sealed value with any single byte changed (AeadError)', () => {
    fc.assert(
      fc.property(bytes32, bytes(128), bytes(32), keyVersion, fc.nat(), fc.integer({ min: 1, max: 255 }), (key, plaintext, aad, version, at, mask) => {
        const sealed = seal(key, plaintext, aad, version);
        const i = at % sealed.length;
        const tampered = Uint8Array.from(sealed);
        tampered[i] = (tampered[i] ?? 0) ^ mask;
        expect(throwsAeadError(() => open(key, tampered, aad))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses every single-byte change of one sealed value', () => {
    const key = randomBytes(32);
    const aad = Uint8Array.of(1, 2, 3);
    const sealed = seal(key, new TextEncoder().encode('attack at dawn'), aad, 7);
    for (let i = 0; i < sealed.length; i++) {
      const tampered = Uint8Array.from(sealed);
      tampered[i] = (tampered[i] ?? 0) ^ 0x01;
      expect(
        throwsAeadError(() => open(key, tampered, aad)),
        `byte ${i}`,
      ).toBe(true);
    }
  });

  it('refuses a different aad, a different key, and truncated or extended values (AeadError)', () => {
    fc.assert(
      fc.property(bytes32, bytes32, bytes(128), bytes(32), bytes(32), fc.nat(), (key, key2, plaintext, aad, aad2, cut) => {
        const sealed = seal(key, plaintext, aad);
        if (!equalBytes(aad, aad2)) expect(throwsAeadError(() => open(key, sealed, aad2))).toBe(true);
        if (!equalBytes(key, key2)) expect(throwsAeadError(() => open(key2, sealed, aad))).toBe(true);
        const n = 1 + (cut % sealed.length);
        expect(throwsAeadError(() => open(key, sealed.subarray(0, sealed.length - n), aad))).toBe(true);
        expect(throwsAeadError(() => open(key, concatBytes(sealed, Uint8Array.of(0)), aad))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('uses a fresh nonce for every seal', () => {
    const key = randomBytes(32);
    const plaintext = new TextEncoder().encode('same plaintext');
    const nonces = new Set<string>();
    const ciphertexts = new Set<string>();
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const sealed = seal(key, plaintext, undefined, 1);
      nonces.add(toHex(sealed.subarray(5, 17)));
      ciphertexts.add(toHex(sealed));
    }
    expect(nonces.size).toBe(n);
    expect(ciphertexts.size).toBe(n);
  });

  it('keyVersionOf refuses values shorter than the overhead', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: AEAD_OVERHEAD - 1 }), (short) => {
        expect(throwsAeadError(() => keyVersionOf(short))).toBe(true);
        expect(throwsAeadError(() => open(new Uint8Array(32), short))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses bad keys and key versions with BAD_INPUT', () => {
    const plaintext = Uint8Array.of(1);
    for (const len of [0, 16, 31, 33, 64]) {
      expect(throwsBadInput(() => seal(new Uint8Array(len), plaintext))).toBe(true);
      expect(throwsBadInput(() => open(new Uint8Array(len), seal(new Uint8Array(32), plaintext)))).toBe(true);
    }
    for (const version of [-1, 2 ** 32, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(
        throwsBadInput(() => seal(new Uint8Array(32), plaintext, undefined, version)),
        String(version),
      ).toBe(true);
    }
    expect(throwsBadInput(() => seal(new Uint8Array(32), 'text' as unknown as Uint8Array))).toBe(true);
  });

  it('sealWithNonce is deterministic for equal inputs and opens with open', () => {
    fc.assert(
      fc.property(bytes32, fc.uint8Array({ minLength: 12, maxLength: 12 }), bytes(128), bytes(32), keyVersion, (key, nonce, plaintext, aad, version) => {
        const a = sealWithNonce(key, nonce, plaintext, aad, version);
        const b = sealWithNonce(key, nonce, plaintext, aad, version);
        expect(a).toEqual(b);
        expect(a.subarray(5, 17)).toEqual(nonce);
        expect(keyVersionOf(a)).toBe(version);
        expect(open(key, a, aad)).toEqual(plaintext);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------------------------

describe('ed25519', () => {
  const keyPair = fc.constant(null).map(() => ed25519Generate());
  const seedKeyPair = bytes32.map((seed) => ({ privateKey: seed, publicKey: ed25519PublicKey(seed) }));
  const pairs = fc.oneof(keyPair, seedKeyPair);

  it('signs and verifies random messages; signing is deterministic', () => {
    fc.assert(
      fc.property(pairs, bytes(1024), ({ privateKey, publicKey }, message) => {
        const signature = ed25519Sign(privateKey, message);
        expect(signature.length).toBe(64);
        expect(ed25519Verify(publicKey, message, signature)).toBe(true);
        expect(ed25519Sign(privateKey, message)).toEqual(signature);
      }),
      { numRuns: RUNS },
    );
  });

  it('derives the generated public key from the generated private key', () => {
    fc.assert(
      fc.property(keyPair, ({ privateKey, publicKey }) => {
        expect(privateKey.length).toBe(32);
        expect(ed25519PublicKey(privateKey)).toEqual(publicKey);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a signature under another key', () => {
    fc.assert(
      fc.property(pairs, pairs, bytes(256), (a, b, message) => {
        fc.pre(!equalBytes(a.publicKey, b.publicKey));
        expect(ed25519Verify(b.publicKey, message, ed25519Sign(a.privateKey, message))).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects a tampered signature or message', () => {
    fc.assert(
      fc.property(pairs, bytes(256), fc.nat(511), fc.nat(), ({ privateKey, publicKey }, message, sigBit, msgBit) => {
        const signature = ed25519Sign(privateKey, message);
        const badSig = Uint8Array.from(signature);
        badSig[sigBit >> 3] = (badSig[sigBit >> 3] ?? 0) ^ (1 << (sigBit & 7));
        expect(ed25519Verify(publicKey, message, badSig)).toBe(false);
        if (message.length > 0) {
          const bit = msgBit % (message.length * 8);
          const badMsg = Uint8Array.from(message);
          badMsg[bit >> 3] = (badMsg[bit >> 3] ?? 0) ^ (1 << (bit & 7));
          expect(ed25519Verify(publicKey, badMsg, signature)).toBe(false);
        }
        expect(ed25519Verify(publicKey, concatBytes(message, Uint8Array.of(0)), signature)).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('returns false (never throws) for malformed keys and signatures', () => {
    const { privateKey, publicKey } = ed25519Generate();
    const message = Uint8Array.of(1, 2, 3);
    const signature = ed25519Sign(privateKey, message);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (junk) => {
        if (junk.length !== 64) expect(ed25519Verify(publicKey, message, junk)).toBe(false);
        if (junk.length !== 32) expect(ed25519Verify(junk, message, signature)).toBe(false);
        if (junk.length === 32) expect(ed25519Verify(junk, message, signature)).toBe(equalBytes(junk, publicKey));
      }),
      { numRuns: RUNS },
    );
    expect(ed25519Verify('key' as unknown as Uint8Array, message, signature)).toBe(false);
    expect(ed25519Verify(publicKey, message, 'sig' as unknown as Uint8Array)).toBe(false);
  });

  it('refuses private keys that are not 32 bytes with BAD_INPUT', () => {
    for (const len of [0, 31, 33, 64]) {
      expect(throwsBadInput(() => ed25519Sign(new Uint8Array(len), Uint8Array.of(1)))).toBe(true);
      expect(throwsBadInput(() => ed25519PublicKey(new Uint8Array(len)))).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// X25519
// ---------------------------------------------------------------------------------------------

describe('x25519', () => {
  const keyPair = fc.constant(null).map(() => x25519Generate());
  const scalarKeyPair = bytes32.map((scalar) => ({ privateKey: scalar, publicKey: x25519PublicKey(scalar) }));
  const pairs = fc.oneof(keyPair, scalarKeyPair);

  it('agreement is symmetric: X25519(a, B) == X25519(b, A)', () => {
    fc.assert(
      fc.property(pairs, pairs, (a, b) => {
        const ab = x25519Agree(a.privateKey, b.publicKey);
        const ba = x25519Agree(b.privateKey, a.publicKey);
        expect(ab.length).toBe(32);
        expect(ab).toEqual(ba);
      }),
      { numRuns: 500 },
    );
  });

  it('derives the generated public key from the generated private key', () => {
    fc.assert(
      fc.property(keyPair, ({ privateKey, publicKey }) => {
        expect(x25519PublicKey(privateKey)).toEqual(publicKey);
      }),
      { numRuns: 200 },
    );
  });

  it('different peers give different secrets', () => {
    fc.assert(
      fc.property(pairs, pairs, pairs, (a, b, c) => {
        fc.pre(!equalBytes(b.publicKey, c.publicKey));
        expect(equalBytes(x25519Agree(a.privateKey, b.publicKey), x25519Agree(a.privateKey, c.publicKey))).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses small-order peer keys (all-zero output) with BAD_INPUT', () => {
    const p = fromHex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'); // 2^255 - 19, little-endian
    const pPlusOne = fromHex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
    const one = new Uint8Array(32);
    one[0] = 1;
    const smallOrder = [new Uint8Array(32), one, p, pPlusOne];
    fc.assert(
      fc.property(pairs, fc.constantFrom(...smallOrder), ({ privateKey }, peer) => {
        expect(throwsBadInput(() => x25519Agree(privateKey, peer))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses keys that are not 32 bytes with BAD_INPUT', () => {
    const { privateKey, publicKey } = x25519Generate();
    for (const len of [0, 31, 33, 64]) {
      expect(throwsBadInput(() => x25519Agree(privateKey, new Uint8Array(len).fill(9)))).toBe(true);
      expect(throwsBadInput(() => x25519Agree(new Uint8Array(len).fill(9), publicKey))).toBe(true);
      expect(throwsBadInput(() => x25519PublicKey(new Uint8Array(len)))).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Argon2id (slow: 64 MiB per derivation, so few derivations)
// ---------------------------------------------------------------------------------------------

describe('argon2id', () => {
  it('new parameters validate under the Argon2idParams schema, also after a JSON round trip', () => {
    for (const tier of ['interactive', 'moderate', 'sensitive'] as const) {
      const params = newArgon2idParams(tier);
      expect(Argon2idParams.safeParse(params).success).toBe(true);
      expect(Argon2idParams.parse(JSON.parse(JSON.stringify(params)))).toEqual(params);
      expect(params).toMatchObject({ alg: 'argon2id', tier, ...KDF_TIERS[tier] });
      expect(fromBase64url(params.salt).length).toBe(16);
    }
    expect(newArgon2idParams().tier).toBe('moderate');
    expect(newArgon2idParams('interactive').salt).not.toBe(newArgon2idParams('interactive').salt);
  });

  it('the schema refuses tampered parameters', () => {
    const good = newArgon2idParams('interactive');
    const bad: unknown[] = [
      { ...good, alg: 'argon2i' },
      { ...good, memoryKiB: 4 },
      { ...good, memoryKiB: 1.5 },
      { ...good, passes: 0 },
      { ...good, lanes: 17 },
      { ...good, salt: good.salt + '=' },
      { ...good, salt: good.salt.replace(/.$/, '+') },
      { ...good, salt: 'short' },
      { ...good, extra: true },
      { ...good, tier: undefined },
    ];
    for (const params of bad) expect(Argon2idParams.safeParse(params).success, JSON.stringify(params)).toBe(false);
  });

  it('the schema accepts any canonical base64url salt of 16..64 bytes', () => {
    const good = newArgon2idParams('interactive');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 64 }), (salt) => {
        expect(Argon2idParams.safeParse({ ...good, salt: toBase64url(salt) }).success).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('same passphrase and parameters give the same key; another salt or passphrase another key', async () => {
    const params = newArgon2idParams('interactive');
    const key1 = await argon2idDerive('correct horse battery staple', params);
    const key2 = await argon2idDerive('correct horse battery staple', JSON.parse(JSON.stringify(params)) as Argon2idParams);
    const otherSalt = await argon2idDerive('correct horse battery staple', { ...params, salt: toBase64url(randomBytes(16)) });
    const otherPassphrase = await argon2idDerive('correct horse battery stapler', params);
    expect(key1.length).toBe(32);
    expect(key2).toEqual(key1);
    expect(equalBytes(otherSalt, key1)).toBe(false);
    expect(equalBytes(otherPassphrase, key1)).toBe(false);
  });

  it('normalizes the passphrase to NFC', async () => {
    const params = newArgon2idParams('interactive');
    const composed = await argon2idDerive('caf\u00e9', params);
    const decomposed = await argon2idDerive('cafe\u0301', params);
    expect(decomposed).toEqual(composed);
  });

  it('refuses an empty passphrase, an unknown tier and a bad salt with BAD_INPUT', async () => {
    const params = newArgon2idParams('interactive');
    await expect(argon2idDerive('', params)).rejects.toSatisfy((e: unknown) => isDkmsError(e, 'BAD_INPUT'));
    await expect(argon2idDerive('pw', { ...params, salt: 'not base64url!' })).rejects.toBeInstanceOf(DkmsError);
    expect(throwsBadInput(() => newArgon2idParams('fast' as unknown as 'interactive'))).toBe(true);
  });
});

describe('inputs that once slipped through', () => {
  it('canonicalJson refuses sparse arrays, cycles and absurd nesting with BAD_INPUT', () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(throwsBadInput(() => canonicalJson([, 1]))).toBe(true);
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(throwsBadInput(() => canonicalJson(cyclic))).toBe(true);
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    expect(throwsBadInput(() => canonicalJson(deep))).toBe(true);
    let fine: unknown = 1;
    for (let i = 0; i < 60; i++) fine = [fine];
    expect(canonicalJson(fine)).toBe(`${'['.repeat(60)}1${']'.repeat(60)}`);
  });

  it('sealWithNonce checks the key version and plaintext as seal does', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    for (const bad of [-1, 2 ** 32, 1.5]) {
      expect(throwsBadInput(() => sealWithNonce(key, nonce, utf8('x'), new Uint8Array(0), bad))).toBe(true);
    }
    expect(throwsBadInput(() => sealWithNonce(key, nonce, 'x' as unknown as Uint8Array, new Uint8Array(0)))).toBe(true);
  });

  it('the stored salt schema accepts exactly what derivation accepts', () => {
    const base = newArgon2idParams('interactive');
    for (const salt of ['AAAAAAAAAAAAAAAAAAAAAB', 'A'.repeat(25), 'AAAAAAAAAAAAAAAAAAAA', toBase64url(randomBytes(65))]) {
      expect(Argon2idParams.safeParse({ ...base, salt }).success).toBe(false);
    }
    expect(Argon2idParams.safeParse(base).success).toBe(true);
  });
});

describe('aead wire format', () => {
  it('is AES-256-GCM with header ‖ associated data as AAD, computed independently with node:crypto', async () => {
    const { createCipheriv } = await import('node:crypto');
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 50 }),
        fc.nat(0xffffffff),
        (key, plaintext, aad, version) => {
          const sealed = seal(key, plaintext, aad, version);
          const header = sealed.subarray(0, 5);
          const nonce = sealed.subarray(5, 17);
          const cipher = createCipheriv('aes-256-gcm', key, nonce);
          cipher.setAAD(concatBytes(header, aad));
          const expected = concatBytes(header, nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag());
          expect(sealed).toEqual(expected);
          expect(keyVersionOf(sealed)).toBe(version);
        },
      ),
      { numRuns: 300 },
    );
  });
});
