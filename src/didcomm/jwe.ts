/**
 * The JWE General JSON Serialization (RFC 7516 section 7.2.1) as DIDComm v2 uses it: one
 * protected header shared by all recipients (alg, enc, epk, apu, apv, skid), and a `kid` per
 * recipient. Parsing only checks shapes and sizes; decrypt.ts decides what is acceptable.
 */
import { z } from 'zod';
import { DkmsError } from '../errors.js';
import { fromBase64url, fromUtf8, toBase64url, utf8 } from '../crypto/index.js';

export const ENCRYPTED_TYP = 'application/didcomm-encrypted+json';
export const SIGNED_TYP = 'application/didcomm-signed+json';
export const PLAIN_TYP = 'application/didcomm-plain+json';

/** Largest envelope accepted anywhere (an agency refuses bigger bodies before parsing). */
export const MAX_ENVELOPE_CHARS = 1_048_576;

const b64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9_-]*$/);
const Header = z.record(z.string().max(64), z.unknown());

export const JweSchema = z.strictObject({
  protected: b64(16_384),
  recipients: z
    .array(z.strictObject({ header: Header.optional(), encrypted_key: b64(1_024) }))
    .min(1)
    .max(1_000),
  iv: b64(64),
  ciphertext: b64(MAX_ENVELOPE_CHARS),
  tag: b64(128),
});
export type Jwe = z.infer<typeof JweSchema>;

const malformed = (message: string) => new DkmsError('ENVELOPE_MALFORMED', message);

/** Decodes a base64url protected header into a JSON object. */
export function decodeHeader(encoded: string): Record<string, unknown> {
  let header: unknown;
  try {
    header = JSON.parse(fromUtf8(fromBase64url(encoded, 'protected header')));
  } catch {
    throw malformed('the protected header is not base64url JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw malformed('the protected header is not a JSON object');
  return header as Record<string, unknown>;
}

export function encodeHeader(header: Record<string, unknown>): string {
  return toBase64url(utf8(JSON.stringify(header)));
}

/** Parses an envelope given as text, bytes or an already-parsed object. */
export function parseJwe(input: unknown): Jwe {
  const parsed = JweSchema.safeParse(toJson(input));
  if (!parsed.success) throw malformed(`not a DIDComm encrypted message: ${parsed.error.issues[0]?.message ?? 'bad shape'}`);
  return parsed.data;
}

/** JSON text or bytes become a value; anything else is taken as already parsed. */
export function toJson(input: unknown): unknown {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) return input;
  let text: string;
  try {
    text = typeof input === 'string' ? input : fromUtf8(input);
  } catch {
    throw new DkmsError('ENVELOPE_MALFORMED', 'the message is not UTF-8 text');
  }
  if (text.length > MAX_ENVELOPE_CHARS * 2) throw new DkmsError('ENVELOPE_MALFORMED', 'the message is too large');
  try {
    return JSON.parse(text);
  } catch {
    throw new DkmsError('ENVELOPE_MALFORMED', 'the message is not JSON');
  }
}
