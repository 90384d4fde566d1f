/**
 * The browser's platform module (crypto/web/platform.ts) against Node's (crypto/platform.ts):
 * Node 20 has WebCrypto with Ed25519, so the module the dashboard's build swaps in runs here as
 * it is. Every SHA-256 digest and Ed25519 verdict it gives through `settle` must be Node's, for
 * the same inputs, whatever the caller does with its arrays meanwhile; base64url must be as
 * strict, random bytes as plentiful, comparison as exact. Ed25519 edge cases: RFC 8032 section
 * 7.1 TEST 1-3, keys that are no point, keys of small order, and the 12 vectors of
 * ed25519-speccheck (github.com/novifinancial/ed25519-speccheck, cases.json at 6551933).
 */
import { ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as nodePlatform from '../../src/crypto/platform.js';
import * as webPlatform from '../../src/crypto/web/platform.js';
import * as webCore from '../../src/crypto/web/index.js';
import {
  byteLength,
  ed25519Generate,
  ed25519Sign,
  ed25519Verify,
  fromBase64url,
  fromHex,
  isSmallOrderEd25519,
  toBase64url,
  toHex,
  utf8,
} from '../../src/crypto/index.js';
import { DkmsError, isDkmsError } from '../../src/errors.js';
import { RFC8032_VECTORS } from '../helpers/rfc8032.js';

const join = (...lines: string[]): string => lines.join('');

/** A SHA-256 digest as the browser build computes it: asked in a step, answered by WebCrypto. */
function webSha256(data: Uint8Array): Promise<Uint8Array> {
  return webPlatform.settle(() => webPlatform.sha256(data));
}

/** Fresh random bytes: inputs no earlier test has had WebCrypto answer for. */
function fresh(length: number): Uint8Array {
  return nodePlatform.fillRandom(new Uint8Array(length));
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3] = (out[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return out;
}

/**
 * Ed25519 verification as dkms does it in the browser: ed25519-verify.ts's checks (lengths, keys
 * of small order refused), then the web platform's verdict. (Imported here, ed25519-verify.ts is
 * bound to Node's platform, so its `ed25519Verify` is the Node path.)
 */
async function webVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (signature.length !== 64 || publicKey.length !== 32 || isSmallOrderEd25519(publicKey)) return false;
  return webPlatform.settle(() => webPlatform.ed25519VerifyChecked(publicKey, message, signature));
}

describe('the browser core re-exports the browser platform', () => {
  it('sha256, settle and isCryptoPending of crypto/web/index.ts are the web platform’s, and nothing there signs', () => {
    expect(webCore.sha256).toBe(webPlatform.sha256);
    expect(webCore.settle).toBe(webPlatform.settle);
    expect(webCore.isCryptoPending).toBe(webPlatform.isCryptoPending);
    expect(Object.keys(webCore).filter((name) => /sign|generate|seal|private/i.test(name) && !/verify|smallorder/i.test(name))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// SHA-256
// ---------------------------------------------------------------------------------------------

describe('sha256: WebCrypto through settle, as Node computes it', () => {
  it('equals Node’s digest for any bytes, empty included', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 2000 }), async (data) => {
        expect(toHex(await webSha256(data))).toBe(toHex(nodePlatform.sha256(data)));
      }),
      { numRuns: 200, examples: [[new Uint8Array(0)], [new Uint8Array(2000)]] },
    );
  });

  it('gives the FIPS 180-2 answers for "abc" and the empty string', async () => {
    const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    expect(toHex(await webSha256(utf8('abc')))).toBe(abc);
    expect(toHex(await webSha256(new Uint8Array(0)))).toBe(empty);
    expect(toHex(nodePlatform.sha256(utf8('abc')))).toBe(abc);
    expect(toHex(nodePlatform.sha256(new Uint8Array(0)))).toBe(empty);
  });

  it('asks for WebCrypto work outside settle, and answers at once once it is done', async () => {
    const data = fresh(40);
    let thrown: unknown;
    try {
      webPlatform.sha256(data);
    } catch (e) {
      thrown = e;
    }
    expect(webPlatform.isCryptoPending(thrown)).toBe(true);
    await webSha256(data);
    expect(toHex(webPlatform.sha256(data))).toBe(toHex(nodePlatform.sha256(data)));
  });

  it('returns a copy: changing a digest does not change the next answer', async () => {
    const data = fresh(100);
    const first = await webSha256(data);
    first.fill(0);
    expect(toHex(webPlatform.sha256(data))).toBe(toHex(nodePlatform.sha256(data)));
  });

  it('hashes what the array held when asked, though the caller reuses the array in the step', async () => {
    const [a, b] = [fresh(64), fresh(64)];
    const buffer = new Uint8Array(64);
    const [digestA, digestB] = await webPlatform.settle(() => {
      buffer.set(a);
      const first = webPlatform.sha256(buffer);
      buffer.set(b);
      return [first, webPlatform.sha256(buffer)];
    });
    expect(toHex(digestA)).toBe(toHex(nodePlatform.sha256(a)));
    expect(toHex(digestB)).toBe(toHex(nodePlatform.sha256(b)));
  });

  it('hashes what the array held when asked, though the caller changes it before the work is done', async () => {
    const original = fresh(64);
    const buffer = Uint8Array.from(original);
    let changed = false;
    const digest = await webPlatform.settle(() => {
      if (!changed) {
        try {
          webPlatform.sha256(buffer);
        } catch (e) {
          // The request is out; the caller overwrites its array before settle does the work.
          buffer.fill(0xaa);
          changed = true;
          throw e;
        }
      }
      return webPlatform.sha256(original);
    });
    expect(changed).toBe(true);
    expect(toHex(digest)).toBe(toHex(nodePlatform.sha256(original)));
  });
});

// ---------------------------------------------------------------------------------------------
// settle and isCryptoPending
// ---------------------------------------------------------------------------------------------

/** A chain of `n` digests, h = sha256(h), by `hash`. */
function chain(hash: (data: Uint8Array) => Uint8Array, seed: Uint8Array, n: number): Uint8Array {
  let h = seed;
  for (let i = 0; i < n; i++) h = hash(h);
  return h;
}

describe('settle: steps of many hashes, errors that are not requests', () => {
  it('a step of 50 chained hashes ends as Node’s chain, after 51 rounds (one WebCrypto answer a round)', async () => {
    const seed = fresh(32);
    let rounds = 0;
    const end = await webPlatform.settle(() => {
      rounds++;
      return chain(webPlatform.sha256, seed, 50);
    });
    expect(toHex(end)).toBe(toHex(chain(nodePlatform.sha256, seed, 50)));
    expect(rounds).toBe(51);
    // Every answer is known now: the same step runs once.
    rounds = 0;
    await webPlatform.settle(() => {
      rounds++;
      return chain(webPlatform.sha256, seed, 50);
    });
    expect(rounds).toBe(1);
  });

  it('runs an asynchronous step too', async () => {
    const data = fresh(10);
    const digest = await webPlatform.settle(async () => {
      await Promise.resolve();
      return webPlatform.sha256(data);
    });
    expect(toHex(digest)).toBe(toHex(nodePlatform.sha256(data)));
  });

  it('passes on any other error unchanged, on both platforms, after the hashes before it are done', async () => {
    for (const platform of [webPlatform, nodePlatform]) {
      for (const error of [new Error('refused'), new DkmsError('BAD_INPUT', 'not an event'), 'a string']) {
        const seed = fresh(32);
        const step = (): Uint8Array => {
          chain(platform.sha256, seed, 3);
          throw error;
        };
        await expect(platform.settle(step)).rejects.toBe(error);
      }
    }
  });

  it('a step that catches every error but lets requests through (isCryptoPending) gets its answer', async () => {
    for (const platform of [webPlatform, nodePlatform]) {
      const data = fresh(48);
      const digest = await platform.settle(() => {
        try {
          return platform.sha256(data);
        } catch (e) {
          if (platform.isCryptoPending(e)) throw e;
          return new Uint8Array(0);
        }
      });
      expect(toHex(digest)).toBe(toHex(nodePlatform.sha256(data)));
    }
  });

  it('a step that swallows requests too never gets the answer in the browser (why the rule exists)', async () => {
    const swallowed = await webPlatform.settle(() => {
      try {
        return webPlatform.sha256(fresh(48));
      } catch {
        return undefined;
      }
    });
    expect(swallowed).toBeUndefined();
  });

  it('isCryptoPending: only a web request; never anything on Node', () => {
    let request: unknown;
    try {
      webPlatform.sha256(fresh(16));
    } catch (e) {
      request = e;
    }
    expect(webPlatform.isCryptoPending(request)).toBe(true);
    for (const other of [new Error('x'), new DkmsError('INTERNAL', 'x'), undefined, null, 'pending', { work: async () => undefined }]) {
      expect(webPlatform.isCryptoPending(other)).toBe(false);
      expect(nodePlatform.isCryptoPending(other)).toBe(false);
    }
    expect(nodePlatform.isCryptoPending(request)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------------------------

/** RFC 8032 section 7.1, TEST 1, TEST 2 and TEST 3. */
const RFC8032 = RFC8032_VECTORS.slice(0, 3);
type Ed25519Vector = Pick<(typeof RFC8032_VECTORS)[number], 'name' | 'publicKey' | 'message' | 'signature'>;

function bytesOf(vector: Ed25519Vector): { publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array } {
  return { publicKey: fromHex(vector.publicKey), message: fromHex(vector.message), signature: fromHex(vector.signature) };
}

/** Both paths' verdicts: Node's ed25519Verify and the browser's. */
async function verdicts(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<{ node: boolean; web: boolean }> {
  return { node: ed25519Verify(publicKey, message, signature), web: await webVerify(publicKey, message, signature) };
}

describe('prefetch: independent answers asked at once, never a placeholder kept', () => {
  it('computes beforehand what a step of independent hashes and verdicts asks for: the step then runs once', async () => {
    const inputs = Array.from({ length: 20 }, () => fresh(40));
    const pair = ed25519Generate();
    const messages = Array.from({ length: 5 }, () => fresh(30));
    const signatures = messages.map((m) => ed25519Sign(pair.privateKey, m));
    const step = () => [
      ...inputs.map((input) => toHex(webPlatform.sha256(input))),
      ...messages.map((m, i) => webPlatform.ed25519VerifyChecked(pair.publicKey, m, signatures[i] as Uint8Array)),
    ];
    await webPlatform.prefetch(() => void step());
    let rounds = 0;
    const answers = await webPlatform.settle(() => {
      rounds++;
      return step();
    });
    expect(rounds).toBe(1);
    expect(answers).toEqual([...inputs.map((input) => toHex(nodePlatform.sha256(input))), ...messages.map(() => true)]);
  });

  it('keeps no placeholder: a chain prefetched (only its first link can be) still ends as Node’s', async () => {
    const seed = fresh(32);
    await webPlatform.prefetch(() => void chain(webPlatform.sha256, seed, 10));
    let rounds = 0;
    const end = await webPlatform.settle(() => {
      rounds++;
      return chain(webPlatform.sha256, seed, 10);
    });
    expect(toHex(end)).toBe(toHex(chain(nodePlatform.sha256, seed, 10)));
    // The first link was answered ahead; each later one depends on the one before.
    expect(rounds).toBe(10);
    // A forged signature prefetched is still false: the placeholder (false) is never what is kept.
    const pair = ed25519Generate();
    const message = fresh(16);
    const forged = flipBit(ed25519Sign(pair.privateKey, message), 9);
    await webPlatform.prefetch(() => void webPlatform.ed25519VerifyChecked(pair.publicKey, message, forged));
    expect(await webPlatform.settle(() => webPlatform.ed25519VerifyChecked(pair.publicKey, message, forged))).toBe(false);
    expect(await webPlatform.settle(() => webPlatform.ed25519VerifyChecked(pair.publicKey, message, ed25519Sign(pair.privateKey, message)))).toBe(true);
  });

  it('computes what was asked before the step threw, and is back to requests after it', async () => {
    const asked = fresh(24);
    await webPlatform.prefetch(() => {
      webPlatform.sha256(asked);
      throw new Error('refused on a placeholder');
    });
    let rounds = 0;
    await webPlatform.settle(() => {
      rounds++;
      return webPlatform.sha256(asked);
    });
    expect(rounds).toBe(1);
    // Outside prefetch an unknown input is a request again, not a placeholder.
    expect(() => webPlatform.sha256(fresh(24))).toThrow();
    expect(
      webPlatform.isCryptoPending(
        (() => {
          try {
            webPlatform.sha256(fresh(24));
          } catch (e) {
            return e;
          }
          return undefined;
        })(),
      ),
    ).toBe(true);
  });

  it('does not even run the step on Node, where every answer is computed where it is asked', async () => {
    let ran = false;
    await nodePlatform.prefetch(() => {
      ran = true;
    });
    expect(ran).toBe(false);
  });
});

describe('Ed25519: RFC 8032 vectors and tampering', () => {
  for (const vector of RFC8032) {
    it(`${vector.name} verifies on both paths`, async () => {
      const { publicKey, message, signature } = bytesOf(vector);
      expect(await verdicts(publicKey, message, signature)).toEqual({ node: true, web: true });
    });
  }

  it('one flipped bit of message, signature or key: false on both paths', async () => {
    const vectors = RFC8032.map(bytesOf);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...vectors), fc.constantFrom('message', 'signature', 'publicKey' as const), fc.nat(), async (vector, part, at) => {
        // TEST 1's message is empty: its message has no bit to flip, so the key's is flipped.
        const which = part === 'message' && vector.message.length === 0 ? 'publicKey' : part;
        const bits = vector[which].length * 8;
        const tampered = { ...vector, [which]: flipBit(vector[which], at % bits) };
        expect(await verdicts(tampered.publicKey, tampered.message, tampered.signature)).toEqual({ node: false, web: false });
      }),
      { numRuns: 150 },
    );
  });

  it('fresh keys and messages: a signature verifies on both paths, the same over another message on neither', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (message) => {
        const { publicKey, privateKey } = ed25519Generate();
        const signature = ed25519Sign(privateKey, message);
        expect(await verdicts(publicKey, message, signature)).toEqual({ node: true, web: true });
        expect(await verdicts(publicKey, Uint8Array.of(...message, 0), signature)).toEqual({ node: false, web: false });
      }),
      { numRuns: 50 },
    );
  });

  it('key, message and signature changed by the caller after the request: the verdict is still for what it asked', async () => {
    const { publicKey, privateKey } = ed25519Generate();
    const message = fresh(80);
    const signature = ed25519Sign(privateKey, message);
    const asked = [publicKey, message, signature].map((bytes) => Uint8Array.from(bytes));
    let changed = false;
    const verdict = await webPlatform.settle(() => {
      if (!changed) {
        const [key, msg, sig] = asked;
        try {
          if (key !== undefined && msg !== undefined && sig !== undefined) webPlatform.ed25519VerifyChecked(key, msg, sig);
        } catch (e) {
          for (const bytes of asked) bytes.fill(0);
          changed = true;
          throw e;
        }
      }
      return webPlatform.ed25519VerifyChecked(publicKey, message, signature);
    });
    expect(changed).toBe(true);
    expect(verdict).toBe(true);
  });

  it('wrong lengths: false on both paths, and the web verdict is false, not a throw, even unchecked', async () => {
    const { publicKey, message, signature } = bytesOf(RFC8032[1] ?? { name: '', publicKey: '', message: '', signature: '' });
    const cases: [Uint8Array, Uint8Array][] = [
      [publicKey.subarray(0, 31), signature],
      [Uint8Array.of(...publicKey, 0), signature],
      [publicKey, signature.subarray(0, 63)],
      [publicKey, Uint8Array.of(...signature, 0)],
      [new Uint8Array(0), new Uint8Array(0)],
    ];
    for (const [key, sig] of cases) {
      expect(await verdicts(key, message, sig)).toEqual({ node: false, web: false });
      expect(await webPlatform.settle(() => webPlatform.ed25519VerifyChecked(key, message, sig))).toBe(false);
      expect(nodePlatform.ed25519VerifyChecked(key, message, sig)).toBe(false);
    }
  });

  it('a key that is no point of the curve: false on both paths, never a throw', async () => {
    const P = 2n ** 255n - 19n;
    const encode = (y: bigint): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => Number((y >> BigInt(8 * i)) & 0xffn));
    // y = 2 and y = 7: (y² - 1)/(d·y² + 1) is no square mod p, so no x exists (either sign).
    // y = p + 2: the same, written non-canonically (y ≥ p); y = p + 3: a point's y (3), non-canonical.
    const keys = [encode(2n), encode(7n), encode(2n | (1n << 255n)), encode(P + 2n), encode(P + 3n), encode(2n ** 255n - 1n)];
    const { message, signature } = bytesOf(RFC8032[0] ?? { name: '', publicKey: '', message: '', signature: '' });
    for (const key of keys) {
      expect(isSmallOrderEd25519(key)).toBe(false);
      expect(await verdicts(key, message, signature)).toEqual({ node: false, web: false });
    }
  });

  it('keys of small order, canonical or not, either sign: refused by dkms though the platforms would accept', async () => {
    const P = 2n ** 255n - 19n;
    const hexOf = (y: bigint): string => toHex(Uint8Array.from({ length: 32 }, (_, i) => Number((y >> BigInt(8 * i)) & 0xffn)));
    // The eight points, their other sign, and y + p for y = 0 and y = 1 (the only ones below 2^255).
    const keys = [...ED25519_TORSION_SUBGROUP, hexOf(P), hexOf(P + 1n)].flatMap((hex) => {
      const key = fromHex(hex);
      return [key, flipBit(key, 255)];
    });
    expect(keys).toHaveLength(20);
    const identity = fromHex(ED25519_TORSION_SUBGROUP[0] ?? '');
    // R = the identity, S = 0: the equation [S]B = R + [k]A holds for A the identity, whatever the message.
    const forged = Uint8Array.of(...identity, ...new Uint8Array(32));
    for (const key of keys) {
      expect(isSmallOrderEd25519(key)).toBe(true);
      expect(await verdicts(key, utf8('any message'), forged)).toEqual({ node: false, web: false });
    }
    for (const message of [new Uint8Array(0), utf8('any message'), fresh(100)]) {
      expect(nodePlatform.ed25519VerifyChecked(identity, message, forged)).toBe(true);
      expect(await webPlatform.settle(() => webPlatform.ed25519VerifyChecked(identity, message, forged))).toBe(true);
      expect(ed25519Verify(identity, message, forged)).toBe(false);
    }
  });
});

