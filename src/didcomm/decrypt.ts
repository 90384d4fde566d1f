/**
 * Decrypting DIDComm v2 messages, anoncrypt or authcrypt. Every failure has its own code:
 * ENVELOPE_MALFORMED (not a JWE, bad header, no apv, authcrypt naming a skid without apu),
 * ENVELOPE_UNSUPPORTED (an algorithm or curve we do not accept), ENVELOPE_NOT_FOR_US (no
 * recipient is one of our keys), ENVELOPE_UNKNOWN_SENDER (authcrypt from a key we cannot
 * resolve), ENVELOPE_TAMPERED (a key, header, IV, ciphertext or tag that does not authenticate).
 * No plaintext is released before authentication.
 */
import { z } from 'zod';
import {
  CONTENT_ENCRYPTIONS,
  JwaError,
  aesKeyUnwrap,
  decryptContent,
  equalBytes,
  fromBase64url,
  fromUtf8,
  utf8,
  wipe,
  memoryKeyAgreementKey,
  type ContentEncryption,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { ANON_ALG, AUTH_ALG, deriveKek, type KeyAgreementAlg } from './ecdh.js';
import { recipientsDigest } from './encrypt.js';
import { decodeHeader, parseJwe, type Jwe } from './jwe.js';
import { didKeyPublicKey, okpPublicKey, type AgreementKey } from './keys.js';

export interface Decrypted {
  readonly plaintext: Uint8Array;
  readonly alg: KeyAgreementAlg;
  readonly enc: ContentEncryption;
  /** Which of our keys it was encrypted to. */
  readonly recipientKid: string;
  /** Every recipient's key id, as listed in the envelope. */
  readonly recipients: readonly string[];
  /** The authenticated sender's key id (authcrypt only). */
  readonly senderKid?: string;
  readonly typ?: string;
  readonly cty?: string;
}

/** Resolves an authcrypt sender's key id to its X25519 public key; undefined if unknown. */
export type SenderResolver = (skid: string) => Uint8Array | undefined;

const b64 = z
  .string()
  .max(1024)
  .regex(/^[A-Za-z0-9_-]*$/);
const HeaderSchema = z.object({
  typ: z.string().max(128).optional(),
  cty: z.string().max(128).optional(),
  alg: z.string().max(64),
  enc: z.string().max(64),
  epk: z.unknown(),
  apu: b64.optional(),
  apv: b64.optional(),
  skid: z.string().max(512).optional(),
  kid: z.string().max(512).optional(),
  crit: z.unknown().optional(),
});

const code = (c: 'ENVELOPE_MALFORMED' | 'ENVELOPE_UNSUPPORTED' | 'ENVELOPE_NOT_FOR_US' | 'ENVELOPE_UNKNOWN_SENDER' | 'ENVELOPE_TAMPERED', message: string) =>
  new DkmsError(c, message);

/** The protected header merged with one recipient's header; a name in both is refused (RFC 7516 7.2.1). */
function joseHeader(protectedHeader: Record<string, unknown>, recipientHeader: Record<string, unknown> | undefined) {
  for (const name of Object.keys(recipientHeader ?? {})) {
    if (Object.hasOwn(protectedHeader, name)) throw code('ENVELOPE_MALFORMED', `header parameter '${name}' is both protected and unprotected`);
  }
  const parsed = HeaderSchema.safeParse({ ...protectedHeader, ...recipientHeader });
  if (!parsed.success)
    throw code('ENVELOPE_MALFORMED', `bad JWE header: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`.trim());
  const header = parsed.data;
  if (header.crit !== undefined) throw code('ENVELOPE_UNSUPPORTED', 'critical header extensions are not supported');
  if (header.alg !== ANON_ALG && header.alg !== AUTH_ALG) throw code('ENVELOPE_UNSUPPORTED', `key management algorithm '${header.alg}' is not supported`);
  if (!(CONTENT_ENCRYPTIONS as readonly string[]).includes(header.enc))
    throw code('ENVELOPE_UNSUPPORTED', `content encryption '${header.enc}' is not supported`);
  if (header.alg === AUTH_ALG && header.enc !== 'A256CBC-HS512') throw code('ENVELOPE_UNSUPPORTED', 'authcrypt requires A256CBC-HS512');
  return { ...header, alg: header.alg as KeyAgreementAlg, enc: header.enc as ContentEncryption };
}

function decodeB64(value: string | undefined, what: string): Uint8Array | undefined {
  if (value === undefined) return undefined;
  try {
    return fromBase64url(value, what);
  } catch {
    throw code('ENVELOPE_MALFORMED', `${what} is not base64url`);
  }
}

/** The sender's static key for authcrypt: skid (or, failing it, apu) names it, apu must be present and agree, and it must resolve. */
function senderKey(header: ReturnType<typeof joseHeader>, resolve: SenderResolver): { skid: string; publicKey: Uint8Array } {
  let apuKid: string | undefined;
  try {
    apuKid = header.apu === undefined ? undefined : fromUtf8(decodeB64(header.apu, 'apu') as Uint8Array);
  } catch (e) {
    if (e instanceof DkmsError && e.code === 'ENVELOPE_MALFORMED') throw e;
    throw code('ENVELOPE_MALFORMED', 'apu is not UTF-8');
  }
  const named = header.skid ?? apuKid;
  if (named === undefined) throw code('ENVELOPE_MALFORMED', 'authcrypt message names no sender (skid)');
  // DIDComm authcrypt puts the sender's kid in apu, where the key derivation binds it; skid alone is not enough.
  if (apuKid === undefined) throw code('ENVELOPE_MALFORMED', 'authcrypt message names its sender in skid but has no apu');
  if (apuKid !== named) throw code('ENVELOPE_TAMPERED', 'apu does not name the sender in skid');
  const publicKey = resolve(named);
  if (publicKey === undefined) throw code('ENVELOPE_UNKNOWN_SENDER', `sender key '${named.slice(0, 120)}' is not known`);
  return { skid: named, publicKey };
}

const defaultResolver: SenderResolver = (skid) => didKeyPublicKey(skid, 'x25519');

/**
 * Decrypts a message encrypted to one of `keys`. `resolveSender` maps an authcrypt sender's key
 * id to its public key (default: did:key URLs only); deciding whether that sender is welcome is
 * the caller's business.
 */
export function decrypt(input: unknown, keys: readonly AgreementKey[], resolveSender: SenderResolver = defaultResolver): Decrypted {
  const jwe = parseJwe(input);
  const protectedHeader = decodeHeader(jwe.protected);
  const kids = jwe.recipients.map((r) => (typeof r.header?.['kid'] === 'string' ? r.header['kid'] : ''));
  const index = kids.findIndex((kid) => keys.some((k) => k.kid === kid));
  if (index < 0) throw code('ENVELOPE_NOT_FOR_US', 'the message is not encrypted to any of our keys');
  const recipient = jwe.recipients[index] as Jwe['recipients'][number];
  const key = keys.find((k) => k.kid === kids[index]) as AgreementKey;
  const header = joseHeader(protectedHeader, recipient.header);

  // DIDComm requires apv, the digest that binds the recipient list; so does the reference implementation.
  if (protectedHeader['apv'] === undefined) throw code('ENVELOPE_MALFORMED', 'the protected header has no apv');
  const apv = decodeB64(header.apv, 'apv') as Uint8Array;
  if (!equalBytes(apv, recipientsDigest(kids))) throw code('ENVELOPE_TAMPERED', 'the recipient list does not match apv');
  let epk: Uint8Array;
  try {
    epk = okpPublicKey(header.epk, 'X25519');
  } catch {
    throw code('ENVELOPE_UNSUPPORTED', 'the ephemeral key must be an X25519 OKP key');
  }
  const sender = header.alg === AUTH_ALG ? senderKey(header, resolveSender) : undefined;
  const encryptedKey = decodeB64(recipient.encrypted_key, 'encrypted_key') as Uint8Array;
  const iv = decodeB64(jwe.iv, 'iv') as Uint8Array;
  const ciphertext = decodeB64(jwe.ciphertext, 'ciphertext') as Uint8Array;
  const tag = decodeB64(jwe.tag, 'tag') as Uint8Array;
  const apu = decodeB64(header.apu, 'apu');

  let kek: Uint8Array | undefined;
  let cek: Uint8Array | undefined;
  try {
    kek = deriveKek({
      alg: header.alg,
      ze: key.agree(epk),
      ...(sender === undefined ? {} : { zs: key.agree(sender.publicKey), tag }),
      ...(apu === undefined ? {} : { apu }),
      apv,
    });
    cek = aesKeyUnwrap(kek, encryptedKey);
    const plaintext = decryptContent(header.enc, cek, iv, ciphertext, tag, utf8(jwe.protected));
    return {
      plaintext,
      alg: header.alg,
      enc: header.enc,
      recipientKid: key.kid,
      recipients: kids,
      ...(sender === undefined ? {} : { senderKid: sender.skid }),
      ...(header.typ === undefined ? {} : { typ: header.typ }),
      ...(header.cty === undefined ? {} : { cty: header.cty }),
    };
  } catch (e) {
    if (e instanceof JwaError) throw code('ENVELOPE_TAMPERED', 'the message does not authenticate: it was altered, truncated or not meant for this key');
    if (e instanceof DkmsError && e.code === 'BAD_INPUT') throw code('ENVELOPE_TAMPERED', 'the message carries an unusable key');
    throw e;
  } finally {
    wipe(kek, cek);
  }
}

/** Convenience for tests and tools: an AgreementKey over a raw private scalar held in memory. */
export function memoryAgreementKey(kid: string, privateKey: Uint8Array, publicKey: Uint8Array): AgreementKey {
  return { ...memoryKeyAgreementKey(privateKey, publicKey), kid };
}
