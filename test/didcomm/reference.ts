/**
 * Parties for the interoperability tests against the DIDComm reference implementation
 * (`didcomm-node`, the WASM build of the Rust `didcomm` crate): in-memory X25519 and Ed25519 keys
 * named by did:key URLs, with the DIDResolver and SecretsResolver that library asks for. Each
 * party's DID document lists the one key its did:key DID names (for key agreement if X25519,
 * for authentication if Ed25519).
 */
import type { DIDResolver, SecretsResolver } from 'didcomm-node';
import { ed25519Generate, memorySigner, toBase64url, x25519Generate } from '../../src/crypto/index.js';
import { didKeyUrl, memoryAgreementKey, okpJwk, type AgreementKey, type PublicKeyRef, type SigningKey } from '../../src/didcomm/index.js';

type DidDoc = NonNullable<Awaited<ReturnType<DIDResolver['resolve']>>>;
type Secret = NonNullable<Awaited<ReturnType<SecretsResolver['get_secret']>>>;

/** One key of a party: ours to use (agree or sign) and the reference's secret for it. */
export interface PartyKey<K> {
  readonly did: string;
  readonly key: K;
  readonly secret: Secret;
}

/** An X25519 key-agreement key under its own did:key DID. */
export function x25519Party(): PartyKey<AgreementKey> {
  const pair = x25519Generate();
  const kid = didKeyUrl('x25519', pair.publicKey);
  return {
    did: didOf(kid),
    key: memoryAgreementKey(kid, pair.privateKey, pair.publicKey),
    secret: { id: kid, type: 'JsonWebKey2020', privateKeyJwk: { ...okpJwk('X25519', pair.publicKey), d: toBase64url(pair.privateKey) } },
  };
}

/** An Ed25519 signing key under its own did:key DID. */
export function ed25519Party(): PartyKey<SigningKey> {
  const pair = ed25519Generate();
  const kid = didKeyUrl('ed25519', pair.publicKey);
  return {
    did: didOf(kid),
    key: { ...memorySigner(pair.privateKey, pair.publicKey), kid },
    secret: { id: kid, type: 'JsonWebKey2020', privateKeyJwk: { ...okpJwk('Ed25519', pair.publicKey), d: toBase64url(pair.privateKey) } },
  };
}

export const didOf = (kid: string): string => kid.split('#')[0] as string;
export const refOf = (key: PublicKeyRef): PublicKeyRef => ({ kid: key.kid, publicKey: key.publicKey });

/** The DID document of a did:key party. */
function didDoc(party: PartyKey<AgreementKey | SigningKey>): DidDoc {
  const kid = party.key.kid;
  const crv = party.secret.privateKeyJwk?.crv === 'X25519' ? 'X25519' : 'Ed25519';
  return {
    id: party.did,
    keyAgreement: crv === 'X25519' ? [kid] : [],
    authentication: crv === 'Ed25519' ? [kid] : [],
    verificationMethod: [{ id: kid, type: 'JsonWebKey2020', controller: party.did, publicKeyJwk: okpJwk(crv, party.key.publicKey) }],
    service: [],
  };
}

/** A resolver over every party's did:key document. */
export function resolverFor(parties: readonly PartyKey<AgreementKey | SigningKey>[]): DIDResolver {
  const docs = new Map(parties.map((p) => [p.did, didDoc(p)]));
  return { resolve: (did) => Promise.resolve(docs.get(did) ?? null) };
}

/** The secrets the reference may use: only those of `parties`. */
export function secretsOf(parties: readonly PartyKey<AgreementKey | SigningKey>[]): SecretsResolver {
  const secrets = new Map(parties.map((p) => [p.secret.id, p.secret]));
  return {
    get_secret: (id) => Promise.resolve(secrets.get(id) ?? null),
    find_secrets: (ids) => Promise.resolve(ids.filter((id) => secrets.has(id))),
  };
}
