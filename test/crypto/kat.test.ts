/**
 * Known-answer tests for the crypto core, with vectors copied from the RFCs:
 * RFC 8032 (Ed25519), RFC 7748 (X25519), RFC 5869 (HKDF-SHA-256) and RFC 8785 (JCS).
 * Hex strings keep the line breaks of the RFC text, joined with `join()`.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
  fromHex,
  hkdf,
  hmacSha256,
  toHex,
  x25519Agree,
  x25519PublicKey,
} from '../../src/crypto/index.js';
import { isDkmsError } from '../../src/errors.js';
import { RFC8032_VECTORS } from '../helpers/rfc8032.js';

const join = (...lines: string[]): string => lines.join('');

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3] = (out[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return out;
}

function throwsBadInput(fn: () => unknown): boolean {
  try {
    fn();
  } catch (e) {
    return isDkmsError(e, 'BAD_INPUT');
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// RFC 8032 section 7.1, "Test Vectors for Ed25519": TEST 1, TEST 2, TEST 3 and TEST 1024 (test/helpers/rfc8032.ts).
// ---------------------------------------------------------------------------------------------

describe('RFC 8032 section 7.1: Ed25519 test vectors', () => {
  describe.each(RFC8032_VECTORS)('$name', (v) => {
    const secretKey = fromHex(v.secretKey);
    const publicKey = fromHex(v.publicKey);
    const message = fromHex(v.message);
    const signature = fromHex(v.signature);

    it('has the lengths the RFC states', () => {
      expect(secretKey.length).toBe(32);
      expect(publicKey.length).toBe(32);
      expect(message.length).toBe(v.messageLength);
      expect(signature.length).toBe(64);
    });

    it('derives the public key from the secret key', () => {
      expect(toHex(ed25519PublicKey(secretKey))).toBe(v.publicKey);
    });

    it('produces the exact signature', () => {
      expect(toHex(ed25519Sign(secretKey, message))).toBe(v.signature);
    });

    it('verifies the signature', () => {
      expect(ed25519Verify(publicKey, message, signature)).toBe(true);
    });

    it('rejects the signature with any single bit flipped', () => {
      for (let bit = 0; bit < 512; bit++) {
        expect(ed25519Verify(publicKey, message, flipBit(signature, bit)), `bit ${bit}`).toBe(false);
      }
    });

    it('rejects a message with a bit flipped, extended or truncated', () => {
      const bits = message.length * 8;
      // Every bit of short messages; first, last and a spread of bits of the long one.
      const positions = bits <= 16 ? [...Array(bits).keys()] : [0, 7, 8, 4091, 4092, bits - 8, bits - 1];
      for (const bit of positions) {
        expect(ed25519Verify(publicKey, flipBit(message, bit), signature), `bit ${bit}`).toBe(false);
      }
      expect(ed25519Verify(publicKey, Uint8Array.of(...message, 0), signature)).toBe(false);
      if (message.length > 0) {
        expect(ed25519Verify(publicKey, message.subarray(0, message.length - 1), signature)).toBe(false);
      }
    });

    it('rejects the signature under the other vectors public keys', () => {
      for (const other of RFC8032_VECTORS) {
        if (other === v) continue;
        expect(ed25519Verify(fromHex(other.publicKey), message, signature)).toBe(false);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 7748 section 5.2: the two single-shot X25519 test vectors (scalar, u-coordinate, output).
// x25519Agree takes the scalar as private key and the u-coordinate as peer public key.
// ---------------------------------------------------------------------------------------------

const RFC7748_5_2 = [
  {
    name: 'first vector',
    scalar: 'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
    u: 'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
    output: 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
  },
  {
    // The u-coordinate has its top bit set, which X25519 must mask (RFC 7748 section 5).
    name: 'second vector',
    scalar: '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
    u: 'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
    output: '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
  },
] as const;

describe('RFC 7748 section 5.2: X25519 test vectors', () => {
  it.each(RFC7748_5_2)('$name', ({ scalar, u, output }) => {
    expect(toHex(x25519Agree(fromHex(scalar), fromHex(u)))).toBe(output);
  });
});

// RFC 7748 section 6.1: the Curve25519 Diffie-Hellman example between Alice and Bob.
describe('RFC 7748 section 6.1: X25519 Diffie-Hellman', () => {
  const alicePrivate = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicePublic = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
  const bobPrivate = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobPublic = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

  it("derives Alice's and Bob's public keys", () => {
    expect(toHex(x25519PublicKey(alicePrivate))).toBe(alicePublic);
    expect(toHex(x25519PublicKey(bobPrivate))).toBe(bobPublic);
  });

  it('agrees on the shared secret K in both directions', () => {
    expect(toHex(x25519Agree(alicePrivate, fromHex(bobPublic)))).toBe(shared);
    expect(toHex(x25519Agree(bobPrivate, fromHex(alicePublic)))).toBe(shared);
  });

  it('does not agree with a corrupted peer key', () => {
    const corrupted = flipBit(fromHex(bobPublic), 0);
    expect(toHex(x25519Agree(alicePrivate, corrupted))).not.toBe(shared);
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 5869 Appendix A: HKDF test cases 1-3 (SHA-256). OKM via hkdf(); PRK = HMAC-Hash(salt, IKM)
// (RFC 5869 section 2.2) via hmacSha256, with the empty salt of test case 3 standing for
// HashLen zero octets, which HMAC treats identically.
// ---------------------------------------------------------------------------------------------

const RFC5869_CASES = [
  // RFC 5869 A.1, Test Case 1: basic test case with SHA-256
  {
    name: 'A.1 Test Case 1',
    ikm: '0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b',
    salt: '000102030405060708090a0b0c',
    info: 'f0f1f2f3f4f5f6f7f8f9',
    length: 42,
    prk: join('077709362c2e32df0ddc3f0dc47bba63', '90b6c73bb50f9c3122ec844ad7c2b3e5'),
    okm: join('3cb25f25faacd57a90434f64d0362f2a', '2d2d0a90cf1a5a4c5db02d56ecc4c5bf', '34007208d5b887185865'),
  },
  // RFC 5869 A.2, Test Case 2: test with SHA-256 and longer inputs/outputs
  {
    name: 'A.2 Test Case 2',
    ikm: join(
      '000102030405060708090a0b0c0d0e0f',
      '101112131415161718191a1b1c1d1e1f',
      '202122232425262728292a2b2c2d2e2f',
      '303132333435363738393a3b3c3d3e3f',
      '404142434445464748494a4b4c4d4e4f',
    ),
    salt: join(
      '606162636465666768696a6b6c6d6e6f',
      '707172737475767778797a7b7c7d7e7f',
      '808182838485868788898a8b8c8d8e8f',
      '909192939495969798999a9b9c9d9e9f',
      'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf',
    ),
    info: join(
      'b0b1b2b3b4b5b6b7b8b9babbbcbdbebf',
      'c0c1c2c3c4c5c6c7c8c9cacbcccdcecf',
      'd0d1d2d3d4d5d6d7d8d9dadbdcdddedf',
      'e0e1e2e3e4e5e6e7e8e9eaebecedeeef',
      'f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff',
    ),
    length: 82,
    prk: join('06a6b88c5853361a06104c9ceb35b45c', 'ef760014904671014a193f40c15fc244'),
    okm: join(
      'b11e398dc80327a1c8e7f78c596a4934',
      '4f012eda2d4efad8a050cc4c19afa97c',
      '59045a99cac7827271cb41c65e590e09',
      'da3275600c2f09b8367793a9aca3db71',
      'cc30c58179ec3e87c14c01d5c1f3434f',
      '1d87',
    ),
  },
  // RFC 5869 A.3, Test Case 3: test with SHA-256 and zero-length salt/info
  {
    name: 'A.3 Test Case 3',
    ikm: '0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b',
    salt: '',
    info: '',
    length: 42,
    prk: join('19ef24a32c717b167f33a91d6f648bdf', '96596776afdb6377ac434c1c293ccb04'),
    okm: join('8da4e775a563c18f715f802a063c5a31', 'b8a11f5c5ee1879ec3454e5f3c738d2d', '9d201395faa4b61a96c8'),
  },
] as const;

describe('RFC 5869 Appendix A: HKDF-SHA-256 test cases', () => {
  describe.each(RFC5869_CASES)('$name', (tc) => {
    it('has the input lengths the RFC states', () => {
      const lengths = { 'A.1 Test Case 1': [22, 13, 10], 'A.2 Test Case 2': [80, 80, 80], 'A.3 Test Case 3': [22, 0, 0] };
      expect([fromHex(tc.ikm).length, fromHex(tc.salt).length, fromHex(tc.info).length]).toEqual(lengths[tc.name]);
      expect(fromHex(tc.okm).length).toBe(tc.length);
    });

    it('extracts the PRK (HMAC-SHA-256 of the IKM keyed by the salt)', () => {
      expect(toHex(hmacSha256(fromHex(tc.salt), fromHex(tc.ikm)))).toBe(tc.prk);
    });

    it('derives the OKM', () => {
      expect(toHex(hkdf(fromHex(tc.ikm), fromHex(tc.salt), fromHex(tc.info), tc.length))).toBe(tc.okm);
    });

    it('derives every prefix of the OKM for shorter lengths', () => {
      for (const length of [1, 31, 32, 33, tc.length - 1]) {
        expect(toHex(hkdf(fromHex(tc.ikm), fromHex(tc.salt), fromHex(tc.info), length))).toBe(tc.okm.slice(0, 2 * length));
      }
    });
  });

  it('treats a string info as its UTF-8 bytes', () => {
    const tc = RFC5869_CASES[0];
    const info = 'dkms test label \u00e9';
    expect(toHex(hkdf(fromHex(tc.ikm), fromHex(tc.salt), info, 42))).toBe(toHex(hkdf(fromHex(tc.ikm), fromHex(tc.salt), new TextEncoder().encode(info), 42)));
  });

  it('refuses output lengths outside 1..255*HashLen', () => {
    const ikm = fromHex(RFC5869_CASES[0].ikm);
    for (const length of [0, -1, 1.5, 255 * 32 + 1, Number.NaN]) {
      expect(
        throwsBadInput(() => hkdf(ikm, new Uint8Array(0), '', length)),
        String(length),
      ).toBe(true);
    }
    expect(hkdf(ikm, new Uint8Array(0), '', 255 * 32).length).toBe(255 * 32);
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 8785 (JSON Canonicalization Scheme).
// ---------------------------------------------------------------------------------------------

describe('RFC 8785: JSON canonicalization', () => {
  // RFC 8785 section 3.2.2: "Assume the following JSON object is parsed" (the JSON text as
  // printed, escapes kept verbatim by String.raw) ...
  const SECTION_3_2_2_INPUT = String.raw`{
       "numbers": [333333333.33333329, 1E30, 4.50,
                   2e-3, 0.000000000000000000000000001],
       "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
       "literals": [null, true, false]
     }`;
  // ... and section 3.2.3: "a properly canonicalized version should (with a line wrap added
  // for display purposes only) read as" (line wrap removed; U+20AC written literally, as JCS does).
  const SECTION_3_2_3_OUTPUT =
    String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,` + String.raw`1e+30,4.5,0.002,1e-27],"string":"${'\u20ac'}$\u000f\nA'B\"\\\\\"/"}`;

  it('section 3.2.2/3.2.3: canonicalizes the sample object exactly', () => {
    expect(canonicalJson(JSON.parse(SECTION_3_2_2_INPUT))).toBe(SECTION_3_2_3_OUTPUT);
  });

  it('section 3.2.2/3.2.3: the output is a fixed point', () => {
    expect(canonicalJson(JSON.parse(SECTION_3_2_3_OUTPUT))).toBe(SECTION_3_2_3_OUTPUT);
  });

  // RFC 8785 section 3.2.3: "The following JSON test data can be used for verifying the
  // correctness of the sorting scheme in a JCS implementation" ...
  const SORTING_INPUT = String.raw`{
       "\u20ac": "Euro Sign",
       "\r": "Carriage Return",
       "\ufb33": "Hebrew Letter Dalet With Dagesh",
       "1": "One",
       "\ud83d\ude00": "Emoji: Grinning Face",
       "\u0080": "Control",
       "\u00f6": "Latin Small Letter O With Diaeresis"
     }`;
  // ... "Expected argument order after sorting property strings".
  const SORTING_EXPECTED_ORDER = [
    'Carriage Return',
    'One',
    'Control',
    'Latin Small Letter O With Diaeresis',
    'Euro Sign',
    'Emoji: Grinning Face',
    'Hebrew Letter Dalet With Dagesh',
  ];

  it('section 3.2.3: sorts properties by UTF-16 code units', () => {
    const out = canonicalJson(JSON.parse(SORTING_INPUT));
    const positions = SORTING_EXPECTED_ORDER.map((value) => out.indexOf(`"${value}"`));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(out).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
        '"\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('section 3.2.3: sorts nested objects too, keeping array order', () => {
    const out = canonicalJson({ z: [JSON.parse(SORTING_INPUT), 2, 1], a: { y: 1, b: 2 } });
    expect(out.startsWith('{"a":{"b":2,"y":1},"z":[{"\\r":"Carriage Return","1":"One",')).toBe(true);
    expect(out.endsWith('"\ufb33":"Hebrew Letter Dalet With Dagesh"},2,1]}')).toBe(true);
  });

  // RFC 8785 Appendix B, "Number Serialization Samples": IEEE 754 bit pattern (hex) and the
  // expected JSON text.
  const APPENDIX_B: readonly (readonly [string, string])[] = [
    ['0000000000000000', '0'], // Zero
    ['8000000000000000', '0'], // Minus zero
    ['0000000000000001', '5e-324'], // Min pos number
    ['8000000000000001', '-5e-324'], // Min neg number
    ['7fefffffffffffff', '1.7976931348623157e+308'], // Max pos number
    ['ffefffffffffffff', '-1.7976931348623157e+308'], // Max neg number
    ['4340000000000000', '9007199254740992'], // Max pos int (1)
    ['c340000000000000', '-9007199254740992'], // Max neg int (1)
    ['4430000000000000', '295147905179352830000'], // ~2**68 (2)
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'], // Round to even (4)
  ];
  // RFC 8785 Appendix B: NaN and Infinity, note (3): "Value out of range, not permitted in JSON".
  const APPENDIX_B_NOT_PERMITTED = ['7fffffffffffffff', '7ff0000000000000'];

  const ieee754 = (hex: string): number => new DataView(fromHex(hex).buffer).getFloat64(0);

  it.each(APPENDIX_B)('Appendix B: %s serializes as %s', (bits, expected) => {
    const value = ieee754(bits);
    expect(canonicalJson(value)).toBe(expected);
    expect(canonicalJson([value])).toBe(`[${expected}]`);
    expect(canonicalJson({ n: value })).toBe(`{"n":${expected}}`);
  });

  it.each(APPENDIX_B_NOT_PERMITTED)('Appendix B: %s (NaN / Infinity) is refused with BAD_INPUT', (bits) => {
    const value = ieee754(bits);
    expect(Number.isFinite(value)).toBe(false);
    expect(throwsBadInput(() => canonicalJson(value))).toBe(true);
    expect(throwsBadInput(() => canonicalJson({ n: [value] }))).toBe(true);
  });
});