interface SpeccheckCase {
  readonly message: string;
  readonly publicKey: string;
  readonly signature: string;
  /** What the case tests, from the speccheck README's condition table. */
  readonly about: string;
  /** dkms's verdict on both paths: small-order keys refused, else the platform's RFC 8032 check. */
  readonly dkms: boolean;
}

// github.com/novifinancial/ed25519-speccheck, cases.json at commit 6551933 (12 cases, in order).
const SPECCHECK: readonly SpeccheckCase[] = [
  {
    about: '0: S = 0, small A and small R',
    message: '8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6',
    publicKey: 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    signature: join('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', '0000000000000000000000000000000000000000000000000000000000000000'),
    dkms: false,
  },
  {
    about: '1: 0 < S < L, small A, mixed R',
    message: '9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79',
    publicKey: 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    signature: join('f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43', 'a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04'),
    dkms: false,
  },
  {
    about: '2: 0 < S < L, mixed A, small R',
    message: 'aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab',
    publicKey: 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43',
    signature: join('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', '8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e'),
    dkms: true,
  },
  {
    about: '3: 0 < S < L, mixed A and R, passes cofactored and cofactorless',
    message: '9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79',
    publicKey: 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d',
    signature: join('9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f', '87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009'),
    dkms: true,
  },
  {
    about: '4: 0 < S < L, mixed A and R, passes cofactored only',
    message: 'e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c',
    publicKey: 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d',
    signature: join('160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed512', '5ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09'),
    dkms: false,
  },
  {
    about: '5: 0 < S < L, mixed A, R of order L, fails cofactored iff 8h pre-reduced',
    message: 'e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c',
    publicKey: 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d',
    signature: join('21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7', 'e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405'),
    dkms: false,
  },
  {
    about: '6: S > L, A and R of order L',
    message: '85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40',
    publicKey: '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623',
    signature: join('e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e', '547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514'),
    dkms: false,
  },
  {
    about: '7: S >> L, A and R of order L',
    message: '85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40',
    publicKey: '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623',
    signature: join('8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa1942', '7e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22'),
    dkms: false,
  },
  {
    about: '8: mixed A, non-canonical small R, reduced for the hash',
    message: '9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41',
    publicKey: 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43',
    signature: join('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', '03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f'),
    dkms: false,
  },
  {
    about: '9: mixed A, non-canonical small R, not reduced for the hash',
    message: '9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41',
    publicKey: 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43',
    signature: join('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', 'ca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908'),
    dkms: false,
  },
  {
    about: '10: non-canonical small A, mixed R, reduced for the hash',
    message: 'e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b',
    publicKey: 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
    signature: join('a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc', 'a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04'),
    dkms: false,
  },
  {
    about: '11: non-canonical small A, mixed R, not reduced for the hash',
    message: '39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f',
    publicKey: 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
    signature: join('a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc', 'a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04'),
    dkms: false,
  },
];

