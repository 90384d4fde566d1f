/**
 * The keys envelopes are made with. Private keys stay wherever they live (the wallet): an
 * envelope only ever asks a key handle to `agree` or `sign`. Key ids are DID URLs; ours are
 * did:key URLs (`did:key:z6LS…#z6LS…`), which carry the public key themselves.
 */
import { z } from 'zod';
import { DkmsError } from '../errors.js';
import { decodePublicKey, encodePublicKey, fromBase64url, toBase64url, type KeyAgreementKey, type KeyType, type Signer } from '../crypto/index.js';

/** A recipient's or verifier's view of a key: its id and raw public key. */
export interface PublicKeyRef {
  readonly kid: string;
  readonly publicKey: Uint8Array;
}

/** An X25519 key this side holds, with the id envelopes name it by: agreement happens inside the holder (the wallet). */
export interface AgreementKey extends KeyAgreementKey {
  readonly kid: string;
}

/** An Ed25519 key this side holds, with the id signatures name it by. */
export interface SigningKey extends Signer {
  readonly kid: string;
}

/** A held key named by its did:key URL (`did:key:z6Mk…#z6Mk…`, `did:key:z6LS…#z6LS…`), the ids dkms agents use. */
export function didKeySigner(signer: Signer): SigningKey {
  const kid = didKeyUrlOf(signer.multikey);
  return { kid, publicKey: signer.publicKey, multikey: signer.multikey, sign: (message) => signer.sign(message) };
}

export function didKeyAgreementKey(key: KeyAgreementKey): AgreementKey {
  const kid = didKeyUrlOf(key.multikey);
  return { kid, publicKey: key.publicKey, multikey: key.multikey, agree: (peer) => key.agree(peer) };
}

export type OkpCurve = 'X25519' | 'Ed25519';

export const OkpJwkSchema = z.object({ kty: z.literal('OKP'), crv: z.string().max(16), x: z.string().regex(/^[A-Za-z0-9_-]{43}$/) });
export type OkpJwk = z.infer<typeof OkpJwkSchema>;

export function okpJwk(crv: OkpCurve, publicKey: Uint8Array): OkpJwk {
  return { kty: 'OKP', crv, x: toBase64url(publicKey) };
}

/** The public key in a JWK, which must be an OKP key on `crv`. */
export function okpPublicKey(jwk: unknown, crv: OkpCurve): Uint8Array {
  const parsed = OkpJwkSchema.safeParse(jwk);
  if (!parsed.success || parsed.data.crv !== crv) throw new DkmsError('ENVELOPE_UNSUPPORTED', `only ${crv} OKP keys are supported here`);
  return fromBase64url(parsed.data.x, 'JWK x');
}

const DID_KEY = /^did:key:(z[1-9A-HJ-NP-Za-km-z]{40,60})#(z[1-9A-HJ-NP-Za-km-z]{40,60})$/;

/** The did:key URL naming a public key. */
export function didKeyUrl(type: KeyType, publicKey: Uint8Array): string {
  return didKeyUrlOf(encodePublicKey(type, publicKey));
}

/** The did:key URL naming a multikey (`z6Mk…`, `z6LS…`). */
function didKeyUrlOf(multikey: string): string {
  return `did:key:${multikey}#${multikey}`;
}

/** The public key a did:key URL names, or undefined for any other kind of key id. */
export function didKeyPublicKey(kid: string, type: KeyType): Uint8Array | undefined {
  const match = DID_KEY.exec(kid);
  if (match === null || match[1] !== match[2]) return undefined;
  try {
    return decodePublicKey(match[1] as string, type).publicKey;
  } catch {
    return undefined;
  }
}

/** The public half of a did:key URL, as a recipient reference. */
export function recipientFromKid(kid: string): PublicKeyRef {
  const publicKey = didKeyPublicKey(kid, 'x25519');
  if (publicKey === undefined) throw new DkmsError('ENVELOPE_UNSUPPORTED', `'${kid.slice(0, 80)}' is not an X25519 did:key URL`);
  return { kid, publicKey };
}
