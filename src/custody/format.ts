/**
 * The building blocks of the custody objects (custodians.ts, requests.ts): field schemas,
 * parsing with coded errors, signatures over canonical JSON, the Shamir shares of K and the
 * sealed share. Internal: `dkms/custody` does not export it.
 */
import { z } from 'zod';
import {
  canonicalBytes,
  canonicalJson,
  decodePublicKey,
  ed25519Verify,
  fromBase64url,
  fromUtf8,
  secretFromShares,
  sharesAtPositions,
  toBase64url,
  wipe,
  type KeyAgreementKey,
  type KeyType,
  type Signer,
} from '../crypto/index.js';
import { JweSchema, anoncrypt, decrypt, didKeyAgreementKey, didKeyUrl, type Jwe } from '../didcomm/index.js';
import { DkmsError, badInput } from '../errors.js';

/** GF(2^8) has 255 non-zero x-coordinates. */
export const MAX_CUSTODIANS = 255;
export const CUSTODY_SECRET_BYTES = 32;
/** A share is the secret's length plus its x-coordinate, last. */
const SHARE_BYTES = CUSTODY_SECRET_BYTES + 1;
export const ID_BYTES = 16;

// Canonical unpadded base64url of exactly 16, 32, 33 and 64 bytes: the unused low bits are zero.
const ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;
const DIGEST = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const SHARE = /^[A-Za-z0-9_-]{44}$/;
const SIG = /^[A-Za-z0-9_-]{85}[AQgw]$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
// What a custodian reads in a terminal: no control characters, lone surrogates or bidi overrides.
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u202A-\u202E\u2066-\u2069]/u;

function decodes(key: string, type: KeyType): boolean {
  try {
    decodePublicKey(key, type);
    return true;
  } catch {
    return false;
  }
}

export const Id = z.string().regex(ID, 'must be 16 bytes of base64url');
export const Digest = z.string().regex(DIGEST, 'must be 32 bytes of base64url');
export const Sig = z.string().regex(SIG, 'must be 64 bytes of base64url');
export const Name = z.string().regex(NAME, 'must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit');
export const Time = z.iso.datetime();
export const Epoch = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
export const Index = z.number().int().min(1).max(MAX_CUSTODIANS);
export const Threshold = z.number().int().min(1).max(MAX_CUSTODIANS);
/** Text a custodian reads: 1 to `max` printable characters. */
export const Text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !UNPRINTABLE.test(s), 'must not contain control characters');
export const Multikey = (type: KeyType) =>
  z
    .string()
    .max(64)
    .refine((k) => decodes(k, type), `must be an ${type} multikey`);
/** One sealed share per custodian, by name. */
export const SealedShares = z.record(Name, JweSchema);

/** The plaintext of every sealed share: what it is a share of, and the share (x-coordinate last). */
const SharePlaintextSchema = z.strictObject({
  set: Id,
  epoch: Epoch,
  index: Index,
  name: Name,
  share: z.string().regex(SHARE, 'must be 33 bytes of base64url'),
});
export type SharePlaintext = z.infer<typeof SharePlaintextSchema>;

export const malformed = (what: string, message: string) => new DkmsError('SHARE_MALFORMED', `${what}: ${message}`);
export const foreign = (message: string) => new DkmsError('SHARE_FOREIGN', message);
export const badSignature = (message: string) => new DkmsError('SHARE_BAD_SIGNATURE', message);

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'bad shape';
  return issue.path.length === 0 ? issue.message : `${issue.path.join('.')}: ${issue.message}`;
}

/** Schema, then canonical JSON (what digests and signatures are over); `fail` makes the error. */
export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, fail: (message: string) => DkmsError): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw fail(describeIssue(parsed.error));
  try {
    canonicalJson(parsed.data);
  } catch {
    throw fail('not representable as canonical JSON');
  }
  return parsed.data;
}

/** An object this part makes: BAD_INPUT naming the first field the caller got wrong. */
export const build = <S extends z.ZodType>(schema: S, body: z.input<S>, what: string): z.output<S> =>
  parseWith(schema, body, (message) => badInput(`cannot make a ${what}: ${message}`));

export function signed<T extends object>(body: T, signer: Signer): T & { sig: string } {
  return { ...body, sig: toBase64url(signer.sign(canonicalBytes(body))) };
}

/** Whether `sig` is the signature by the Ed25519 multikey `key` of the rest of `object`. */
export function verifies(object: { readonly sig: string }, key: string): boolean {
  const { sig, ...body } = object;
  return ed25519Verify(decodePublicKey(key, 'ed25519').publicKey, canonicalBytes(body), fromBase64url(sig, 'sig'));
}

/** Shares of `secret` at x = 1…n (custodian i holds x = i): see crypto/shamir.ts. */
export const sharesAt = sharesAtPositions;

/** The secret from the first `threshold` of `shares` (x-coordinates distinct). */
export const rebuild = secretFromShares;

/** A share sealed to the X25519 multikey `kx`, whose did:key URL is the recipient's kid. */
export function sealTo(kx: string, plaintext: SharePlaintext): Jwe {
  const { publicKey } = decodePublicKey(kx, 'x25519');
  const bytes = canonicalBytes(plaintext);
  try {
    return anoncrypt(bytes, [{ kid: didKeyUrl('x25519', publicKey), publicKey }]);
  } finally {
    wipe(bytes);
  }
}

/** Opens a sealed share with `key`: `unopened()` when it does not decrypt, SHARE_MALFORMED for a bad plaintext. */
export function openShare(jwe: Jwe, key: KeyAgreementKey, unopened: () => DkmsError): SharePlaintext {
  let bytes: Uint8Array;
  try {
    bytes = decrypt(jwe, [didKeyAgreementKey(key)]).plaintext;
  } catch (e) {
    if (e instanceof DkmsError) throw unopened();
    throw e;
  }
  try {
    let json: unknown;
    try {
      json = JSON.parse(fromUtf8(bytes));
    } catch {
      throw malformed('sealed share', 'not JSON');
    }
    const plaintext = parseWith(SharePlaintextSchema, json, (message) => malformed('sealed share', message));
    const share = fromBase64url(plaintext.share, 'share');
    const x = share[SHARE_BYTES - 1];
    wipe(share);
    if (x !== plaintext.index) throw malformed('sealed share', `its x-coordinate is not its index ${plaintext.index}`);
    return plaintext;
  } finally {
    wipe(bytes);
  }
}