describe('Ed25519: the ed25519-speccheck vectors', () => {
  it('has the 12 cases', () => {
    expect(SPECCHECK).toHaveLength(12);
  });

  for (const vector of SPECCHECK) {
    it(`case ${vector.about}: dkms says ${vector.dkms} on both paths, and the platforms' own checks agree`, async () => {
      const { publicKey, message, signature } = bytesOf({ name: vector.about, ...vector });
      expect(await verdicts(publicKey, message, signature)).toEqual({ node: vector.dkms, web: vector.dkms });
      // Below dkms's small-order refusal: the two platforms' RFC 8032 checks alone.
      const nodeRaw = nodePlatform.ed25519VerifyChecked(publicKey, message, signature);
      const webRaw = await webPlatform.settle(() => webPlatform.ed25519VerifyChecked(publicKey, message, signature));
      expect(webRaw).toBe(nodeRaw);
    });
  }

  it('the cases dkms refuses before any curve check are exactly those with a small-order key', () => {
    const refused = SPECCHECK.filter((vector) => isSmallOrderEd25519(fromHex(vector.publicKey))).map((vector) => vector.about.split(':')[0]);
    expect(refused).toEqual(['0', '1', '10', '11']);
  });
});

// ---------------------------------------------------------------------------------------------
// base64url
// ---------------------------------------------------------------------------------------------

