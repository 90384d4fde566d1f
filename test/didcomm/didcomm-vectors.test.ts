/**
 * Interoperability: the DIDComm v2 specification's appendix test vectors that use X25519 or
 * Ed25519 decrypt and verify with our envelope code, and what we produce decrypts and verifies
 * with jose alone.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { generalDecrypt, generalVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { fromBase64url, fromUtf8, memorySigner, utf8, x25519Generate } from '../../src/crypto/index.js';
import { anoncrypt, decrypt, memoryAgreementKey, okpJwk, parseMessage, signJws, verifyJws, type AgreementKey, type Jwe } from '../../src/didcomm/index.js';
import { ed25519Generate } from '../../src/crypto/index.js';

interface Jwk {
  kty: string;
  crv: string;
  x: string;
  d: string;
}
interface Vector {
  name: string;
  recipients?: string[];
  signer?: string;
  sender?: string;
  message: unknown;
}
const vectors = JSON.parse(readFileSync(new URL('./vectors/didcomm-v2-appendix.json', import.meta.url), 'utf8')) as {
  keys: Record<string, Jwk>;
  plaintext: Record<string, unknown>;
  signed: Vector[];
  anoncrypt: Vector[];
  authcrypt: Vector[];
};

function agreementKey(kid: string): AgreementKey {
  const jwk = vectors.keys[kid] as Jwk;
  return memoryAgreementKey(kid, fromBase64url(jwk.d), fromBase64url(jwk.x));
}
const publicOf = (kid: string) => fromBase64url((vectors.keys[kid] as Jwk).x);

describe('DIDComm v2 appendix vectors', () => {
  it('has the X25519 and Ed25519 vectors', () => {
    expect(vectors.signed.length).toBeGreaterThanOrEqual(1);
    expect(vectors.anoncrypt.length).toBeGreaterThanOrEqual(1);
    expect(vectors.authcrypt.length).toBeGreaterThanOrEqual(1);
  });

  it.each(vectors.signed.map((v) => [v.name, v] as const))('verifies signed message %s', async (_name, vector) => {
    const verified = await verifyJws(vector.message, (kid) => (kid === vector.signer ? publicOf(kid) : undefined));
    expect(verified.signerKid).toBe(vector.signer);
    expect(parseMessage(verified.payload)).toEqual(vectors.plaintext);
  });

  it.each(vectors.anoncrypt.map((v) => [v.name, v] as const))('decrypts anoncrypt message %s for every recipient', (_name, vector) => {
    for (const kid of vector.recipients ?? []) {
      const opened = decrypt(vector.message, [agreementKey(kid)]);
      expect(opened.alg).toBe('ECDH-ES+A256KW');
      expect(opened.recipientKid).toBe(kid);
      expect(opened.senderKid).toBeUndefined();
      expect(parseMessage(opened.plaintext)).toEqual(vectors.plaintext);
    }
  });

  it.each(vectors.authcrypt.map((v) => [v.name, v] as const))(
    'decrypts authcrypt message %s for every recipient and authenticates the sender',
    (_name, vector) => {
      for (const kid of vector.recipients ?? []) {
        const opened = decrypt(vector.message, [agreementKey(kid)], (skid) => (skid === vector.sender ? publicOf(skid) : undefined));
        expect(opened.alg).toBe('ECDH-1PU+A256KW');
        expect(opened.senderKid).toBe(vector.sender);
        expect(parseMessage(opened.plaintext)).toEqual(vectors.plaintext);
      }
    },
  );

  it('refuses an authcrypt vector whose sender key resolves to another key', () => {
    const vector = vectors.authcrypt[0] as Vector;
    const kid = (vector.recipients ?? [])[0] as string;
    const impostor = x25519Generate().publicKey;
    expect(() => decrypt(vector.message, [agreementKey(kid)], () => impostor)).toThrow(expect.objectContaining({ code: 'ENVELOPE_TAMPERED' }));
  });
});

describe('what we produce, read by jose alone', () => {
  const plaintext = utf8(JSON.stringify(vectors.plaintext));

  it.each(['A256CBC-HS512', 'A256GCM'] as const)('jose decrypts our anoncrypt (%s) for each recipient', async (enc) => {
    const keys = [x25519Generate(), x25519Generate()].map((pair, i) => ({ ...pair, kid: `did:example:bob#key-${i}` }));
    const jwe: Jwe = anoncrypt(
      plaintext,
      keys.map((k) => ({ kid: k.kid, publicKey: k.publicKey })),
      enc,
    );
    for (const key of keys) {
      const privateKey = createPrivateKey({ key: { ...okpJwk('X25519', key.publicKey), d: Buffer.from(key.privateKey).toString('base64url') }, format: 'jwk' });
      const { plaintext: opened, protectedHeader } = await generalDecrypt(jwe, privateKey);
      expect(fromUtf8(opened)).toBe(fromUtf8(plaintext));
      expect(protectedHeader).toMatchObject({ alg: 'ECDH-ES+A256KW', enc, typ: 'application/didcomm-encrypted+json' });
    }
  });

  it('jose verifies our signed message', async () => {
    const pair = ed25519Generate();
    const jws = signJws(plaintext, { ...memorySigner(pair.privateKey, pair.publicKey), kid: 'did:example:alice#key-1' });
    const publicKey = createPublicKey({ key: okpJwk('Ed25519', pair.publicKey), format: 'jwk' });
    const { payload } = await generalVerify(jws, publicKey);
    expect(fromUtf8(payload)).toBe(fromUtf8(plaintext));
  });
});
