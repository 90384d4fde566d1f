/**
 * Encrypting DIDComm v2 messages (DIDComm Messaging section 5.1):
 * - anoncrypt: ECDH-ES+A256KW; the recipients learn nothing about the sender;
 * - authcrypt: ECDH-1PU+A256KW with A256CBC-HS512; each recipient knows the sender's key (skid).
 * One fresh content key, IV and ephemeral X25519 key per message, shared by all recipients;
 * the content key is wrapped once per recipient.
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

function checkRecipients(to: readonly PublicKeyRef[]): void {
  if (to.length === 0) throw badInput('an encrypted message needs at least one recipient');
  if (new Set(to.map((r) => r.kid)).size !== to.length) throw badInput('a recipient key id appears twice');
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

/** Encrypts for `to` without revealing the sender (ECDH-ES+A256KW). */
export function anoncrypt(plaintext: Uint8Array, to: readonly PublicKeyRef[], enc: ContentEncryption = 'A256CBC-HS512'): Jwe {
  return encrypt(ANON_ALG, enc, plaintext, to);
}

/** Encrypts for `to` from `from`, whom each recipient authenticates (ECDH-1PU+A256KW, A256CBC-HS512). */
export function authcrypt(plaintext: Uint8Array, from: AgreementKey, to: readonly PublicKeyRef[]): Jwe {
  return encrypt(AUTH_ALG, 'A256CBC-HS512', plaintext, to, from);
}
