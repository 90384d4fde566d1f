/**
 * The paper wallet (docs/recovery.md, offline recovery): the recovery secret R written down
 * as 24 BIP39 English words, and, with what a restore needs besides R (the agency endpoint and
 * the policy address), as a `dkms-recover:` text drawn as a QR code for a terminal, a PNG, an
 * SVG, or a printable page.
 *
 * Everything here handles R in clear. Buffers this module makes are wiped when it is done with
 * them; strings (the words, the paper text) cannot be, so callers keep them no longer than the
 * operation that prints or reads them.
 */
import { open } from 'node:fs/promises';
import { entropyToMnemonic, mnemonicToEntropy } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import type { PNG } from 'pngjs';
import { z } from 'zod';
import { abytes, canonicalBytes, fromBase58btc, fromBase64url, fromUtf8, toBase64url, wipe } from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { POLICY_PREFIX } from '../ledger/events.js';
import { qrCode, qrReader } from '../qr.js';
import { RECOVERY_SECRET_BYTES } from './secret.js';

export const PAPER_SCHEME = 'dkms-recover:';
/** 32 bytes of entropy and 8 bits of checksum, 11 bits a word. */
export const MNEMONIC_WORDS = 24;

// ---------------------------------------------------------------------------------------------
// The 24 words

const WORDS = new Set(wordlist);
/** BIP39 English words are unique in their first four letters, so four letters name a word. */
const BY_PREFIX = new Map(wordlist.map((word) => [word.slice(0, 4), word]));

/**
 * R as its 24-word BIP39 English mnemonic, words separated by single spaces.
 *
 * @throws DkmsError BAD_INPUT unless `secret` is 32 bytes.
 * @example mnemonicFromSecret(new Uint8Array(32)) // 'abandon abandon … art'
 */
export function mnemonicFromSecret(secret: Uint8Array): string {
  return entropyToMnemonic(abytes(secret, RECOVERY_SECRET_BYTES, 'recovery secret'), wordlist);
}

/**
 * R from its mnemonic as a person types or pastes it: any case, any whitespace or line breaks,
 * commas, numbering (`1. abandon`, `2) ability`), and each word by its first four letters.
 *
 * @throws DkmsError MNEMONIC_UNKNOWN_WORD naming the first word not in the list and its
 *   position (never a guess at the right word, which would be a word of the secret);
 *   MNEMONIC_CHECKSUM if there are not 24 words or their checksum does not match.
 * @example secretFromMnemonic('1. Aban 2. aban … 24. art') // 32 zero bytes
 */
export function secretFromMnemonic(text: string): Uint8Array {
  const words = tokens(text).map((token, i) => fullWord(token, i + 1));
  if (words.length !== MNEMONIC_WORDS) {
    const found = words.length === 1 ? '1 word' : `${words.length} words`;
    throw new DkmsError('MNEMONIC_CHECKSUM', `found ${found}; a dkms recovery phrase has ${MNEMONIC_WORDS}`);
  }
  try {
    return mnemonicToEntropy(words.join(' '), wordlist);
  } catch {
    throw new DkmsError(
      'MNEMONIC_CHECKSUM',
      'the 24 words are all in the word list but do not fit together (checksum): one is wrong or two are swapped; compare them with the paper, in order',
    );
  }
}