type Codec = Pick<typeof nodePlatform, 'base64urlEncode' | 'base64urlDecode'>;

/** Whether `text` decodes and encodes back to itself on `platform` (a throw is a refusal). */
function roundTrips(platform: Codec, text: string): boolean {
  try {
    return platform.base64urlEncode(platform.base64urlDecode(text)) === text;
  } catch {
    return false;
  }
}

function strictAccepts(text: string): boolean {
  try {
    fromBase64url(text);
    return true;
  } catch (e) {
    if (isDkmsError(e, 'BAD_INPUT')) return false;
    throw e;
  }
}

const ALPHABET = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'];

describe('base64url: the web codec as Node’s, as strict', () => {
  it('encodes as Node does, and toBase64url/fromBase64url round-trip through both', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (bytes) => {
        const text = toBase64url(bytes);
        expect(webPlatform.base64urlEncode(bytes)).toBe(text);
        expect(nodePlatform.base64urlEncode(bytes)).toBe(text);
        expect(toHex(fromBase64url(text))).toBe(toHex(bytes));
        expect(toHex(webPlatform.base64urlDecode(text))).toBe(toHex(bytes));
        expect(toHex(nodePlatform.base64urlDecode(text))).toBe(toHex(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('non-canonical tails: of "QQ"/"QR", "QUI"/"QUJ", only the canonical one round-trips, on both', () => {
    for (const [canonical, loose] of [
      ['QQ', 'QR'],
      ['QUI', 'QUJ'],
      ['AAAAQQ', 'AAAAQf'],
    ] as const) {
      for (const platform of [webPlatform, nodePlatform]) {
        expect(roundTrips(platform, canonical)).toBe(true);
        expect(roundTrips(platform, loose)).toBe(false);
      }
      expect(strictAccepts(canonical)).toBe(true);
      expect(strictAccepts(loose)).toBe(false);
    }
  });

  it('padding, the +/ alphabet, impossible lengths and stray characters: the web decoder throws or does not round-trip', () => {
    for (const text of ['QQ==', 'QUI=', 'A', 'AAAAA', '+/+/', 'ab+c', 'ab/c', ' QQ', 'QQ\n', 'Q Q', 'QQ.', '%41']) {
      expect(roundTrips(webPlatform, text)).toBe(false);
      expect(roundTrips(nodePlatform, text)).toBe(false);
      expect(strictAccepts(text)).toBe(false);
    }
  });

  it('any text: the web round trip, Node’s and fromBase64url accept exactly the same, with the same bytes', () => {
    const char = fc.constantFrom(...ALPHABET, '+', '/', '=', ' ', '.', '\n', 'é');
    fc.assert(
      fc.property(fc.string({ unit: char, maxLength: 14 }), (text) => {
        const accepted = strictAccepts(text);
        expect(roundTrips(webPlatform, text)).toBe(accepted);
        expect(roundTrips(nodePlatform, text)).toBe(accepted);
        if (accepted) expect(toHex(webPlatform.base64urlDecode(text))).toBe(toHex(fromBase64url(text)));
      }),
      { numRuns: 2000 },
    );
  });

  it('canonical text with its last character replaced: both platforms accept the same', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.constantFrom(...ALPHABET), (bytes, last) => {
        const text = toBase64url(bytes).slice(0, -1) + last;
        expect(roundTrips(webPlatform, text)).toBe(roundTrips(nodePlatform, text));
        expect(strictAccepts(text)).toBe(roundTrips(webPlatform, text));
      }),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// equalBytes, fillRandom, byteLength
// ---------------------------------------------------------------------------------------------

describe('equalBytes: both platforms agree', () => {
  it('equal arrays, one byte changed, different lengths', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 100 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (a, at, delta) => {
        const same = Uint8Array.from(a);
        expect(webPlatform.equalBytes(a, same)).toBe(true);
        expect(nodePlatform.equalBytes(a, same)).toBe(true);
        const longer = Uint8Array.of(...a, 0);
        expect(webPlatform.equalBytes(a, longer)).toBe(false);
        expect(nodePlatform.equalBytes(a, longer)).toBe(false);
        expect(webPlatform.equalBytes(longer, a)).toBe(false);
        if (a.length === 0) return;
        const changed = Uint8Array.from(a);
        changed[at % a.length] = ((changed[at % a.length] ?? 0) + delta) & 0xff;
        expect(webPlatform.equalBytes(a, changed)).toBe(false);
        expect(nodePlatform.equalBytes(a, changed)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('any two arrays: the same answer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3 }), fc.uint8Array({ maxLength: 3 }), (a, b) => {
        expect(webPlatform.equalBytes(a, b)).toBe(nodePlatform.equalBytes(a, b));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('fillRandom (web): past getRandomValues’ 65,536 bytes a call', () => {
  it('fills 100,000 bytes in place, every 65,536-byte chunk and the last bytes with something', () => {
    const bytes = new Uint8Array(100_000);
    expect(webPlatform.fillRandom(bytes)).toBe(bytes);
    for (let at = 0; at < bytes.length; at += 65_536) expect(bytes.subarray(at, at + 65_536).some((b) => b !== 0)).toBe(true);
    expect(bytes.subarray(99_000).some((b) => b !== 0)).toBe(true);
  });

  it('fills a view in place without touching the bytes around it', () => {
    const whole = new Uint8Array(70_000);
    const view = whole.subarray(1000, 68_000);
    webPlatform.fillRandom(view);
    expect(whole.subarray(0, 1000).every((b) => b === 0)).toBe(true);
    expect(whole.subarray(68_000).every((b) => b === 0)).toBe(true);
    expect(view.subarray(66_000).some((b) => b !== 0)).toBe(true);
  });
});

describe('byteLength: the UTF-8 length without encoding', () => {
  const agrees = (text: string): void => {
    expect(byteLength(text)).toBe(Buffer.byteLength(text));
    expect(byteLength(text)).toBe(utf8(text).length);
  };

  it('equals Buffer.byteLength for any code points, graphemes, and strings full of surrogates', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), agrees), { numRuns: 500 });
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), agrees), { numRuns: 500 });
    const unit = fc.oneof(fc.integer({ min: 0xd800, max: 0xdfff }), fc.integer({ min: 0, max: 0xffff })).map((c) => String.fromCharCode(c));
    fc.assert(fc.property(fc.string({ unit }), agrees), { numRuns: 1000 });
  });

  it('lone surrogates count 3 (as the U+FFFD written for them); a pair 4', () => {
    for (const text of ['\ud800', '\udc00', 'a\ud83d', '\ud83d\ude00', '\ude00\ud83d', '\ud83d\ud83d\ude00', '\udbff', 'x\udfffy', '']) agrees(text);
    expect(byteLength('\ud83d')).toBe(3);
    expect(byteLength('\ud83d\ude00')).toBe(4);
  });
});
