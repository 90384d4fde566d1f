/**
 * The paper wallet: R as 24 BIP39 words and as `dkms-recover:` text in a QR code. The words are
 * checked against the BIP39 specification's vectors and read back however a person types them;
 * the paper text round-trips and refuses anything else; a PNG the module draws is read back
 * from disk; the printable page escapes what it shows. No error message ever carries R.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { PNG } from 'pngjs';
import QRCode from 'qrcode';
import { describe, expect, it } from 'vitest';
import { canonicalBytes, fromHex, randomBytes, toBase58btc, toBase64url, toHex } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import {
  MNEMONIC_WORDS,
  PAPER_SCHEME,
  decodePaperText,
  encodePaperText,
  mnemonicFromSecret,
  paperHtml,
  paperQrPng,
  paperQrSvg,
  paperQrTerminal,
  readPaperFile,
  secretFromMnemonic,
  type PaperPayload,
} from '../../src/recovery/paper.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

/** From the BIP39 specification's English test vectors (the 256-bit entries). */
const VECTORS = [
  {
    entropy: '00'.repeat(32),
    mnemonic: `${'abandon '.repeat(23)}art`,
  },
  {
    entropy: '7f'.repeat(32),
    mnemonic:
      'legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title',
  },
];
const ZEROS = VECTORS[0] as (typeof VECTORS)[number];
const LEGAL = VECTORS[1] as (typeof VECTORS)[number];

const secretArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

function policyAddress(): string {
  return `policy:${toBase58btc(randomBytes(32))}`;
}

function payload(overrides: Partial<PaperPayload> = {}): PaperPayload {
  return { secret: randomBytes(32), policy: policyAddress(), agency: 'https://agency.example.com', ...overrides };
}

/** The paper text of an arbitrary JSON value, as a forger would write it. */
function paperTextOf(value: unknown): string {
  return `${PAPER_SCHEME}${toBase64url(canonicalBytes(value))}`;
}

/** The message of the DkmsError `fn` throws. */
function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof DkmsError) return e.message;
    throw e;
  }
  throw new Error('expected a DkmsError, but nothing was thrown');
}

function withWord(mnemonic: string, position: number, word: string): string {
  const words = mnemonic.split(' ');
  words[position - 1] = word;
  return words.join(' ');
}

// ---------------------------------------------------------------------------------------------
// The 24 words