/** Splits typed text into candidate words, dropping numbering and punctuation around them. */
function tokens(text: string): string[] {
  return text
    .normalize('NFKD')
    .toLowerCase()
    .split(/[\s,;]+/u)
    .map((token) => token.replace(/^[(#[]?\d+[.):\]-]*/u, '').replace(/[.:;!?)-]+$/u, ''))
    .filter((token) => token !== '' && !/^[^\p{L}\p{N}]+$/u.test(token));
}

/** The list word `token` names, whole or by a prefix of at least four letters. */
function fullWord(token: string, position: number): string {
  if (WORDS.has(token)) return token;
  const candidate = token.length >= 4 ? BY_PREFIX.get(token.slice(0, 4)) : undefined;
  if (candidate?.startsWith(token)) return candidate;
  // No "did you mean": the nearest list word is most likely a word of the secret itself.
  throw new DkmsError('MNEMONIC_UNKNOWN_WORD', `word ${position}, '${printable(token)}', is not in the BIP39 English word list: check it against your paper`);
}

/** A typed word as an error message may show it: no control characters, not too long. */
function printable(token: string): string {
  const clean = token.replace(/[^\p{L}\p{N}\p{P}]/gu, '?');
  return clean.length > 16 ? `${clean.slice(0, 16)}…` : clean;
}

// ---------------------------------------------------------------------------------------------
// The paper text

/** What a restore needs: R, and where to find the owner's policy and backups. */
export interface PaperPayload {
  secret: Uint8Array;
  /** The owner's policy address (`policy:…`). */
  policy: string;
  /** The agency endpoint that keeps the owner's backups. */
  agency: string;
  /** The ledger endpoint, when the owner's is not the default. */
  ledger?: string;
  /** A name the owner gave this paper, shown when it is read back. */
  label?: string;
}

/** Canonical unpadded base64url of exactly 32 bytes: 42 characters and one whose low 2 bits are zero. */
const SECRET_TEXT = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/u;
const MAX_LABEL = 64;

function isPolicyAddress(text: string): boolean {
  if (!text.startsWith(POLICY_PREFIX)) return false;
  try {
    return fromBase58btc(text.slice(POLICY_PREFIX.length)).length === 32;
  } catch {
    return false;
  }
}

const httpUrl = z.url({ protocol: /^https?$/u }).max(2048);

const PaperSchema = z.strictObject({
  v: z.literal(1),
  r: z.string().regex(SECRET_TEXT),
  policy: z.string().max(80).refine(isPolicyAddress),
  agency: httpUrl,
  ledger: httpUrl.optional(),
  label: z
    .string()
    .max(MAX_LABEL)
    .regex(/^\P{Cc}*$/u)
    .optional(),
});
type PaperJson = z.infer<typeof PaperSchema>;

/** What is wrong, by field: our own words, so that no value (R least of all) reaches a message. */
const PROBLEMS: Readonly<Record<string, string>> = {
  v: 'was made by a newer dkms (its version is unknown)',
  r: 'holds no 32-byte recovery secret',
  policy: 'holds no policy address (policy:…)',
  agency: 'holds no http(s) agency endpoint',
  ledger: 'holds a ledger endpoint that is not an http(s) URL',
  label: `holds a label that is longer than ${MAX_LABEL} characters or has control characters`,
};

function paperJson(value: unknown, code: 'BAD_INPUT' | 'PAPER_MALFORMED'): PaperJson {
  const parsed = PaperSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const field = parsed.error.issues[0]?.path[0];
  const problem = (typeof field === 'string' ? PROBLEMS[field] : undefined) ?? 'is not one dkms understands';
  throw new DkmsError(code, `the recovery paper ${problem}`);
}

/**
 * The paper text: `dkms-recover:` and base64url of the canonical JSON
 * `{v: 1, r, policy, agency, ledger?, label?}`, R in base64url as `r`.
 *
 * @throws DkmsError BAD_INPUT if a field could not be read back by `decodePaperText`.
 */
export function encodePaperText(p: PaperPayload): string {
  const r = toBase64url(abytes(p.secret, RECOVERY_SECRET_BYTES, 'recovery secret'));
  const json = paperJson({ v: 1, r, policy: p.policy, agency: p.agency, ...optional(p) }, 'BAD_INPUT');
  const bytes = canonicalBytes(json);
  try {
    return `${PAPER_SCHEME}${toBase64url(bytes)}`;
  } finally {
    wipe(bytes);
  }
}

/** The optional fields that are set: canonical JSON has no `undefined`. */
function optional(p: Pick<PaperPayload, 'ledger' | 'label'>): Pick<PaperPayload, 'ledger' | 'label'> {
  return { ...(p.ledger === undefined ? {} : { ledger: p.ledger }), ...(p.label === undefined ? {} : { label: p.label }) };
}

/**
 * Reads paper text as scanned or pasted (surrounding whitespace ignored).
 *
 * @throws DkmsError PAPER_MALFORMED if it is not a dkms recovery paper, is damaged, or a field
 *   is invalid (the message names the field, never its value).
 */
export function decodePaperText(text: string): PaperPayload {
  const trimmed = text.trim();
  if (!trimmed.startsWith(PAPER_SCHEME)) throw new DkmsError('PAPER_MALFORMED', `a dkms recovery paper starts with '${PAPER_SCHEME}'`);
  let value: unknown;
  let bytes: Uint8Array | undefined;
  try {
    bytes = fromBase64url(trimmed.slice(PAPER_SCHEME.length), 'recovery paper');
    value = JSON.parse(fromUtf8(bytes));
  } catch {
    throw new DkmsError('PAPER_MALFORMED', 'the recovery paper is damaged (was the whole code scanned or copied?)');
  } finally {
    wipe(bytes);
  }
  const json = paperJson(value, 'PAPER_MALFORMED');
  return { secret: fromBase64url(json.r), policy: json.policy, agency: json.agency, ...optional(json) };
}

// ---------------------------------------------------------------------------------------------
// Drawing the QR code

/** Medium error correction: survives a crease or a stain and keeps the code small enough to print. */
const ERROR_CORRECTION = 'M';
/** Quiet zone the QR specification asks for, in modules. */
const MARGIN = 4;

/** Refuses to draw anything but paper text: a QR of the wrong text would fail only at restore. */
function assertPaperText(text: string): string {
  if (!text.startsWith(PAPER_SCHEME)) throw badInput(`paper text starts with '${PAPER_SCHEME}'`);
  return text;
}

/** The QR code in half-block characters, for a terminal. */
export async function paperQrTerminal(text: string): Promise<string> {
  return (await qrCode()).toString(assertPaperText(text), { type: 'terminal', small: true, errorCorrectionLevel: ERROR_CORRECTION });
}

/** The QR code as a PNG, 8 pixels a module: large enough for a phone camera after printing. */
export async function paperQrPng(text: string): Promise<Uint8Array> {
  return (await qrCode()).toBuffer(assertPaperText(text), { type: 'png', errorCorrectionLevel: ERROR_CORRECTION, margin: MARGIN, scale: 8 });
}

/** The QR code as a standalone SVG document. */
export async function paperQrSvg(text: string): Promise<string> {
  return (await qrCode()).toString(assertPaperText(text), { type: 'svg', errorCorrectionLevel: ERROR_CORRECTION, margin: MARGIN });
}

// ---------------------------------------------------------------------------------------------
// The printable page

export interface PaperPage {
  /** The paper text (`encodePaperText`), drawn as the QR code. */
  text: string;
  /** The 24 words (`mnemonicFromSecret`). */
  mnemonic: string;
  policy: string;
  agency: string;
  ledger?: string;
  label?: string;
  /** When the paper was made, as the page shows it. */
  created: string;
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/gu, (c) => ESCAPES[c] ?? c);
}

// The page loads nothing: the CSP forbids every fetch, the QR is inline SVG, the style inline.
const PAGE_STYLE = `
  @page { size: A4; margin: 15mm; }
  body { font: 11pt/1.4 system-ui, sans-serif; color: #000; background: #fff; max-width: 180mm; margin: 0 auto; }
  h1 { font-size: 18pt; margin: 0 0 2mm; }
  .warning { border: 2px solid #000; padding: 3mm; font-weight: bold; }
  .code { display: flex; gap: 8mm; align-items: flex-start; break-inside: avoid; }
  .qr svg { width: 60mm; height: 60mm; }
  ol.words { list-style: none; padding: 0; margin: 0; display: grid; grid-template-columns: repeat(4, 1fr); gap: 1mm 4mm; flex: 1; }
  ol.words li { font: 12pt/1.6 ui-monospace, monospace; border-bottom: 1px solid #999; }
  ol.words .n { display: inline-block; width: 2.2em; color: #555; }
  dt { font-weight: bold; }
  dd { margin: 0 0 2mm; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
  code { font-family: ui-monospace, monospace; }
  @media print { body { max-width: none; } }
`;

/**
 * A self-contained printable HTML page: the QR code, the 24 words numbered, where to restore,
 * and what to do with the paper. Every value is HTML-escaped.
 *
 * @throws DkmsError BAD_INPUT unless `mnemonic` has 24 words or `text` is paper text.
 */
export async function paperHtml(p: PaperPage): Promise<string> {
  const words = p.mnemonic.trim().split(/\s+/u);
  if (words.length !== MNEMONIC_WORDS) throw badInput(`a recovery phrase has ${MNEMONIC_WORDS} words, got ${words.length}`);
  const svg = await paperQrSvg(p.text);
  const title = p.label === undefined ? 'dkms recovery paper' : `dkms recovery paper: ${p.label}`;
  const items = words.map((word, i) => `<li><span class="n">${i + 1}.</span>${escapeHtml(word)}</li>`).join('');
  const ledger = p.ledger === undefined ? '' : `<dt>Ledger</dt><dd>${escapeHtml(p.ledger)}</dd>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>Created ${escapeHtml(p.created)}</p>
<p class="warning">Keep this paper like cash. Anyone who holds it can take over this identity: its keys, its agents and its backups.</p>
<p>This paper holds the recovery secret of a dkms identity. If every device of that identity is lost, it restores the identity on a new one.</p>
<div class="code"><div class="qr">${svg}</div><ol class="words">${items}</ol></div>
<dl>
<dt>Agency</dt><dd>${escapeHtml(p.agency)}</dd>
<dt>Policy</dt><dd>${escapeHtml(p.policy)}</dd>
${ledger}
</dl>
<h2>Storing it</h2>
<p>Store it offline: on paper only, in a safe place such as a safe or a sealed envelope with someone you trust. Do not photograph it, scan it or keep a copy on a computer or in the cloud.</p>
<h2>Restoring</h2>
<p>On the new device, run <code>dkms recovery restore --qr FILE</code>, where FILE is a PNG image of the QR code or a text file with the <code>${escapeHtml(PAPER_SCHEME)}</code> line a QR scanner app reads from it; or run <code>dkms recovery restore --mnemonic</code> and type the words when it asks (never on the command line, where other programs can read them; case does not matter, and the first four letters of each word are enough).</p>
<p>After a change of trustees or a new <code>dkms recovery setup</code>, an older paper no longer works: print the new one and destroy this one.</p>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// Reading a paper back from a file

const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
/** Larger than any scan of a QR code; stops a wrong path from reading a disk image into memory. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;
/** Decoded pixels allowed (4 bytes each): a small PNG may declare a huge image. */
const MAX_PIXELS = 40_000_000;

/**
 * The paper in a file given to `--qr`: a PNG image of the QR code (as `paperQrPng` writes it,
 * or a scan), or a text file holding the `dkms-recover:` line (as a phone's QR scanner saves
 * it). An SVG is refused: reading one back would mean rasterizing it.
 *
 * @throws DkmsError IO_ERROR if the file cannot be read; PAPER_MALFORMED if it holds no paper.
 */
export async function readPaperFile(path: string): Promise<PaperPayload> {
  const bytes = await readSmallFile(path);
  try {
    return decodePaperText(isPng(bytes) ? await qrTextOfPng(bytes, path) : paperLineOf(bytes, path));
  } finally {
    wipe(bytes);
  }
}

async function readSmallFile(path: string): Promise<Uint8Array> {
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      if (size > MAX_FILE_BYTES) throw new DkmsError('PAPER_MALFORMED', `${path} is too large to be a recovery paper`);
      return await file.readFile();
    } finally {
      await file.close();
    }
  } catch (e) {
    if (e instanceof DkmsError) throw e;
    const reason = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new DkmsError('IO_ERROR', `cannot read ${path}: ${reason}`, { cause: e });
  }
}

function isPng(bytes: Uint8Array): boolean {
  return bytes.length > PNG_SIGNATURE.length && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

/** The text of the QR code in a PNG image. */
async function qrTextOfPng(bytes: Uint8Array, path: string): Promise<string> {
  // IHDR comes first: width and height, big-endian, at bytes 16 and 20.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24 || view.getUint32(16) * view.getUint32(20) > MAX_PIXELS) {
    throw new DkmsError('PAPER_MALFORMED', `${path} is not a PNG image dkms can read`);
  }
  const { readPng, jsQR } = await qrReader();
  let image: PNG;
  try {
    image = readPng(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch {
    throw new DkmsError('PAPER_MALFORMED', `${path} is a damaged PNG image`);
  }
  try {
    const found = jsQR(new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.byteLength), image.width, image.height);
    if (found === null)
      throw new DkmsError('PAPER_MALFORMED', `no QR code found in ${path}: try a sharper, straighter image, or type the words with --mnemonic`);
    return found.data;
  } finally {
    wipe(image.data);
  }
}

/** The one `dkms-recover:` line of a text file. */
function paperLineOf(bytes: Uint8Array, path: string): string {
  let text: string;
  try {
    text = fromUtf8(bytes);
  } catch {
    throw new DkmsError('PAPER_MALFORMED', `${path} is neither a PNG image of the QR code nor a text file with the '${PAPER_SCHEME}' line`);
  }
  if (/<svg[\s>]/u.test(text)) {
    throw new DkmsError('PAPER_MALFORMED', `${path} is an SVG image, which dkms does not read: use the PNG, or type the words with --mnemonic`);
  }
  const lines = text
    .split(/\r?\n/u)
    .map((line) => line.trim())
    .filter((line) => line.startsWith(PAPER_SCHEME));
  if (lines.length !== 1) {
    const found = lines.length === 0 ? 'no' : 'more than one';
    throw new DkmsError('PAPER_MALFORMED', `${path} has ${found} '${PAPER_SCHEME}' line: give the PNG image of the QR code or a text file with exactly one`);
  }
  return lines[0] ?? '';
}
