/**
 * The one shape of a key in use. Everything that signs (ledger events, tree heads, cosignatures,
 * agency requests, backups, recovery shares, DIDComm messages) takes a {@link Signer};
 * everything that agrees a key (DIDComm envelopes, the agency's mailboxes) takes a
 * {@link KeyAgreementKey}. The private key stays with whoever implements it: the wallet, a
 * hardware token, or (for ephemeral keys only) this process's memory.
 */
import type { KeyObject } from 'node:crypto';
import { ed25519PrivateKeyObject, ed25519SignKey } from './ed25519.js';
import { encodePublicKey, type MultibaseKey } from './encoding.js';
import { x25519AgreeKey, x25519PrivateKeyObject } from './x25519.js';

/** A public key in both of its forms. */
export interface PublicKeyForms {
  /** The raw public key: 32 bytes. */
  readonly publicKey: Uint8Array;
  /** The same key as a multikey (multibase base58btc with its multicodec prefix: `z6Mk…` for Ed25519, `z6LS…` for X25519). */
  readonly multikey: MultibaseKey;
}

/** An Ed25519 key that signs where it lives. */
export interface Signer extends PublicKeyForms {
  /** The Ed25519 signature (64 bytes) of `message`. */
  sign(message: Uint8Array): Uint8Array;
}

/** An X25519 key that agrees where it lives. */
export interface KeyAgreementKey extends PublicKeyForms {
  /** The X25519 shared secret (32 bytes) with `peerPublicKey`; the caller wipes it after use. */
  agree(peerPublicKey: Uint8Array): Uint8Array;
}

/** The public forms of a raw key of `type`. */
export function publicKeyForms(type: 'ed25519' | 'x25519', publicKey: Uint8Array): PublicKeyForms {
  return { publicKey, multikey: encodePublicKey(type, publicKey) };
}

/** A signer over a key held in this process's memory (ephemeral keys, and tests): `privateKey` is the 32-byte seed. */
export function memorySigner(privateKey: Uint8Array | KeyObject, publicKey: Uint8Array): Signer {
  const key = privateKey instanceof Uint8Array ? ed25519PrivateKeyObject(privateKey) : privateKey;
  return { ...publicKeyForms('ed25519', publicKey), sign: (message) => ed25519SignKey(key, message) };
}

/** A key-agreement key held in this process's memory: `privateKey` is the 32-byte scalar. */
export function memoryKeyAgreementKey(privateKey: Uint8Array | KeyObject, publicKey: Uint8Array): KeyAgreementKey {
  const key = privateKey instanceof Uint8Array ? x25519PrivateKeyObject(privateKey) : privateKey;
  return { ...publicKeyForms('x25519', publicKey), agree: (peer) => x25519AgreeKey(key, peer) };
}
