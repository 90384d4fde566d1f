/**
 * DIDComm v2 signed messages (section 5.2): a JWS in General JSON Serialization with EdDSA
 * (Ed25519), the signer's key id in each signature's header. Signing goes through a key handle;
 * verification uses jose with the public key the caller resolves for the kid.
 */
import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { fromBase64url, isSmallOrderEd25519, toBase64url, utf8 } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { MAX_ENVELOPE_CHARS, SIGNED_TYP, decodeHeader, encodeHeader, toJson } from './jwe.js';
import { okpJwk, didKeyPublicKey, type SigningKey } from './keys.js';

const b64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9_-]*$/);
export const JwsSchema = z.strictObject({
  payload: b64(MAX_ENVELOPE_CHARS),
  signatures: z
    .array(z.strictObject({ protected: b64(4_096), header: z.record(z.string().max(64), z.unknown()).optional(), signature: b64(256) }))
    .min(1)
    .max(16),
});
export type Jws = z.infer<typeof JwsSchema>;

/** Resolves a signer's key id to its Ed25519 public key; undefined if unknown. */
export type SignerResolver = (kid: string) => Uint8Array | undefined;

export interface Verified {
  readonly payload: Uint8Array;
  /** The kid of the signature that verified. */
  readonly signerKid: string;
}

const ALGS = ['EdDSA', 'Ed25519'];

/** Signs `payload` as a DIDComm signed message. */
export function signJws(payload: Uint8Array, signer: SigningKey): Jws {
  const protectedHeader = encodeHeader({ typ: SIGNED_TYP, alg: 'EdDSA' });
  const encodedPayload = toBase64url(payload);
  const signature = signer.sign(utf8(`${protectedHeader}.${encodedPayload}`));
  return { payload: encodedPayload, signatures: [{ protected: protectedHeader, signature: toBase64url(signature), header: { kid: signer.kid } }] };
}

const defaultResolver: SignerResolver = (kid) => didKeyPublicKey(kid, 'ed25519');

/**
 * Verifies a signed message: at least one signature by a key `resolve` knows must verify.
 * ENVELOPE_MALFORMED for a bad shape, ENVELOPE_UNKNOWN_SENDER when no signer is known,
 * ENVELOPE_BAD_SIGNATURE when a known signer's signature does not verify.
 */
export async function verifyJws(input: unknown, resolve: SignerResolver = defaultResolver): Promise<Verified> {
  const parsed = JwsSchema.safeParse(toJson(input));
  if (!parsed.success) throw new DkmsError('ENVELOPE_MALFORMED', `not a DIDComm signed message: ${parsed.error.issues[0]?.message ?? 'bad shape'}`);
  const jws = parsed.data;
  try {
    // Strict decoding: jose would also accept non-canonical base64url (stray low bits), giving one signature many encodings.
    fromBase64url(jws.payload, 'payload');
    for (const s of jws.signatures) {
      fromBase64url(s.protected, 'protected header');
      fromBase64url(s.signature, 'signature');
    }
  } catch {
    throw new DkmsError('ENVELOPE_MALFORMED', 'the signed message is not canonical base64url');
  }
  let known = false;
  for (const signature of jws.signatures) {
    const header = { ...decodeHeader(signature.protected), ...signature.header };
    const kid = header['kid'];
    if (typeof kid !== 'string' || typeof header['alg'] !== 'string' || !ALGS.includes(header['alg'])) continue;
    const publicKey = resolve(kid);
    if (publicKey === undefined || publicKey.length !== 32 || isSmallOrderEd25519(publicKey)) continue;
    known = true;
    const key = createPublicKey({ key: okpJwk('Ed25519', publicKey), format: 'jwk' });
    // jose is loaded on first use (most commands never verify a signed message), outside the
    // try: a library that cannot load is an error, not a signature that fails.
    const { flattenedVerify } = await import('jose');
    try {
      await flattenedVerify({ ...signature, payload: jws.payload }, key, { algorithms: ALGS });
      return { payload: fromBase64url(jws.payload, 'payload'), signerKid: kid };
    } catch {
      // Another signature may still be by a known key.
    }
  }
  if (!known) throw new DkmsError('ENVELOPE_UNKNOWN_SENDER', 'the message is not signed by any key we know');
  throw new DkmsError('ENVELOPE_BAD_SIGNATURE', 'the message signature does not verify');
}