describe('mnemonic', () => {
  it.each(VECTORS)('matches the BIP39 vector for $entropy', ({ entropy, mnemonic }) => {
    expect(mnemonicFromSecret(fromHex(entropy))).toBe(mnemonic);
    expect(toHex(secretFromMnemonic(mnemonic))).toBe(entropy);
  });

  it('has 24 words and reads back for any secret', () => {
    fc.assert(
      fc.property(secretArb, (secret) => {
        const mnemonic = mnemonicFromSecret(secret);
        expect(mnemonic.split(' ')).toHaveLength(MNEMONIC_WORDS);
        expect(secretFromMnemonic(mnemonic)).toEqual(secret);
      }),
    );
  });

  it('reads back however the words are typed: case, numbering, separators, four-letter prefixes', () => {
    const style = fc.constantFrom('plain', 'upper', 'capital', 'prefix', 'dot', 'paren');
    const separator = fc.constantFrom(' ', '\n', ', ', ' \t ', '\r\n', ',');
    fc.assert(
      fc.property(secretArb, fc.array(style, { minLength: 24, maxLength: 24 }), separator, (secret, styles, sep) => {
        const typed = mnemonicFromSecret(secret)
          .split(' ')
          .map((word, i) => {
            switch (styles[i]) {
              case 'upper':
                return word.toUpperCase();
              case 'capital':
                return `${word.charAt(0).toUpperCase()}${word.slice(1)}`;
              case 'prefix':
                return word.slice(0, 4);
              case 'dot':
                return `${i + 1}. ${word}`;
              case 'paren':
                return `${i + 1}) ${word}`;
              default:
                return word;
            }
          })
          .join(sep);
        expect(secretFromMnemonic(`  ${typed}\n`)).toEqual(secret);
      }),
    );
  });

  it('reads a numbered, mixed-case list as it is copied off the paper', () => {
    const lines = ZEROS.mnemonic.split(' ').map((word, i) => `${i + 1}. ${i % 2 === 0 ? word.toUpperCase() : word},`);
    expect(toHex(secretFromMnemonic(lines.join('\n')))).toBe(ZEROS.entropy);
    expect(toHex(secretFromMnemonic(`1)${ZEROS.mnemonic.replaceAll(' ', ' 2) ')}`))).toBe(ZEROS.entropy);
  });

  it('takes every word by its first four letters', () => {
    const prefixes = LEGAL.mnemonic
      .split(' ')
      .map((word) => word.slice(0, 4))
      .join(' ');
    expect(prefixes).toContain('lega winn than year wave saus wort usef');
    expect(toHex(secretFromMnemonic(prefixes))).toBe(LEGAL.entropy);
    expect(toHex(secretFromMnemonic(withWord(LEGAL.mnemonic, 6, 'sausa')))).toBe(LEGAL.entropy);
  });

  it('names an unknown word and its position, and never guesses the right word (a word of the secret)', () => {
    const error = expectCode(() => secretFromMnemonic(withWord(ZEROS.mnemonic, 7, 'abandn')), 'MNEMONIC_UNKNOWN_WORD');
    expect(error.message).toBe("word 7, 'abandn', is not in the BIP39 English word list: check it against your paper");
    expect(error.message).not.toContain('abandon');
  });

  it('counts positions after numbering', () => {
    const numbered = ZEROS.mnemonic
      .split(' ')
      .map((word, i) => `${i + 1}. ${i === 11 ? 'legel' : word}`)
      .join(' ');
    expect(messageOf(() => secretFromMnemonic(numbered))).toBe("word 12, 'legel', is not in the BIP39 English word list: check it against your paper");
    const last = expectCode(() => secretFromMnemonic(withWord(ZEROS.mnemonic, 24, 'abndn')), 'MNEMONIC_UNKNOWN_WORD');
    expect(last.message).toBe("word 24, 'abndn', is not in the BIP39 English word list: check it against your paper");
  });

  it('does not take a three-letter prefix, which may name several words', () => {
    const error = expectCode(() => secretFromMnemonic(withWord(ZEROS.mnemonic, 1, 'aba')), 'MNEMONIC_UNKNOWN_WORD');
    expect(error.message).toContain("word 1, 'aba',");
  });

  it.each([
    ['23 words', ZEROS.mnemonic.split(' ').slice(1).join(' '), 'found 23 words'],
    ['25 words', `${ZEROS.mnemonic} abandon`, 'found 25 words'],
    ['12 words', `${'abandon '.repeat(11)}about`, 'found 12 words'],
    ['one word', 'abandon', 'found 1 word;'],
    ['nothing', ' \n ', 'found 0 words'],
  ])('refuses %s with MNEMONIC_CHECKSUM, saying how many it found', (_name, text, found) => {
    const error = expectCode(() => secretFromMnemonic(text), 'MNEMONIC_CHECKSUM');
    expect(error.message).toContain(found);
    expect(error.message).toContain('24');
  });

  it.each([
    ['two words swapped', `winner legal ${LEGAL.mnemonic.split(' ').slice(2).join(' ')}`],
    ['the last word changed', withWord(ZEROS.mnemonic, 24, 'abandon')],
    ['the first word changed', withWord(LEGAL.mnemonic, 1, 'winner')],
  ])('refuses %s with MNEMONIC_CHECKSUM', (_name, text) => {
    expect(expectCode(() => secretFromMnemonic(text), 'MNEMONIC_CHECKSUM').message).toContain('checksum');
  });

  it('refuses a secret that is not 32 bytes', () => {
    expectCode(() => mnemonicFromSecret(new Uint8Array(16)), 'BAD_INPUT');
  });

  it('never puts the secret or the phrase in an error message', () => {
    fc.assert(
      fc.property(secretArb, fc.integer({ min: 1, max: 24 }), (secret, position) => {
        const mnemonic = mnemonicFromSecret(secret);
        const words = mnemonic.split(' ');
        const swapped = [...words];
        [swapped[0], swapped[position - 1]] = [words[position - 1] ?? '', words[0] ?? ''];
        const attempts = [words.slice(1).join(' '), withWord(mnemonic, position, 'zzzzx'), swapped.join(' ')];
        for (const attempt of attempts) {
          let message: string;
          try {
            secretFromMnemonic(attempt);
            continue; // a swap of equal words, or one that keeps the checksum
          } catch (e) {
            expect(e).toBeInstanceOf(DkmsError);
            message = (e as Error).message;
          }
          expect(message).not.toContain(toHex(secret));
          expect(message).not.toContain(toBase64url(secret));
          expect(message).not.toContain(words.slice(0, 3).join(' '));
        }
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The paper text

describe('paper text', () => {
  it('round-trips any payload', () => {
    const arb = fc.record(
      {
        secret: secretArb,
        policy: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((d) => `policy:${toBase58btc(d)}`),
        agency: fc.webUrl({ validSchemes: ['http', 'https'] }),
        ledger: fc.webUrl({ validSchemes: ['https'] }),
        label: fc.string({ maxLength: 64 }),
      },
      { requiredKeys: ['secret', 'policy', 'agency'] },
    );
    fc.assert(
      fc.property(arb, (given) => {
        const text = encodePaperText(given);
        expect(text.startsWith(PAPER_SCHEME)).toBe(true);
        expect(decodePaperText(text)).toEqual(given);
      }),
    );
  });

  it('is canonical JSON with R in base64url as r', () => {
    const p = payload({ ledger: 'https://ledger.example.com', label: 'home' });
    const text = encodePaperText(p);
    const expected = paperTextOf({ v: 1, r: toBase64url(p.secret), policy: p.policy, agency: p.agency, ledger: p.ledger, label: p.label });
    expect(text).toBe(expected);
    expect(decodePaperText(`\n  ${text}  \r\n`)).toEqual(p);
  });

  const good = () => ({ v: 1, r: toBase64url(randomBytes(32)), policy: policyAddress(), agency: 'https://agency.example.com' });

  it.each([
    ['a newer version', { v: 2 }, 'version'],
    ['a 31-byte secret', { r: toBase64url(new Uint8Array(31)) }, 'recovery secret'],
    ['a 33-byte secret', { r: toBase64url(new Uint8Array(33)) }, 'recovery secret'],
    ['a secret that is not base64url', { r: `${'A'.repeat(42)}=` }, 'recovery secret'],
    ['a non-canonical secret', { r: `${'A'.repeat(42)}B` }, 'recovery secret'],
    ['no secret', { r: undefined }, 'recovery secret'],
    ['a policy without its prefix', { policy: toBase58btc(new Uint8Array(32)) }, 'policy address'],
    ['a policy address that is not a digest', { policy: 'policy:abc' }, 'policy address'],
    ['a DID for a policy', { policy: `did:dkms:${toBase58btc(new Uint8Array(32))}` }, 'policy address'],
    ['an ftp agency', { agency: 'ftp://agency.example.com' }, 'agency endpoint'],
    ['an agency that is no URL', { agency: 'agency.example.com' }, 'agency endpoint'],
    ['a javascript: ledger', { ledger: 'javascript:alert(1)' }, 'ledger endpoint'],
    ['a 65-character label', { label: 'x'.repeat(65) }, 'label'],
    ['a label with an escape sequence', { label: 'home\u001b[2J' }, 'label'],
    ['an unknown field', { extra: 'x' }, 'is not one dkms understands'],
  ])('refuses a paper with %s, naming the field', (_name, change, field) => {
    const fields = Object.entries({ ...good(), ...change }).filter(([, value]) => value !== undefined);
    const error = expectCode(() => decodePaperText(paperTextOf(Object.fromEntries(fields))), 'PAPER_MALFORMED');
    expect(error.message).toContain(field);
  });

  it.each([
    ['another scheme', 'dkms-pair:eyJ2IjoxfQ'],
    ['a web address', 'https://example.com/'],
    ['a damaged payload', `${PAPER_SCHEME}!!!`],
    ['a cut-off payload', encodePaperText(payload()).slice(0, 60)],
    ['a payload that is not JSON', `${PAPER_SCHEME}${toBase64url(new TextEncoder().encode('not json'))}`],
    ['a JSON array', paperTextOf([1, 2])],
    ['nothing', ''],
  ])('refuses %s with PAPER_MALFORMED', (_name, text) => {
    expectCode(() => decodePaperText(text), 'PAPER_MALFORMED');
  });

  it('never puts the secret in a message about a bad paper', () => {
    const secret = randomBytes(32);
    const r = toBase64url(secret);
    for (const change of [{ v: 3 }, { agency: 'nope' }, { label: 'y'.repeat(80) }, { policy: r }, { extra: r }]) {
      const message = messageOf(() => decodePaperText(paperTextOf({ ...good(), r, ...change })));
      expect(message).not.toContain(r);
      expect(message).not.toContain(toHex(secret));
    }
  });

  it('will not write a paper it could not read back', () => {
    expectCode(() => encodePaperText(payload({ secret: new Uint8Array(31) })), 'BAD_INPUT');
    expectCode(() => encodePaperText(payload({ agency: 'file:///etc/passwd' })), 'BAD_INPUT');
    expectCode(() => encodePaperText(payload({ policy: 'policy:' })), 'BAD_INPUT');
    expectCode(() => encodePaperText(payload({ label: 'z'.repeat(65) })), 'BAD_INPUT');
  });
});

// ---------------------------------------------------------------------------------------------
// QR codes and files

describe('QR code and paper files', () => {
  it('reads back the PNG it draws', async () => {
    const dir = tempDir();
    const p = payload({ ledger: 'https://ledger.example.com:8443/v1', label: 'Ana’s laptop' });
    const file = join(dir, 'paper.png');
    await writeFile(file, await paperQrPng(encodePaperText(p)));
    expect(await readPaperFile(file)).toEqual(p);
  });

  it('reads a text file as a QR scanner app saves it', async () => {
    const dir = tempDir();
    const p = payload();
    const bare = join(dir, 'scan.txt');
    await writeFile(bare, `${encodePaperText(p)}\n`);
    expect(await readPaperFile(bare)).toEqual(p);
    const withNotes = join(dir, 'notes.txt');
    await writeFile(withNotes, `Scanned 2024-05-01\r\n  ${encodePaperText(p)}  \r\nQR Code\r\n`);
    expect(await readPaperFile(withNotes)).toEqual(p);
  });

  it('refuses a PNG whose QR code holds something else', async () => {
    const file = join(tempDir(), 'other.png');
    await writeFile(file, await QRCode.toBuffer('https://example.com/menu', { type: 'png' }));
    const error = await expectCodeAsync(readPaperFile(file), 'PAPER_MALFORMED');
    expect(error.message).toContain(PAPER_SCHEME);
  });

  it('refuses a PNG with no QR code', async () => {
    const image = new PNG({ width: 64, height: 64 });
    image.data.fill(255);
    const file = join(tempDir(), 'blank.png');
    await writeFile(file, PNG.sync.write(image));
    expect((await expectCodeAsync(readPaperFile(file), 'PAPER_MALFORMED')).message).toContain('no QR code');
  });

  it('refuses a damaged PNG', async () => {
    const png = await paperQrPng(encodePaperText(payload()));
    const file = join(tempDir(), 'cut.png');
    await writeFile(file, png.subarray(0, Math.floor(png.length / 2)));
    await expectCodeAsync(readPaperFile(file), 'PAPER_MALFORMED');
  });

  it('refuses an SVG, pointing to the PNG or the words', async () => {
    const file = join(tempDir(), 'paper.svg');
    await writeFile(file, await paperQrSvg(encodePaperText(payload())));
    const error = await expectCodeAsync(readPaperFile(file), 'PAPER_MALFORMED');
    expect(error.message).toContain('SVG');
    expect(error.message).toContain('--mnemonic');
  });

  it.each([
    ['random bytes', () => randomBytes(2000)],
    ['text without a paper line', () => new TextEncoder().encode('hello\nworld\n')],
    ['an empty file', () => new Uint8Array(0)],
    ['two paper lines', () => new TextEncoder().encode(`${encodePaperText(payload())}\n${encodePaperText(payload())}\n`)],
    ['a damaged paper line', () => new TextEncoder().encode(`${PAPER_SCHEME}AAAA\n`)],
  ])('refuses a file with %s as PAPER_MALFORMED', async (_name, contents) => {
    const file = join(tempDir(), 'paper');
    await writeFile(file, contents());
    await expectCodeAsync(readPaperFile(file), 'PAPER_MALFORMED');
  });

  it('reports a missing file as IO_ERROR naming it', async () => {
    const file = join(tempDir(), 'nowhere.png');
    const error = await expectCodeAsync(readPaperFile(file), 'IO_ERROR');
    expect(error.message).toContain(file);
  });

  it('draws a terminal QR code and an SVG only of paper text', async () => {
    const text = encodePaperText(payload());
    expect((await paperQrTerminal(text)).split('\n').length).toBeGreaterThan(20);
    expect(await paperQrSvg(text)).toMatch(/^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/u);
    await expectCodeAsync(paperQrTerminal('https://example.com'), 'BAD_INPUT');
    await expectCodeAsync(paperQrPng('hello'), 'BAD_INPUT');
    await expectCodeAsync(paperQrSvg(''), 'BAD_INPUT');
  });
});

// ---------------------------------------------------------------------------------------------
// The printable page

describe('printable page', () => {
  async function page(overrides: { label?: string; ledger?: string } = {}): Promise<{ html: string; p: PaperPayload; mnemonic: string }> {
    const p = payload(overrides);
    const mnemonic = mnemonicFromSecret(p.secret);
    const html = await paperHtml({ text: encodePaperText(p), mnemonic, policy: p.policy, agency: p.agency, ...overrides, created: '2024-05-01T10:00:00Z' });
    return { html, p, mnemonic };
  }

  it('shows the 24 words numbered in order, the agency, the policy and the QR code', async () => {
    const { html, p, mnemonic } = await page({ ledger: 'https://ledger.example.com' });
    let from = 0;
    mnemonic.split(' ').forEach((word, i) => {
      const at = html.indexOf(`<span class="n">${i + 1}.</span>${word}</li>`, from);
      expect(at, `word ${i + 1}`).toBeGreaterThan(from);
      from = at;
    });
    expect(html).toContain(p.agency);
    expect(html).toContain(p.policy);
    expect(html).toContain('https://ledger.example.com');
    expect(html).toContain('2024-05-01T10:00:00Z');
    expect(html).toMatch(/<svg[^>]*viewBox/u);
  });

  it('says what the paper is, how to keep it and how to restore', async () => {
    const { html } = await page();
    expect(html).toContain('like cash');
    expect(html).toContain('offline');
    expect(html).toContain('dkms recovery restore --qr FILE');
    expect(html).toContain('dkms recovery restore --mnemonic');
    expect(html).toContain('dkms recovery setup');
    expect(html).toMatch(/older paper no longer works/u);
  });

  it('escapes a label holding markup', async () => {
    const { html } = await page({ label: '<script>alert("x")</script>&' });
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;');
  });

  it('loads nothing from elsewhere', async () => {
    const { html } = await page();
    expect(html).toContain("default-src 'none'");
    expect(html).not.toMatch(/\s(src|href)=/u);
    expect(html).not.toMatch(/@import|url\(/u);
  });

  it('refuses a mnemonic that is not 24 words', async () => {
    const p = payload();
    const mnemonic = mnemonicFromSecret(p.secret).split(' ').slice(0, 12).join(' ');
    await expectCodeAsync(paperHtml({ text: encodePaperText(p), mnemonic, policy: p.policy, agency: p.agency, created: 'today' }), 'BAD_INPUT');
  });
});
