/**
 * Encrypting DIDComm v2 messages (DIDComm Messaging section 5.1):
 * - anoncrypt: ECDH-ES+A256KW; the recipients learn nothing about the sender;
 * - authcrypt: ECDH-1PU+A256KW with A256CBC-HS512; each recipient knows the sender's key (skid).
 * One fresh content key, IV and ephemeral X25519 key per envelope, shared by its recipients;
 * the content key is wrapped once per recipient key. DIDComm wants an envelope's recipients to
 * be keys of one DID (the reference implementation refuses anything else): a message to several
 * DIDs is encrypted once per DID, with `anoncryptPerDid` / `authcryptPerDid`.
 */
import {
  CONTENT_IV_BYTES,
  CONTENT_KEY_BYTES,
  aesKeyWrap,
  encryptContent,
  randomBytes,
  sha256,
  toBase64url,
  utf8,
  wipe,
  x25519Ephemeral,
  type ContentEncryption,
} from '../crypto/index.js';
import { badInput } from '../errors.js';
import { ANON_ALG, AUTH_ALG, deriveKek, type KeyAgreementAlg } from './ecdh.js';
import { ENCRYPTED_TYP, encodeHeader, type Jwe } from './jwe.js';
import { okpJwk, type AgreementKey, type PublicKeyRef } from './keys.js';

/** apv: the digest of the recipients' key ids, sorted and joined with '.', as DIDComm defines it. */
export function recipientsDigest(kids: readonly string[]): Uint8Array {
  return sha256(utf8([...kids].sort().join('.')));
}

/** The DID a key id belongs to: the DID URL without its fragment. */
export function didOfKid(kid: string): string {
  const hash = kid.indexOf('#');
  return hash < 0 ? kid : kid.slice(0, hash);
}

function checkRecipients(to: readonly PublicKeyRef[]): void {
  if (to.length === 0) throw badInput('an encrypted message needs at least one recipient');
  if (new Set(to.map((r) => r.kid)).size !== to.length) throw badInput('a recipient key id appears twice');
}

/** One DID's envelope of a message encrypted to several DIDs. */
export interface DidEnvelope {
  readonly did: string;
  readonly envelope: Jwe;
}

/** One envelope per DID of `to`, in the order each DID first appears. */
function perDid(to: readonly PublicKeyRef[], seal: (keys: readonly PublicKeyRef[]) => Jwe): DidEnvelope[] {
  if (to.length === 0) throw badInput('an encrypted message needs at least one recipient');
  const groups = new Map<string, PublicKeyRef[]>();
  for (const recipient of to) {
    const did = didOfKid(recipient.kid);
    groups.set(did, [...(groups.get(did) ?? []), recipient]);
  }
  return [...groups].map(([did, keys]) => ({ did, envelope: seal(keys) }));
}

function encrypt(alg: KeyAgreementAlg, enc: ContentEncryption, plaintext: Uint8Array, to: readonly PublicKeyRef[], from?: AgreementKey): Jwe {
  checkRecipients(to);
  const ephemeral = x25519Ephemeral();
  const apv = recipientsDigest(to.map((r) => r.kid));
  const apu = from === undefined ? undefined : utf8(from.kid);
  const header = {
    typ: ENCRYPTED_TYP,
    alg,
    enc,
    ...(from === undefined ? {} : { skid: from.kid, apu: toBase64url(utf8(from.kid)) }),
    apv: toBase64url(apv),
    epk: okpJwk('X25519', ephemeral.publicKey),
  };
  const encodedHeader = encodeHeader(header);
  const cek = randomBytes(CONTENT_KEY_BYTES[enc]);
  const iv = randomBytes(CONTENT_IV_BYTES[enc]);
  try {
    const { ciphertext, tag } = encryptContent(enc, cek, iv, plaintext, utf8(encodedHeader));
    const recipients = to.map((recipient) => {
      const kek = deriveKek({
        alg,
        ze: ephemeral.agree(recipient.publicKey),
        ...(from === undefined ? {} : { zs: from.agree(recipient.publicKey), tag }),
        ...(apu === undefined ? {} : { apu }),
        apv,
      });
      try {
        return { header: { kid: recipient.kid }, encrypted_key: toBase64url(aesKeyWrap(kek, cek)) };
      } finally {
        wipe(kek);
      }
    });
    return { protected: encodedHeader, recipients, iv: toBase64url(iv), ciphertext: toBase64url(ciphertext), tag: toBase64url(tag) };
  } finally {
    wipe(cek);
  }
}

/**
 * Encrypts for `to` without revealing the sender (ECDH-ES+A256KW). `to` should be keys of one
 * DID: for several DIDs, use anoncryptPerDid.
 * @throws DkmsError BAD_INPUT when `to` is empty or repeats a key id.
 * @example anoncrypt(messageBytes(message), [recipientFromKid(kid)])
 */
export function anoncrypt(plaintext: Uint8Array, to: readonly PublicKeyRef[], enc: ContentEncryption = 'A256CBC-HS512'): Jwe {
  return encrypt(ANON_ALG, enc, plaintext, to);
}

/**
 * Encrypts for `to` from `from`, whom each recipient authenticates (ECDH-1PU+A256KW,
 * A256CBC-HS512). `to` should be keys of one DID: for several DIDs, use authcryptPerDid.
 * @throws DkmsError BAD_INPUT when `to` is empty or repeats a key id.
 */
export function authcrypt(plaintext: Uint8Array, from: AgreementKey, to: readonly PublicKeyRef[]): Jwe {
  return encrypt(AUTH_ALG, 'A256CBC-HS512', plaintext, to, from);
}

/**
 * anoncrypt to keys of any number of DIDs: one envelope per DID, listing only that DID's keys.
 * @throws DkmsError BAD_INPUT when `to` is empty or repeats a key id.
 */
export function anoncryptPerDid(plaintext: Uint8Array, to: readonly PublicKeyRef[], enc: ContentEncryption = 'A256CBC-HS512'): DidEnvelope[] {
  return perDid(to, (keys) => anoncrypt(plaintext, keys, enc));
}

/**
 * authcrypt to keys of any number of DIDs: one envelope per DID, listing only that DID's keys.
 * @throws DkmsError BAD_INPUT when `to` is empty or repeats a key id.
 * @example for (const { envelope } of authcryptPerDid(bytes, from, peerKeys)) send(envelope);
 */
export function authcryptPerDid(plaintext: Uint8Array, from: AgreementKey, to: readonly PublicKeyRef[]): DidEnvelope[] {
  return perDid(to, (keys) => authcrypt(plaintext, from, keys));
}
